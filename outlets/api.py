"""JSON API of outlets and bookings (public), and the admin API that manages outlets.

Each route parses the request, calls one function of outlets.search / outlets.booking /
outlets.store, and renders its result; errors are geo.errors classes (problem+json).
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy.engine import Connection

from geo import addresses
from geo.db import get_session, read
from geo.errors import Invalid
from geo.geojson import parse_bbox
from geo.i18n import _
from geo.requests import allow_body, body_bytes, json_body, whole_number
from geo.auth import ADMIN, PUBLIC, allow
from geo.limits import public_write_limits
from geo.openapi import JSON, Answer, FeatureCollection, contract
from outlets import admin, booking, importers, search, store
from outlets import contracts as c
from outlets.hours import FIRST_YEAR, LAST_YEAR, in_range, parse_day
from outlets.models import SERVICES

bp = Blueprint("outlets_api", __name__, url_prefix="/api")
admin_bp = Blueprint("outlets_admin", __name__, url_prefix="/api/admin")

UTC = timezone.utc
MAX_IMPORT_BYTES = 20 * 1024 * 1024
PRIVATE = {"Cache-Control": "no-store"}


def now() -> datetime:
    """The current instant (UTC)."""
    return datetime.now(UTC)


# -- parameters ----------------------------------------------------------------------------------
def _number(name: str, low: float, high: float) -> float | None:
    """Query parameter ``name`` as a number within ``low``..``high`` (None when absent)."""
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise Invalid(_("%(name)s must be a number, not %(value)r", name=name, value=value), field=name) from None
    if not low <= number <= high:
        raise Invalid(_("%(name)s must be between %(low)g and %(high)g", name=name, low=low, high=high), field=name)
    return number


def _date(value: str | None, name: str = "date") -> date | None:
    """A YYYY-MM-DD parameter as a date (None when absent)."""
    if not value:
        return None
    try:
        return parse_day(value)
    except ValueError as error:
        raise Invalid(_("%(name)s %(value)r %(error)s", name=name, value=value, error=error), field=name) from None


def _open_at(value: str | None, current: datetime) -> datetime | None:
    """``now``, an ISO time with an offset (an instant), or without (each outlet's local time)."""
    if value is None or value == "":
        return None
    if value.lower() == "now":
        return current
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(_("open must be 'now' or an ISO 8601 time (e.g. 2026-12-01T18:30), not %(value)r", value=value), field="open") from None
    if not in_range(at):
        raise Invalid(_("open %(value)r is outside the years %(first_year)s to %(last_year)s", value=value, first_year=FIRST_YEAR, last_year=LAST_YEAR), field="open")
    return at


# -- public: outlets -----------------------------------------------------------------------------
@bp.get("/outlets/services")
@allow(PUBLIC)
@contract(responses={200: c.Services})
def services():
    """The services outlets offer: code -> label."""
    return jsonify({"services": SERVICES})


@bp.get("/outlets/nearest")
@allow(PUBLIC)
@contract(query=c.NearestQuery, responses={200: c.NearestAnswer}, errors=(400, 404))
def nearest():
    """The nearest outlets to ``lon``/``lat`` or to the address ``q``; see docs/outlets.md."""
    current = now()
    lon, lat = _number("lon", -180, 180), _number("lat", -90, 90)
    q = request.args.get("q", "").strip()
    if (lon is None) != (lat is None):
        raise Invalid(_("give both lon and lat"), field="lon" if lon is None else "lat")
    if (lon is None) == (not q):
        raise Invalid(_("give lon and lat, or an address q (not both)"))
    n = whole_number(request.args.get("n", "5"))
    if n is None:
        raise Invalid(_("n must be a whole number 1..%(max_results)s", max_results=search.MAX_RESULTS), field="n")
    options = {"n": n, "service": request.args.get("service") or None,
               "open_at": _open_at(request.args.get("open"), current)}
    if q:
        # The address search needs a transaction for its settings; a search by point does not.
        connection = get_session().connection()
        match, did_you_mean = addresses.resolve_address(connection, q)
        if match is None:
            return jsonify({"origin": None, "outlets": [], "at": current.isoformat(),
                            "did_you_mean": [m.as_dict() for m in did_you_mean]})
        origin = search.Origin.of(match)
        found = search.nearest(connection, origin, current, **options)
    else:
        origin = search.Origin(lon, lat)
        found = read(search.nearest, origin, current, **options)
    return jsonify({"origin": vars(origin), "outlets": [outlet.as_dict() for outlet in found], "at": current.isoformat()})


@bp.get("/outlets/addresses")
@allow(PUBLIC)
@contract(query=c.AddressQuery, responses={200: c.AddressSuggestions}, errors=(400,))
def address_suggestions():
    """Address suggestions for ``q`` from our own outlet and customer addresses."""
    found = addresses.suggest_addresses(get_session().connection(), request.args.get("q", ""))
    return jsonify({"addresses": [match.as_dict() for match in found]})


@bp.get("/outlets")
@allow(PUBLIC)
@contract(query=c.BboxQuery, responses={200: FeatureCollection}, errors=(400,))
def outlet_collection():
    """Active outlets as a GeoJSON FeatureCollection, optionally within ``bbox=w,s,e,n``."""
    bbox = parse_bbox(request.args.get("bbox"))
    current = now()
    found, truncated = read(store.active_outlets, bbox, current_app.config.get("API_MAX_FEATURES", 20000))
    return jsonify({"type": "FeatureCollection", "features": [store.outlet_feature(o, current) for o in found],
                    "truncated": truncated})


@bp.get("/outlets/<code>")
@allow(PUBLIC)
@contract(responses={200: c.OutletDetail}, errors=(404,))
def outlet_detail(code: str):
    """One outlet: where, services, weekly hours, coming exceptions, its opening state now."""
    current = now()
    outlet = read(store.load_outlet, code)
    return jsonify({**store.outlet_summary(outlet, current), **outlet.schedule.opening(current).as_dict()})


@bp.get("/outlets/<code>/slots")
@allow(PUBLIC)
@contract(query=c.SlotsQuery, responses={200: c.DaySlots}, errors=(400, 404, 422))
def slots(code: str):
    """The slots of one outlet on ``date`` (default: its today), per service, with places left;
    ``by=shift``: the slots of the openings that start on that date, overnight ones whole."""
    current = now()
    day = _date(request.args.get("date"))
    by = request.args.get("by") or None
    if by not in (None, "shift"):
        raise Invalid(_("by must be shift (or left out)"), field="by")

    def day_slots(connection: Connection) -> booking.DaySlots:
        """The slots of ``day``, or of the outlet's today."""
        when = day or store.load_outlet(connection, code).schedule.local_date(current)
        return booking.day_slots(connection, code, when, request.args.get("service") or None, current,
                                 by_shift=by == "shift")

    return jsonify(read(day_slots).as_dict())


# -- public: bookings ----------------------------------------------------------------------------
@bp.post("/bookings")
@allow(PUBLIC)
@contract(body=c.BookingBody, headers=c.IdempotencyHeader, errors=(404, 409, 422, 429), responses={
    201: Answer(JSON, c.Booking, headers=c.LOCATION), 200: Answer(JSON, c.Booking, "A replayed idempotency key: the booking made first")})
@public_write_limits
def create_booking():
    """Book a slot; 201 with the booking (200 for a replayed idempotency key), 409 when full."""
    parsed = booking.parse_booking_request(json_body(), request.headers.get("Idempotency-Key"))
    result, created = booking.book(get_session(), parsed, now())
    headers = dict(PRIVATE)
    if created:
        headers["Location"] = url_for("outlets_api.booking_detail", code=result.display_code)
    else:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(result.as_dict()), 201 if created else 200, headers


@bp.get("/bookings/<code>")
@allow(PUBLIC)
@contract(responses={200: c.BOOKING_OR_CALENDAR}, errors=(400, 404))
def booking_detail(code: str):
    """The booking with this confirmation code (``<code>.ics``: as a calendar file)."""
    if code.lower().endswith(".ics"):
        return booking_calendar(code[:-4])
    return jsonify(read(booking.get_booking, code).as_dict()), 200, PRIVATE


@bp.delete("/bookings/<code>")
@allow(PUBLIC)
@contract(responses={200: c.Booking}, errors=(404, 409, 429))
@public_write_limits
def booking_cancel(code: str):
    """Cancel the booking (its place is freed)."""
    return jsonify(booking.cancel_booking(get_session(), code, now()).as_dict()), 200, PRIVATE


@bp.patch("/bookings/<code>")
@allow(PUBLIC)
@contract(body=c.RescheduleBody, responses={200: c.Booking}, errors=(404, 409, 422, 429))
@public_write_limits
def booking_reschedule(code: str):
    """Move the booking to another slot: ``{"start": ..., "service": ...}``; atomic."""
    return jsonify(booking.reschedule_booking(get_session(), code, json_body(), now()).as_dict()), 200, PRIVATE


def booking_calendar(code: str):
    """The booking as an iCalendar file (RFC 5545) in the outlet's time zone."""
    body = read(booking.booking_ics, code, now())
    filename = f"booking-{booking.normalise_code(code)}.ics"
    return Response(body, mimetype="text/calendar", headers={
        **PRIVATE, "Content-Disposition": f'attachment; filename="{filename}"'})


# -- admin ---------------------------------------------------------------------------------------
# Every admin route is for admins: a signed-in admin account or an admin's API token.


def _saved(code: str, created: bool):
    """The outlet ``code`` as stored, 201 when ``created``."""
    current = now()
    outlet = store.load_outlet(get_session().connection(), code)
    return jsonify(store.outlet_summary(outlet, current)), 201 if created else 200


@admin_bp.post("/outlets")
@allow(ADMIN)
@contract(body=c.OutletBody, responses={201: c.OutletSummary}, errors=(409, 422))
def admin_create():
    """Create an outlet from a JSON body (fields: docs/outlets.md); 409 if its code exists."""
    return _saved(admin.create_outlet(get_session(), json_body()), True)


@admin_bp.put("/outlets/<code>")
@allow(ADMIN)
@contract(body=c.OutletBody, responses={200: c.OutletSummary, 201: c.OutletSummary}, errors=(422,))
def admin_replace(code: str):
    """Create or replace the outlet ``code`` (retired outlets come back)."""
    return _saved(code, admin.replace_outlet(get_session(), code, json_body()))


@admin_bp.delete("/outlets/<code>")
@allow(ADMIN)
@contract(responses={204: None}, errors=(404, 409))
def admin_retire(code: str):
    """Retire an outlet (hidden from search and booking); 409 while visits are booked."""
    admin.retire_outlet(get_session(), code, now())
    return "", 204


@admin_bp.put("/outlets/<code>/exceptions/<day>")
@allow(ADMIN)
@contract(path=c.ExceptionPath, body=c.ExceptionBody, responses={200: c.OutletSummary}, errors=(404,))
def admin_set_exception(code: str, day: str):
    """Special hours on one date: ``{"hours": "off" | "08:00-12:00,...", "note": "..."}``."""
    admin.set_exception(get_session(), code, _date(day), json_body())
    return _saved(code, False)


@admin_bp.delete("/outlets/<code>/exceptions/<day>")
@allow(ADMIN)
@contract(path=c.ExceptionPath, responses={204: None}, errors=(400, 404))
def admin_delete_exception(code: str, day: str):
    """Return the outlet to its weekly hours on that date."""
    admin.delete_exception(get_session(), code, _date(day))
    return "", 204


@admin_bp.post("/outlets/import")
@allow(ADMIN)
@contract(query=c.ImportQuery, body=c.IMPORT_BODY, responses={200: c.ImportReport}, errors=(400, 422))
def admin_import():
    """Import outlets from a GeoJSON or CSV upload (``file`` field, or the raw body): all or nothing.

    ``?format=geojson|csv`` (default: from the file name); ``?mode=create`` refuses existing codes.
    """
    allow_body(MAX_IMPORT_BYTES)  # werkzeug refuses a longer body with 413 before reading it
    upload = request.files.get("file")
    data, filename = (upload.read(), upload.filename) if upload else (body_bytes(), None)
    if not data:
        raise Invalid(_("send the file as the request body or as the multipart field 'file'"))
    mode = request.args.get("mode", "replace")
    if mode not in ("replace", "create"):
        raise Invalid(_("mode must be replace or create"), field="mode")
    rows = importers.read_outlets(data, importers.format_of(filename, request.args.get("format")))
    return jsonify(importers.import_outlets(get_session(), rows, replace=mode == "replace"))


@admin_bp.get("/outlets/export")
@allow(ADMIN)
@contract(query=c.ExportQuery, responses={200: c.EXPORT}, errors=(400,))
def admin_export():
    """Every active outlet in the import layout: ``?format=geojson`` (default) or ``csv``."""
    file_format = importers.format_of(None, request.args.get("format", "geojson"))
    body = importers.export_outlets(get_session(), file_format, now().date())
    mimetype = "application/geo+json" if file_format == "geojson" else "text/csv"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="outlets.{file_format}"'})
