"""The electrical network: model, importers, demo generator, graph, traces and switching."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the network's topology cache, blueprints, CLI commands, health counts, OGC API collections,
    vector tile layers, base-map outlines and what lies in each grid cell."""
    from geo.health import register_counted
    from topology import api, basemap, cache, cells, cli, ogc, tiles, trace_api, views

    register_counted("substations", "feeders", "nodes", "segments", "devices", "sources",
                     "transformer_areas", "service_points")
    ogc.register_collections()
    cells.register()
    basemap.register_outlines()
    tiles.register_tile_layers()
    cache.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(trace_api.bp)
    cli.init_app(app)
