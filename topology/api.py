"""JSON API of the network: its map layers by bbox, its extent and its feeders."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from geo.db import get_session
from geo.geojson import geojson_response, parse_bbox, parse_limit
from geo.auth import NETWORK_READERS, PUBLIC, allow, control_feeders
from geo.openapi import contract
from topology import contracts as c
from topology.layers import (
    Filters, feeder_list, network_layer, network_overview, parse_kinds, parse_level, parse_state,
)

bp = Blueprint("topology_api", __name__, url_prefix="/api")


@bp.get("/network/<layer>")
@allow(PUBLIC)
@contract(path=c.LayerPath, query=c.LayerQuery, responses={200: c.LAYER}, errors=(400, 404))
def layer_features(layer: str):
    """``?bbox=west,south,east,north&limit=N`` (and ``kind``, ``state``, ``level``): a FeatureCollection
    of a layer without customers' data (the network itself)."""
    return _layer(layer)


@bp.get("/network/service_points")
@allow(*NETWORK_READERS)
@contract(query=c.LayerQuery, responses={200: c.LAYER}, errors=(400,))
def service_points():
    """Customers' service points (account numbers, addresses): for dispatchers and planners."""
    return _layer("service_points")


def _layer(layer: str):
    """A layer by bbox, limited to a dispatcher's control zone."""
    collection = network_layer(
        get_session().connection(), layer,
        bbox=parse_bbox(request.args.get("bbox")),
        limit=parse_limit(request.args.get("limit"), current_app.config["API_MAX_FEATURES"]),
        filters=Filters(kinds=parse_kinds(request.args.get("kind")), level=parse_level(request.args.get("level")),
                        state=parse_state(request.args.get("state")), feeders=control_feeders()),
    )
    return geojson_response(collection)


@bp.get("/network/extent")
@allow(PUBLIC)
@contract(responses={200: c.Extent})
def extent():
    """``{"bbox": [west, south, east, north]}`` around the whole network (null when empty)."""
    box, _ = network_overview(get_session().connection())
    return jsonify({"bbox": list(box) if box else None})


@bp.get("/network/feeders")
@allow(PUBLIC)
@contract(responses={200: c.Feeders})
def feeders():
    """``{"feeders": [...]}``: code, name, substation, voltage and map colour of every feeder."""
    return jsonify({"feeders": feeder_list(get_session().connection())})
