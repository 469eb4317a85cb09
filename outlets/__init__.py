"""Service outlets: opening hours, the nearest open outlet, race-free bookings, the outlet finder map."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the outlets' blueprints, CLI, demo extension, health counts and OGC API collection."""
    from geo import demo
    from geo.health import register_counted
    from outlets import api, cells, cli, ogc, views
    from outlets.demo import add_demo_outlets

    register_counted("outlets", "bookings")
    demo.register("outlets", add_demo_outlets)
    ogc.register_collections()
    cells.register()
    app.register_blueprint(api.bp)
    app.register_blueprint(api.admin_bp)
    app.register_blueprint(views.bp)
    cli.init_app(app)
