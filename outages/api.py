"""JSON API of trouble calls, meter events, outages, crews and the live change feed.

Each route parses the request, calls one function of outages.intake / lifecycle / crews / read,
and renders its result; errors are geo.errors classes (problem+json). The actor of every write
is the signed-in account or token, never a field of the body.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, jsonify, request, url_for

from geo.auth import CREW, DISPATCHER, INTEGRATION, PLANNER, PUBLIC, allow, control_feeders, current_principal
from geo.db import get_session, read
from geo.errors import Forbidden, Invalid
from geo.geojson import geojson_response, parse_bbox, parse_limit
from geo.i18n import _, locale_code
from geo.jsonprovider import iso_times
from geo.limits import public_contact_limits, public_write_limits
from geo.live import changes_since
from geo.openapi import JSON, Answer, FeatureCollection, contract
from geo.requests import allow_body, instant, json_body, json_object
from outages import contracts as c
from outages import crews, intake, lifecycle, read as reading, subscriptions
from outages.settings import settings_from
from outages.settler import notify
from topology.cache import current_topology, topology_cache
from topology.trace_features import trace_features

bp = Blueprint("outages_api", __name__, url_prefix="/api")

PRIVATE = {"Cache-Control": "no-store"}
# A batch of 10,000 meter events is about 1.1 MB of JSON.
MAX_METER_BYTES = 4 * 1024 * 1024
# Who works with outages, calls and crews (docs/access.md); a crew works on its own assignment.
OUTAGE_ROLES = (DISPATCHER,)


def _settings():
    return settings_from(current_app.config)


def _settler():
    """Hands a report's feeder to the settler process, which settles it after the answer
    (outages/settler.py); None when the app settles in the request (``OUTAGE_SETTLE_IN_BACKGROUND``
    false: the tests' app, whose requests share one connection that no other process sees)."""
    if not current_app.config.get("OUTAGE_SETTLE_IN_BACKGROUND", True):
        return None
    return notify


def _actor() -> str:
    return current_principal().name


def _limit() -> int:
    return parse_limit(request.args.get("limit"), current_app.config["API_MAX_FEATURES"])


def _choice(name: str, values: tuple[str, ...], default: str) -> str:
    value = request.args.get(name, default)
    if value not in values:
        raise Invalid(_("%(name)s must be one of %(values)s; got %(value)r", name=name, values=", ".join(values),
                        value=value), field=name)
    return value


def _when(body: dict, name: str) -> datetime | None:
    """An ISO 8601 time with its offset from the body (None when absent or null)."""
    value = body.get(name)
    return None if value is None else instant(value, name)


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise Invalid(_("%(name)s must be text", name=name), field=name)
    return value


def _code(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 120:
        raise Invalid(_("%(name)s must be an element code", name=name), field=name)
    return value.strip()


def _answer(body, status: int = 200, headers: dict | None = None):
    """A JSON answer (times as ISO 8601), never cached: outages change by the second."""
    return jsonify(iso_times(body)), status, {**PRIVATE, **(headers or {})}


def _changed(change: lifecycle.OutageChange, status: int = 200):
    return _answer(change.as_dict(), status)


# -- intake ------------------------------------------------------------------------------------------
@bp.post("/calls")
@allow(PUBLIC)
@contract(body=c.CallBody, errors=(404, 409, 422, 429),
          responses={201: Answer(JSON, c.CallReceiptModel, headers={"Location": "where to follow the call"})})
@public_write_limits
def file_call():
    """Report no power: by account number, phone or a point; 201 with a reference to follow the outage."""
    parsed = intake.parse_call(json_body(), locale_code())
    receipt = intake.file_call(get_session(), topology_cache(), parsed, _settings(), _settler())
    return _answer(receipt.as_dict(), 201, {"Location": url_for("outages_api.call_detail", reference=receipt.reference)})


@bp.get("/calls/<reference>")
@allow(PUBLIC)
@contract(responses={200: c.CallStatusModel}, errors=(404,))
def call_detail(reference: str):
    """The progress of the outage a call joined (state, cause, ETR, crew status): nothing personal."""
    return _answer(read(intake.call_status, reference.strip().upper()).as_dict())


@bp.get("/calls")
@allow(*OUTAGE_ROLES)
@contract(query=c.LayerQuery, responses={200: Answer("application/geo+json", FeatureCollection)}, errors=(400,))
def calls_layer():
    """The calls of the last day at their service points (GeoJSON)."""
    bbox = parse_bbox(request.args.get("bbox"))
    return geojson_response(reading.call_layer(get_session().connection(), bbox, _limit()))


@bp.post("/meter-events")
@allow(INTEGRATION)
@contract(body=c.MeterEventsBody, errors=(413,), responses={200: c.MeterReceiptModel})
def meter_events():
    """A batch of up to 10,000 last-gasp and power-restored messages; idempotent by event id."""
    allow_body(MAX_METER_BYTES)
    events = intake.parse_meter_events(json_body())
    return _answer(intake.record_meter_events(get_session(), topology_cache(), events, _settings(),
                                              _settler()).as_dict())


# -- subscriptions -----------------------------------------------------------------------------------
@bp.post("/subscriptions")
@allow(PUBLIC)
@contract(body=c.SubscriptionBody, errors=(404, 429),
          responses={201: Answer(JSON, c.SubscriptionModel, headers={"Location": "where to confirm it"})})
@public_contact_limits
def subscription_create():
    """Subscribe an SMS number, e-mail address or webhook to an account's or a grid cell's outage
    messages; a code goes to the address, to be sent back to ``/confirm``. The answer shows the
    address masked."""
    wanted = subscriptions.parse_subscription(json_object(subscriptions.FIELDS), locale_code())
    view = subscriptions.subscribe(get_session(), wanted)
    return _answer(view.as_dict(), 201, {"Location": url_for("outages_api.subscription_detail",
                                                             reference=view.reference)})


@bp.get("/subscriptions/<reference>")
@allow(PUBLIC)
@contract(responses={200: c.SubscriptionModel}, errors=(404,))
def subscription_detail(reference: str):
    """Whether the subscription is confirmed (the address masked)."""
    return _answer(read(subscriptions.status, reference.strip().upper()).as_dict())


@bp.post("/subscriptions/<reference>/confirm")
@allow(PUBLIC)
@contract(body=c.ConfirmBody, responses={200: c.SubscriptionModel}, errors=(404, 409, 422, 429))
@public_write_limits
def subscription_confirm(reference: str):
    """Confirm with the six-digit code sent to the address; a few wrong codes, then subscribe again."""
    body = json_object({"code"})
    return _answer(subscriptions.confirm(get_session(), reference.strip().upper(), body.get("code")).as_dict())


@bp.get("/unsubscribe/<token>")
@allow(PUBLIC)
@contract(responses={200: c.SubscriptionModel}, errors=(404,))
def unsubscribe_detail(token: str):
    """What the unsubscribe link of a message names (masked); opening it changes nothing."""
    return _answer(read(subscriptions.by_token, token).as_dict())


@bp.post("/unsubscribe/<token>")
@allow(PUBLIC)
@contract(responses={200: c.SubscriptionModel}, errors=(404, 429))
@public_write_limits
def unsubscribe(token: str):
    """End the subscription the link names; again: nothing changes."""
    return _answer(subscriptions.unsubscribe(get_session(), token).as_dict())


# -- outages -----------------------------------------------------------------------------------------
@bp.get("/outages")
@allow(*OUTAGE_ROLES)
@contract(query=c.OutagesQuery, responses={200: Answer("application/geo+json", FeatureCollection)}, errors=(400,))
def outage_list():
    """The outages as GeoJSON at their device (``geometry=area``: the outline of their customers)."""
    bbox = parse_bbox(request.args.get("bbox"))
    show = _choice("state", reading.OUTAGE_STATES_SHOWN, "open")
    geometry = _choice("geometry", ("point", "area"), "point")
    return geojson_response(reading.outage_layer(get_session().connection(), bbox, _limit(), show, geometry,
                                                 control_feeders()))


@bp.post("/outages")
@allow(*OUTAGE_ROLES)
@contract(body=c.CreateOutageBody, responses={201: c.OutageChange}, errors=(404, 422))
def outage_create():
    """An outage at a device, confirmed at once; with ``planned_start`` and ``planned_end`` a planned one."""
    body = json_object({"device", "cause", "note", "planned_start", "planned_end", "etr"})
    device = _code(body, "device")
    start, end = _when(body, "planned_start"), _when(body, "planned_end")
    if (start is None) != (end is None):
        raise Invalid(_("a planned outage needs both planned_start and planned_end"), field="planned_end")
    zone = control_feeders()
    if zone is not None:
        from topology.trace import outside_zone

        if read(lambda connection: outside_zone(topology_cache().get(connection), [device], zone)):
            raise Forbidden(_("%(device)s is outside your control zone", device=device))
    change = lifecycle.create_outage(get_session(), topology_cache(), device, _actor(), _text(body, "cause"),
                                     _text(body, "note"), (start, end) if start else None, _when(body, "etr"),
                                     _settings())
    return _changed(change, 201)


@bp.get("/outages/<code>")
@allow(*OUTAGE_ROLES)
@contract(query=c.DetailQuery, errors=(400, 404),
          responses={200: Answer({JSON: c.OutageDetail, "application/geo+json": FeatureCollection})})
def outage_detail(code: str):
    """The outage with its timeline, steps, customers and calls; ``format=geojson``: its device and
    the segments it cuts off in the live state."""
    fmt = _choice("format", ("json", "geojson"), "json")
    connection = get_session().connection()
    if fmt == "geojson":
        topology, connection = current_topology()
        return geojson_response(trace_features(connection, reading.outage_parts(topology, connection, code), _limit()))
    count = request.args.get("customers", "200")
    if not count.isdigit() or int(count) > 5000:
        raise Invalid(_("customers must be a whole number from 0 to 5,000"), field="customers")
    return _answer(reading.outage_detail(connection, code, int(count)).as_dict())


@bp.post("/outages/<code>/transitions")
@allow(*OUTAGE_ROLES)
@contract(body=c.TransitionBody, responses={200: c.OutageChange}, errors=(404, 409))
def outage_transition(code: str):
    """Move the outage on: ``{"to": "confirmed" | "en_route" | "on_site" | "restored" | "cancelled"}``;
    409 names the states allowed from where it is."""
    body = json_object({"to", "note"})
    return _changed(lifecycle.transition(get_session(), code, _text(body, "to") or "", _actor(),
                                         _text(body, "note"), _settings(), control_feeders()))


@bp.post("/outages/<code>/move")
@allow(*OUTAGE_ROLES)
@contract(body=c.MoveBody, responses={200: c.OutageChange}, errors=(404, 409, 422))
def outage_move(code: str):
    """Place the outage at another device; its customers are traced and frozen again."""
    body = json_object({"device", "note"})
    return _changed(lifecycle.move_outage(get_session(), topology_cache(), code, _code(body, "device"), _actor(),
                                          _text(body, "note"), control_feeders(), _settings()))


@bp.post("/outages/<code>/etr")
@allow(*OUTAGE_ROLES)
@contract(body=c.EtrBody, responses={200: c.OutageChange}, errors=(404, 409, 422))
def outage_etr(code: str):
    """Set the ETR (``{"etr": time}``), or estimate it from history (``{"etr": null}``)."""
    body = json_object({"etr", "note"})
    return _changed(lifecycle.set_etr(get_session(), code, _when(body, "etr"), _actor(), _text(body, "note"),
                                      _settings(), control_feeders()))


@bp.post("/outages/<code>/steps")
@allow(DISPATCHER, CREW)
@contract(body=c.StepBody, responses={200: c.OutageChange}, errors=(404, 409, 422))
def outage_step(code: str):
    """Restore part of the outage: the customers below ``device``, or the listed ``customers``; when
    none is left out the outage is restored. A crew restores only its own assignment."""
    body = json_object({"device", "customers", "note"})
    principal = current_principal()
    customers = body.get("customers")
    if customers is not None and (not isinstance(customers, list) or not all(isinstance(x, str) for x in customers)):
        raise Invalid(_("customers must be a list of service point codes"), field="customers")
    device = _code(body, "device") if body.get("device") is not None else None
    crew = principal.role == CREW
    return _changed(lifecycle.restore_step(get_session(), topology_cache(), code, principal.name, _settings(), device,
                                           customers, _text(body, "note"), None if crew else control_feeders(),
                                           principal.account_id if crew else None))


@bp.get("/outages/<code>/crews")
@allow(*OUTAGE_ROLES)
@contract(query=c.NearestCrewsQuery, responses={200: c.NearCrews}, errors=(400, 404))
def outage_crews(code: str):
    """The crews nearest to the outage, available ones first, with distance and travel time."""
    limit = request.args.get("limit", "5")
    if not limit.isdigit() or not 1 <= int(limit) <= 50:
        raise Invalid(_("limit must be a whole number from 1 to 50"), field="limit")
    found = read(crews.nearest_crews, code, int(limit))
    return _answer({"outage": code, "crews": [crew.as_dict() for crew in found]})


@bp.post("/outages/<code>/assign")
@allow(*OUTAGE_ROLES)
@contract(body=c.AssignBody, responses={200: c.OutageChange}, errors=(404, 409, 422))
def outage_assign(code: str):
    """Send a crew (``{"crew": code}``; none named: the nearest available one); a crew on it already is released."""
    body = json_object({"crew", "note"})
    crew = body.get("crew")
    if crew is not None and (not isinstance(crew, str) or not crew.strip()):
        raise Invalid(_("crew must be a crew's code"), field="crew")
    return _changed(crews.assign(get_session(), code, crew, _actor(), _text(body, "note"), control_feeders()))


@bp.post("/outages/<code>/release")
@allow(*OUTAGE_ROLES)
@contract(body=c.NoteBody, responses={200: c.OutageChange}, errors=(404, 409))
def outage_release(code: str):
    """Take the crew off the outage (it goes back to confirmed)."""
    body = json_object({"note"}) if request.content_length else {}
    return _changed(crews.release(get_session(), code, _actor(), _text(body, "note"), control_feeders()))


# -- crews -------------------------------------------------------------------------------------------
@bp.get("/crews")
@allow(*OUTAGE_ROLES)
@contract(query=c.LayerQuery, responses={200: Answer("application/geo+json", FeatureCollection)}, errors=(400,))
def crews_layer():
    """The crews at their last position with status and assignment (GeoJSON)."""
    bbox = parse_bbox(request.args.get("bbox"))
    return geojson_response(reading.crew_layer(get_session().connection(), bbox, _limit()))


@bp.get("/crews/me")
@allow(CREW)
@contract(responses={200: c.MyCrew})
def my_crew():
    """The signed-in crew and its assignment (the outage with its timeline and the way to it)."""
    connection = get_session().connection()
    crew = crews.crew_of_account(connection, current_principal().account_id)
    detail = reading.outage_detail(connection, crew.outage, 50) if crew and crew.outage else None
    return _answer({"crew": crew.as_dict() if crew else None, "outage": detail.as_dict() if detail else None})


@bp.post("/crews/<code>/positions")
@allow(CREW)
@contract(body=c.PositionsBody, responses={200: c.PositionsReceipt}, errors=(404,))
def crew_positions(code: str):
    """A batch of positions from the crew's phone; a timestamp sent twice is stored once."""
    positions = crews.parse_positions(json_body())
    return _answer(crews.record_positions(get_session(), code, current_principal(), positions))


@bp.post("/crews/<code>/status")
@allow(CREW, DISPATCHER)
@contract(body=c.StatusBody, responses={200: c.Crew}, errors=(404, 409))
def crew_status(code: str):
    """The crew's status: available, en_route, on_site (its outage follows) or off_duty."""
    body = json_object({"status", "note"})
    status = _text(body, "status") or ""
    return _answer(crews.set_status(get_session(), code, status, current_principal(), _text(body, "note"),
                                    _settings()).as_dict())


@bp.post("/crews/<code>/notes")
@allow(CREW)
@contract(body=c.CrewNoteBody, responses={200: c.CrewNoteAnswer}, errors=(404, 409))
def crew_note(code: str):
    """An on-site note, added to the timeline of the crew's outage."""
    body = json_object({"note"})
    return _answer(crews.add_note(get_session(), code, current_principal(), body.get("note")))


# -- live maps and search ----------------------------------------------------------------------------
@bp.get("/live")
@allow(DISPATCHER, PLANNER, CREW)
@contract(query=c.LiveQuery, responses={200: c.ChangesModel}, errors=(400,))
def live():
    """What changed since ``cursor`` (outages, calls, crews, switching), and the next cursor; open
    maps ask every second."""
    value = request.args.get("cursor")
    if value is not None and (not value.isdigit() or len(value) > 19):
        raise Invalid(_("cursor must be the cursor of a previous answer"), field="cursor")
    return _answer(read(changes_since, int(value) if value is not None else None).as_dict())


@bp.get("/dispatch/search")
@allow(*OUTAGE_ROLES)
@contract(query=c.SearchQuery, responses={200: c.SearchAnswer}, errors=(400,))
def dispatch_search():
    """Find a device or outage by code, a customer by account number, or an address."""
    q = request.args.get("q", "")
    if not q.strip() or len(q) > 200:
        raise Invalid(_("q must be 1 to 200 characters"), field="q")
    topology, connection = current_topology()
    return _answer({"found": [f.as_dict() for f in reading.search(connection, topology, q)]})
