"""Configuration from the environment, with defaults that work on a fresh machine."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["from_environment", "voltage_band"]

OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = "&copy; OpenStreetMap contributors"


def from_environment(environ: os._Environ | dict | None = None) -> dict[str, Any]:
    """Settings read from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    return {
        # None means: start and use the embedded cluster under var/.
        "DATABASE_URL": env.get("DATABASE_URL") or None,
        # "none" draws no base map at all (an isolated control room); otherwise an XYZ template.
        "BASEMAP_URL": env.get("BASEMAP_URL", OSM_TILES),
        "BASEMAP_ATTRIBUTION": env.get("BASEMAP_ATTRIBUTION", OSM_ATTRIBUTION),
        # An MBTiles or PMTiles file of the utility's own tiles, served by the app under /basemap
        # (geo/basemap.py); when set, the pages draw it instead of BASEMAP_URL.
        "BASEMAP_FILE": env.get("BASEMAP_FILE") or None,
        "API_MAX_FEATURES": int(env.get("API_MAX_FEATURES", "20000")),
        # Bodies longer than this are refused with 413 before they are read (the outlet import
        # has its own, larger limit).
        "API_MAX_BODY_BYTES": int(env.get("API_MAX_BODY_BYTES", str(1024 * 1024))),
        "DB_POOL_SIZE": int(env.get("DB_POOL_SIZE", "10")),
        # Vector tiles kept per process (geo/tiles.py), by ETag: never stale, only evicted; 0 keeps none.
        "TILE_CACHE_MB": int(env.get("TILE_CACHE_MB", "64")),
        # None: a demo on the embedded cluster makes one (geo.security); a deployment must set it.
        "SECRET_KEY": env.get("SECRET_KEY") or None,
        # Rate limits (geo/limits.py), in Flask-Limiter's notation; the counters are per process
        # unless RATELIMIT_STORAGE_URI names a shared store (redis://host:6379/0).
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "memory://"),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute;50 per hour"),
        "PUBLIC_WRITE_RATE_LIMIT": env.get("PUBLIC_WRITE_RATE_LIMIT", "20 per minute;200 per day"),
        "PUBLIC_LOOKUP_RATE_LIMIT": env.get("PUBLIC_LOOKUP_RATE_LIMIT", "30 per minute;500 per day"),
        # Set when a reverse proxy terminates HTTPS: its X-Forwarded-For/-Proto are believed (one hop).
        "TRUST_PROXY": env.get("TRUST_PROXY", "") not in ("", "0", "false", "no"),
        # The voltages (pu) a restoration plan's power flow must keep every bus within (?verify=powerflow).
        "RESTORATION_VOLTAGE_BAND": voltage_band(env.get("RESTORATION_VOLTAGE_BAND", "0.95,1.05")),
        **_notify(env),
    }


def _notify(env) -> dict[str, Any]:
    """The notification sender's settings (geo/notify.py, docs/notifications.md)."""
    port = env.get("NOTIFY_SMTP_PORT")
    return {
        # The backend of each channel; "log" writes the message to the sender's log (the demo).
        "NOTIFY_WITH_SERVE": env.get("NOTIFY_WITH_SERVE", "1").lower() not in ("0", "false", "no", "off"),
        "NOTIFY_SMS": env.get("NOTIFY_SMS", "log"),
        "NOTIFY_EMAIL": env.get("NOTIFY_EMAIL", "log"),
        "NOTIFY_WEBHOOK": env.get("NOTIFY_WEBHOOK", "log"),
        "NOTIFY_SMTP_HOST": env.get("NOTIFY_SMTP_HOST", "localhost"),
        "NOTIFY_SMTP_PORT": int(port) if port else None,
        "NOTIFY_SMTP_FROM": env.get("NOTIFY_SMTP_FROM") or None,
        "NOTIFY_SMTP_TLS": env.get("NOTIFY_SMTP_TLS", "starttls"),
        "NOTIFY_SMTP_USER": env.get("NOTIFY_SMTP_USER") or None,
        "NOTIFY_SMTP_PASSWORD": env.get("NOTIFY_SMTP_PASSWORD") or None,
        "NOTIFY_WEBHOOK_SECRET": env.get("NOTIFY_WEBHOOK_SECRET") or None,
        "NOTIFY_SMS_URL": env.get("NOTIFY_SMS_URL") or None,
        "NOTIFY_SMS_TOKEN": env.get("NOTIFY_SMS_TOKEN") or None,
        "NOTIFY_TIMEOUT_SECONDS": float(env.get("NOTIFY_TIMEOUT_SECONDS", "10")),
        "NOTIFY_MAX_ATTEMPTS": int(env.get("NOTIFY_MAX_ATTEMPTS", "8")),
        "NOTIFY_BACKOFF_SECONDS": float(env.get("NOTIFY_BACKOFF_SECONDS", "30")),
        "NOTIFY_BACKOFF_MAX_SECONDS": float(env.get("NOTIFY_BACKOFF_MAX_SECONDS", "3600")),
        # A claimed message is another sender's to send again (with the same key) this long after
        # its claim unless its sender renewed it: longer than one delivery's timeout.
        "NOTIFY_LEASE_SECONDS": float(env.get("NOTIFY_LEASE_SECONDS", "120")),
        "NOTIFY_POLL_SECONDS": float(env.get("NOTIFY_POLL_SECONDS", "1")),
        # Outcomes are recorded in one statement per this many deliveries, or once the oldest is
        # this old: what a killed sender may leave delivered but unrecorded (sent again with its key).
        "NOTIFY_RECORD_EVERY": int(env.get("NOTIFY_RECORD_EVERY", "20")),
        "NOTIFY_RECORD_SECONDS": float(env.get("NOTIFY_RECORD_SECONDS", "0.05")),
        # Deliveries under way at once in one sender (threads, each with its own connections).
        "NOTIFY_CONCURRENCY": int(env.get("NOTIFY_CONCURRENCY", "4")),
    }


def voltage_band(value: str) -> tuple[float, float]:
    """``"low,high"`` in pu as a pair, refused at start-up unless 0 < low < 1 < high.

    >>> voltage_band("0.9, 1.1")
    (0.9, 1.1)
    """
    try:
        low, high = (float(part) for part in value.split(","))
    except ValueError:
        raise ValueError(f"RESTORATION_VOLTAGE_BAND must be two numbers, low,high in pu; got {value!r}") from None
    if not 0 < low < 1 < high:
        raise ValueError(f"RESTORATION_VOLTAGE_BAND must satisfy 0 < low < 1 < high; got {value!r}")
    return low, high
