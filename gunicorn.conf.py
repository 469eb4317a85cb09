"""gunicorn settings for production: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Threaded workers (gthread) keep HTTP/1.1 connections alive, which a reverse proxy's upstream
pool and API clients reuse; sync workers close every connection after one request. Each
worker is its own process with its own database pool (DB_POOL_SIZE), so the server holds at
most workers x (DB_POOL_SIZE x 3) connections. Environment: GUNICORN_BIND, GUNICORN_WORKERS,
GUNICORN_THREADS.
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(multiprocessing.cpu_count() * 2)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 30
# Requests are short; a request stuck this long is killed and its worker restarted.
timeout = 60
graceful_timeout = 20
# Restart workers now and then (with jitter, not all at once) so that a slow leak cannot grow.
max_requests = 20000
max_requests_jitter = 2000
accesslog = None
errorlog = "-"
