"""Configuration from the environment, with defaults that work on a fresh machine."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["from_environment"]

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
        "API_MAX_FEATURES": int(env.get("API_MAX_FEATURES", "20000")),
        # Bodies longer than this are refused with 413 before they are read (the outlet import
        # has its own, larger limit).
        "API_MAX_BODY_BYTES": int(env.get("API_MAX_BODY_BYTES", str(1024 * 1024))),
        "DB_POOL_SIZE": int(env.get("DB_POOL_SIZE", "10")),
        # None: a demo on the embedded cluster makes one (geo.security); a deployment must set it.
        "SECRET_KEY": env.get("SECRET_KEY") or None,
    }
