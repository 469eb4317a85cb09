"""JSON API of the traces and of switching (docs/tracing.md).

Every view parses, calls one function of ``topology.trace`` or ``topology.switching`` on the
process's cached ``Topology`` (brought up to the database's topology version first), and
renders JSON, or with ``?format=geojson`` the elements concerned as a FeatureCollection.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.engine import Connection

from geo.db import get_session
from geo.errors import Forbidden, Invalid
from geo.geojson import geojson_response, parse_bbox, parse_limit
from geo.i18n import _, translate_all
from geo.requests import json_body, parse_before
from geo.audit import note_audit
from geo.auth import ADMIN, DISPATCHER, NETWORK_READERS, allow, control_feeders, current_principal
from geo.openapi import contract
from topology import contracts as c
from topology import powerflow, restoration, switching, trace
from topology.cache import current_topology, topology_cache
from topology.trace import Part
from topology.trace_features import deenergised_features, trace_features

bp = Blueprint("topology_trace", __name__, url_prefix="/api")

MAX_CHANGE = 10_000
SWITCHING_ROLES = (DISPATCHER, ADMIN)  # who may operate switchgear (inside a dispatcher's control zone)


# -- request parsing -------------------------------------------------------------------------------
def _output_format() -> str:
    """The ``format`` parameter: json (default) or geojson."""
    value = request.args.get("format", "json")
    if value not in ("json", "geojson"):
        raise Invalid(_("format must be json or geojson; got %(value)r", value=value), field="format")
    return value


def _code_list(body: dict, key: str) -> list[str]:
    """``body[key]`` checked to be a list of codes."""
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(code, str) and code for code in value):
        raise Invalid(_("%(key)s must be a list of element codes (non-empty strings)", key=key), field=key)
    if len(value) > MAX_CHANGE:
        raise Invalid(_("%(key)s may name at most %(max_change)s elements; got %(count)s", key=key, max_change=MAX_CHANGE, count=len(value)), field=key)
    return value


def parse_change(body: Any) -> tuple[list[str], list[str]]:
    """``(open, out_of_service)`` from ``{"open": [codes], "out_of_service": [codes]}``."""
    if not isinstance(body, dict):
        raise Invalid(_('the body must be a JSON object: {"open": [device codes], "out_of_service": [element codes]}'))
    unknown = sorted(set(body) - {"open", "out_of_service"})
    if unknown:
        raise Invalid(_("unknown field(s): %(unknown)s; expected open and out_of_service", unknown=', '.join(unknown)))
    return _code_list(body, "open"), _code_list(body, "out_of_service")


def _limit() -> int:
    """The ``limit`` parameter of a GeoJSON answer."""
    return parse_limit(request.args.get("limit"), current_app.config["API_MAX_FEATURES"])


_LISTS = ("customers", "nodes", "segments", "devices", "open_devices")


def _respond(connection: Connection, body: Callable[[], dict], parts: Callable[[], list[Part]], keep: tuple = ()):
    """``body()`` as JSON (``?lists=false``: counts only, and the fields in ``keep``), or the elements
    of ``parts()`` as GeoJSON."""
    if _output_format() == "geojson":
        return geojson_response(trace_features(connection, parts(), _limit()))
    lists = request.args.get("lists", "true")
    if lists not in ("true", "false"):
        raise Invalid(_("lists must be true or false; got %(lists)r", lists=lists), field="lists")
    answer = body()
    if lists == "false":
        answer = {key: value for key, value in answer.items() if key not in _LISTS or key in keep}
        if "zone" in answer:
            answer["zone"] = {key: value for key, value in answer["zone"].items() if key not in _LISTS}
    return jsonify(answer)


def _in_zone(topology, codes) -> None:
    """Forbidden when the signed-in dispatcher is held to feeders and an element is outside them."""
    zone = control_feeders()
    if zone is None:
        return
    outside = trace.outside_zone(topology, codes, zone)
    if outside:
        raise Forbidden(_("outside your control zone (feeders %(zone)s): %(devices)s",
                          zone=", ".join(sorted(zone)) or "-", devices=", ".join(outside)), codes=outside)


# -- traces ----------------------------------------------------------------------------------------
@bp.post("/trace/affected")
@allow(*NETWORK_READERS)
@contract(query=c.TraceQuery, body=c.ChangeBody, responses={200: c.trace_answer(c.Loss)}, errors=(400, 404, 422))
def affected():
    """Customers that lose supply if the listed devices open and elements fail."""
    open_codes, failed = parse_change(json_body())
    topology, connection = current_topology()
    _in_zone(topology, open_codes + failed)
    loss = trace.affected_by_codes(topology, open_codes, failed)
    return _respond(connection, loss.as_dict, loss.feature_parts)


@bp.get("/trace/downstream/<path:code>")
@allow(*NETWORK_READERS)
@contract(query=c.TraceQuery, responses={200: c.trace_answer(c.Downstream)}, errors=(400, 404, 422))
def downstream(code: str):
    """What loses supply if the element opens (switchgear) or fails."""
    topology, connection = current_topology()
    _in_zone(topology, [code])
    element, loss = trace.downstream(topology, code)
    return _respond(connection, lambda: {"element": code, "element_type": element.type(topology.data), **loss.as_dict()},
                    lambda: loss.feature_parts("downstream"))


@bp.get("/trace/upstream/<path:code>")
@allow(*NETWORK_READERS)
@contract(query=c.TraceQuery, responses={200: c.trace_answer(c.Upstream)}, errors=(400, 404, 422))
def upstream(code: str):
    """The path from the element to its source, with the protective devices on it."""
    topology, connection = current_topology()
    _in_zone(topology, [code])
    path = trace.upstream(topology, code)
    return _respond(connection, path.as_dict, path.feature_parts)


@bp.get("/trace/isolation/<path:code>")
@allow(*NETWORK_READERS)
@contract(query=c.TraceQuery, responses={200: c.trace_answer(c.Isolation)}, errors=(400, 404, 422))
def isolation(code: str):
    """The switchgear to open to isolate a fault on the element, and what it costs."""
    topology, connection = current_topology()
    _in_zone(topology, [code])
    found = trace.isolation(topology, code)
    # Its devices are the answer (the few to open), not a list of codes.
    return _respond(connection, found.as_dict, found.feature_parts, keep=("devices",))


@bp.get("/trace/connected/<path:code>")
@allow(*NETWORK_READERS)
@contract(query=c.TraceQuery, responses={200: c.trace_answer(c.Elements)}, errors=(400, 404, 422))
def connected(code: str):
    """Everything reachable from the element over in-service elements, whatever the switch states."""
    topology, connection = current_topology()
    _in_zone(topology, [code])
    reached = trace.connected(topology, code)
    return _respond(connection, reached.as_dict, reached.feature_parts)


# -- restoration -----------------------------------------------------------------------------------
@bp.get("/restoration/<path:code>")
@allow(*NETWORK_READERS)
@contract(query=c.RestorationQuery, responses={200: c.Restoration}, errors=(400, 404, 422, 501))
def restoration_plans(code: str):
    """Ranked switching plans that give supply back to the healthy customers a fault on the element
    cuts off; ``?verify=powerflow``: the best ones verified by a power flow."""
    verify = request.args.get("verify")
    if verify not in (None, "powerflow"):
        raise Invalid(_("verify must be powerflow; got %(value)r", value=verify), field="verify")
    topology, connection = current_topology()
    _in_zone(topology, [code])
    found = restoration.plans(topology, code)
    if verify:
        found = powerflow.verify_plans(topology, found, powerflow.read_conductors(connection, topology.data),
                                       current_app.config["RESTORATION_VOLTAGE_BAND"])
    return jsonify(translate_all(found.as_dict()))


@bp.post("/restoration/<path:code>/simulate")
@allow(*NETWORK_READERS)
@contract(body=c.PlanBody, responses={200: c.Simulation}, errors=(400, 404, 422))
def restoration_simulate(code: str):
    """A plan ``{"open": [...], "close": [...]}`` for a fault on the element, applied to a copy: nothing changes."""
    body = json_body()
    if not isinstance(body, dict) or set(body) - {"open", "close"}:
        raise Invalid(_('the body must be a JSON object: {"open": [device codes], "close": [device codes]}'))
    open_codes, close_codes = _code_list(body, "open"), _code_list(body, "close")
    topology, _connection = current_topology()
    _in_zone(topology, [code, *open_codes, *close_codes])
    return jsonify(restoration.simulate(topology, code, open_codes, close_codes).as_dict())


# -- supply state ----------------------------------------------------------------------------------
@bp.get("/network/deenergised")
@allow(*NETWORK_READERS)
@contract(query=c.BboxLimitQuery, responses={200: c.LAYER}, errors=(400,))
def deenergised():
    """``?bbox=&limit=``: the segments, devices and service points without supply in view (GeoJSON)."""
    bbox = parse_bbox(request.args.get("bbox"))
    topology, connection = current_topology()
    return geojson_response(deenergised_features(connection, topology, bbox, _limit(), control_feeders()))


@bp.get("/network/supply")
@allow(*NETWORK_READERS)
@contract(responses={200: c.SupplyState})
def supply():
    """Counts of energised and de-energised customers, and whether the state is radial."""
    topology, _ = current_topology()
    return jsonify(trace.supply_state(topology).as_dict())


# -- switching -------------------------------------------------------------------------------------
@bp.post("/switching")
@allow(*SWITCHING_ROLES)
@contract(body=c.SwitchingBody, responses={201: c.SwitchingResult}, errors=(404, 409, 422))
def operate():
    """Operate devices atomically: ``{"operations": [{"device", "action"}], "reason"}``, as the signed-in account."""
    principal = current_principal()
    switching_request = switching.parse_request(json_body(), principal.name, principal.control_feeders)
    result = switching.operate(get_session(), topology_cache(), switching_request)
    note_audit(operation_id=result.operation.operation_id, devices=[op.device for op in switching_request.operations],
               actions=[op.action for op in switching_request.operations], reason=switching_request.reason)
    return jsonify(result.as_dict()), 201


@bp.get("/switching/log")
@allow(*NETWORK_READERS)
@contract(query=c.LogQuery, responses={200: c.SwitchingLog}, errors=(400, 404))
def switching_log():
    """``?limit=&device=&before=``: the latest switching operations, newest first."""
    limit = parse_limit(request.args.get("limit"), 500) if request.args.get("limit") else 50
    before = parse_before(request.args.get("before"))
    log = switching.switching_log(get_session().connection(), limit, request.args.get("device"), before,
                                  control_feeders())
    return jsonify(log.as_dict())
