"""The WSGI entry point production serves: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Settings come from the environment (geo.config: DATABASE_URL, BASEMAP_URL, DB_POOL_SIZE, ...).
"""
from app import create_app

app = create_app()
