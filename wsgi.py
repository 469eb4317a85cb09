"""The WSGI entry point production serves: ``flask --app app serve`` (geo/server.py) runs it in
granian's workers; any WSGI server can serve ``wsgi:app``.

Settings come from the environment (geo.config: DATABASE_URL, SECRET_KEY, BASEMAP_URL, DB_POOL_SIZE, ...).
"""
from app import create_app
from geo.security import require_secret_key
from geo.server import relay_stop_signals

# In granian's workers, a stop signal the kernel gives to any thread stops the worker.
relay_stop_signals()

app = create_app()
# A production server refuses to start on a missing or well-known SECRET_KEY (the demo on the
# embedded cluster has made its own).
require_secret_key(app.config)
