"""GridAtlas: the outage-and-outlet map service of a power distribution utility.

``flask --app app serve`` serves it (geo/server.py); ``create_app`` builds it and nothing is built at import time.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from flask import Flask, jsonify, redirect, url_for

import geo.audit
import geo.basemap
import geo.auth
import geo.cells_api
import geo.db
import geo.errors
import geo.features
import geo.i18n
import geo.limits
import geo.jsonprovider
import geo.maps
import geo.migrate
import geo.notify_cli
import geo.openapi
import geo.requests
import geo.security
import geo.server
import geo.signin
import geo.tiles
import geo.users_cli
from geo.auth import PUBLIC, allow
from geo.contracts import UNHEALTHY, Health
from geo.openapi import Answer, contract
from geo.config import from_environment


# Every module that declares tables, for Alembic and the schema test; geo imports none of the
# others, so the list lives here, where the packages are wired together.
MODEL_MODULES = ("geo.accounts", "geo.audit", "geo.addresses", "geo.outbox", "geo.live", "geo.cells", "topology.models",
                 "outlets.models", "outages.models")


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
    geo.tiles.init_app(app)
    geo.server.init_app(app)
    geo.auth.init_app(app)  # before any package: every request is guarded first
    app.before_request(geo.requests.refuse_unstorable_url)  # after the guard: a refusal is audited with its account
    geo.audit.init_app(app)
    geo.limits.init_app(app)
    geo.users_cli.init_app(app)
    geo.notify_cli.init_app(app)
    app.register_blueprint(geo.signin.bp)
    app.register_blueprint(geo.signin.api_bp)
    app.register_blueprint(geo.openapi.bp)
    app.register_blueprint(geo.features.bp)  # OGC API - Features; the packages register its collections
    geo.basemap.init_app(app)  # the local base map and the light one; the packages register its outlines
    app.register_blueprint(geo.tiles.bp)  # vector tiles; the packages register their layers

    import topology

    topology.init_app(app)
    import outlets

    outlets.init_app(app)
    import outages

    outages.init_app(app)
    # Grid cells; the packages registered what lies in them and their figures. After them: the
    # cells' outlines are drawn above the territory on the light base map.
    geo.cells_api.init_app(app)

    app.add_url_rule("/healthz", "healthz", _healthz)
    app.add_url_rule("/", "index", _index)
    return app


@allow(PUBLIC)
@contract(responses={302: Answer(None, headers={"Location": "the network map"})})
def _index():
    """The network map."""
    return redirect(url_for("topology_views.network_map"))


@allow(PUBLIC)
@contract(responses={200: Health, 503: UNHEALTHY})
def _healthz():
    """Whether the service is healthy; versions, migrations and counts for an admin."""
    from geo.auth import ADMIN, current_principal
    from geo.health import health_answer

    principal = current_principal()
    body, status, headers = health_answer(full=principal is not None and principal.role == ADMIN)
    return jsonify(body), status, headers
