"""The WSGI entry point production serves: ``flask --app app serve`` (geo/server.py) runs it in
granian's workers; any WSGI server can serve ``wsgi:app``.

Settings come from the environment (geo.config: DATABASE_URL, BASEMAP_URL, DB_POOL_SIZE, ...).
"""
from app import create_app

app = create_app()
