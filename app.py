"""GridAtlas: the outage-and-outlet map service of a power distribution utility.

``flask --app app serve`` serves it (geo/server.py); ``create_app`` builds it and nothing is built at import time.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from flask import Flask, jsonify, redirect, url_for

import geo.db
import geo.errors
import geo.i18n
import geo.jsonprovider
import geo.maps
import geo.migrate
import geo.requests
import geo.security
import geo.server
from geo.config import from_environment


# Every module that declares tables, for Alembic and the schema test; geo imports none of the
# others, so the list lives here, where the packages are wired together.
MODEL_MODULES = ("geo.addresses", "geo.outbox", "topology.models", "outlets.models")


def import_models() -> None:
    """Import every package's models, so that ``geo.db.Base.metadata`` knows every table."""
    for module in MODEL_MODULES:
        import_module(module)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application; ``config`` overrides the settings read from the environment."""
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.from_mapping(from_environment())
    if config:
        app.config.from_mapping(config)

    geo.jsonprovider.init_app(app)
    geo.errors.init_app(app)
    geo.i18n.init_app(app)
    geo.requests.init_app(app)
    geo.security.init_app(app)  # before the database: the demo's key follows from having no DATABASE_URL
    geo.db.init_app(app)
    geo.migrate.init_app(app)
    geo.maps.init_app(app)
    geo.server.init_app(app)

    import topology

    topology.init_app(app)
    import outlets

    outlets.init_app(app)

    app.add_url_rule("/healthz", "healthz", _healthz)
    app.add_url_rule("/", "index", lambda: redirect(url_for("topology_views.network_map")))
    return app


def _healthz():
    """Whether the service is healthy; versions, migrations and counts for an admin."""
    from geo.auth import is_admin
    from geo.health import health_answer

    body, status, headers = health_answer(full=is_admin())
    return jsonify(body), status, headers
