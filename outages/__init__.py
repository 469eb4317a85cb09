"""Outages: trouble calls, meter events, prediction, the outage lifecycle, crews, the dispatcher's map,
reliability indices."""
from __future__ import annotations

from flask import Flask

# How often the sender looks for progress updates and planned-work notices that came due.
PERIODIC_SECONDS = 300


def init_app(app: Flask) -> None:
    """Register the outages' blueprints, CLI, demo extension and health counts."""
    from geo import demo
    from geo.health import register_counted
    from geo.outbox import register_periodic
    from geo.server import register_companion
    from outages import api, cells, cli, history_demo, notices, public_api, public_views, reliability_api, views
    from outages.demo import add_demo_crews
    from outages.settings import settings_from

    register_counted("outages", "trouble_calls", "crews")
    demo.register("outages", add_demo_crews)
    demo.register("outage history", history_demo.add_outage_history)
    cells.register()
    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(public_api.bp)
    app.register_blueprint(public_views.bp)
    app.register_blueprint(reliability_api.bp)
    cli.init_app(app)
    # Trouble calls and meter events are settled after their answer by a process of its own.
    register_companion("outage settler", ("outages", "settle"))
    # Progress updates of lasting outages and planned work coming up: the sender runs it.
    register_periodic("outage notices", notices.periodic_job(settings_from(app.config)), PERIODIC_SECONDS)
