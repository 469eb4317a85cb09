"""JSON API of the traces and of switching (docs/tracing.md).

Every view parses, calls one function of ``topology.trace`` or ``topology.switching`` on the
process's cached ``Topology`` (brought up to the database's topology version first), and
renders JSON, or with ``?format=geojson`` the elements concerned as a FeatureCollection.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.engine import Connection

from geo.db import get_session
from geo.errors import Invalid
from geo.geojson import geojson_response, parse_bbox, parse_limit
from topology import switching, trace
from topology.cache import current_topology, topology_cache
from topology.index import Topology
from topology.trace_features import Part, deenergised_features, trace_features

bp = Blueprint("topology_trace", __name__, url_prefix="/api")

MAX_CHANGE = 10_000


# -- request parsing -------------------------------------------------------------------------------
def _output_format() -> str:
    """The ``format`` parameter: json (default) or geojson."""
    value = request.args.get("format", "json")
    if value not in ("json", "geojson"):
        raise Invalid(f"format must be json or geojson; got {value!r}", field="format")
    return value


def _code_list(body: dict, key: str) -> list[str]:
    """``body[key]`` checked to be a list of codes."""
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(code, str) and code for code in value):
        raise Invalid(f"{key} must be a list of element codes (non-empty strings)")
    if len(value) > MAX_CHANGE:
        raise Invalid(f"{key} may name at most {MAX_CHANGE} elements; got {len(value)}")
    return value


def parse_change(body: Any) -> tuple[list[str], list[str]]:
    """``(open, out_of_service)`` from ``{"open": [codes], "out_of_service": [codes]}``."""
    if not isinstance(body, dict):
        raise Invalid('the body must be a JSON object: {"open": [device codes], "out_of_service": [element codes]}')
    unknown = sorted(set(body) - {"open", "out_of_service"})
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}; expected open and out_of_service")
    return _code_list(body, "open"), _code_list(body, "out_of_service")


def _limit() -> int:
    """The ``limit`` parameter of a GeoJSON answer."""
    return parse_limit(request.args.get("limit"), current_app.config["API_MAX_FEATURES"])


_LISTS = ("customers", "nodes", "segments", "devices", "open_devices")


def _respond(connection: Connection, body: dict, parts: list[Part]):
    """The body as JSON (``?lists=false``: counts only), or its elements as GeoJSON."""
    if _output_format() == "geojson":
        return geojson_response(trace_features(connection, parts, _limit()))
    lists = request.args.get("lists", "true")
    if lists not in ("true", "false"):
        raise Invalid(f"lists must be true or false; got {lists!r}", field="lists")
    if lists == "false":
        body = {key: value for key, value in body.items() if key not in _LISTS}
        if "zone" in body:
            body["zone"] = {key: value for key, value in body["zone"].items() if key not in _LISTS}
    return jsonify(body)


def _outage_parts(body: dict, role: str = "affected") -> list[Part]:
    """The GeoJSON parts of an outage: its segments, devices and customers."""
    return [("segment", role, body["segments"]), ("device", role, body["devices"]),
            ("service_point", role, body["customers"])]


# -- traces ----------------------------------------------------------------------------------------
@bp.post("/trace/affected")
def affected():
    """Customers that lose supply if the listed devices open and elements fail."""
    open_codes, failed = parse_change(request.get_json(force=True, silent=True))
    topology, connection = current_topology()
    body = trace.affected_by_codes(topology, open_codes, failed).as_dict()
    return _respond(connection, body, _outage_parts(body))


@bp.get("/trace/downstream/<path:code>")
def downstream(code: str):
    """What loses supply if the element opens (switchgear) or fails."""
    topology, connection = current_topology()
    element, outage = trace.downstream(topology, code)
    body = {"element": code, "element_type": element.type(topology.data), **outage.as_dict()}
    return _respond(connection, body, _outage_parts(body, "downstream"))


@bp.get("/trace/upstream/<path:code>")
def upstream(code: str):
    """The path from the element to its source, with the protective devices on it."""
    topology, connection = current_topology()
    body = trace.upstream(topology, code)
    segments, devices = _split_edges(topology, body["path"])
    protective = [d["code"] for d in body["protective_devices"]]
    return _respond(connection, body, [("segment", "path", segments), ("device", "protective", protective),
                                       ("device", "path", [d for d in devices if d not in protective])])


@bp.get("/trace/isolation/<path:code>")
def isolation(code: str):
    """The switchgear to open to isolate a fault on the element, and what it costs."""
    topology, connection = current_topology()
    body = trace.isolation(topology, code)
    isolating = [d["code"] for d in body["devices"]]
    return _respond(connection, body, [
        ("device", "isolate", isolating), ("device", "already_open", body["already_open"]),
        ("segment", "zone", body["zone"]["segments"]),
        ("device", "zone", [d for d in body["zone"]["devices"] if d not in isolating]),
        ("service_point", "affected", body["customers"]),
    ])


@bp.get("/trace/connected/<path:code>")
def connected(code: str):
    """Everything reachable from the element over in-service elements, whatever the switch states."""
    topology, connection = current_topology()
    body = trace.connected(topology, code)
    return _respond(connection, body, [("segment", "connected", body["segments"]),
                                       ("device", "connected", body["devices"]),
                                       ("service_point", "connected", body["customers"])])


def _split_edges(topology: Topology, codes: list[str]) -> tuple[list[str], list[str]]:
    """Edge codes split into (segments, devices)."""
    positions = topology.data.find("segments", codes)
    return [c for c, p in zip(codes, positions) if p >= 0], [c for c, p in zip(codes, positions) if p < 0]


# -- supply state ----------------------------------------------------------------------------------
@bp.get("/network/deenergised")
def deenergised():
    """``?bbox=&limit=``: the segments, devices and service points without supply in view (GeoJSON)."""
    bbox = parse_bbox(request.args.get("bbox"))
    topology, connection = current_topology()
    return geojson_response(deenergised_features(connection, topology, bbox, _limit()))


@bp.get("/network/supply")
def supply():
    """Counts of energised and de-energised customers, and whether the state is radial."""
    topology, _ = current_topology()
    return jsonify(trace.supply_state(topology).as_dict())


# -- switching -------------------------------------------------------------------------------------
@bp.post("/switching")
def operate():
    """Operate devices atomically: ``{"operations": [{"device", "action"}], "reason", "actor"}``."""
    switching_request = switching.parse_request(request.get_json(force=True, silent=True))
    body = switching.operate(get_session(), topology_cache(), switching_request)
    return jsonify(body), 201


@bp.get("/switching/log")
def switching_log():
    """``?limit=&device=&before=``: the latest switching operations, newest first."""
    limit = parse_limit(request.args.get("limit"), 500) if request.args.get("limit") else 50
    before = request.args.get("before")
    if before is not None:
        if not before.isdigit():
            raise Invalid(f"before must be the next_before of a previous page; got {before!r}", field="before")
        before = int(before)
    return jsonify(switching.switching_log(get_session().connection(), limit, request.args.get("device"), before))
