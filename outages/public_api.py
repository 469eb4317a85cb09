"""The public outage API: "is my power out?" (``/api/status``) and the open feed
(``/api/public/outages...``) for the public map and for outside users (news sites, emergency
services; docs/open-feed.md). Public, nothing personal; the feed's answers are cacheable
(Cache-Control, ETag, 304 on If-None-Match).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from geo.auth import PUBLIC, allow
from geo.db import get_session
from geo.errors import Invalid
from geo.i18n import _
from geo.jsonprovider import iso_times
from geo.limits import public_lookup_limits
from geo.openapi import Answer, contract
from geo.requests import instant
from outages import public, public_contracts as c, status

bp = Blueprint("outages_public", __name__, url_prefix="/api")

# Outside users may keep the current feed this long; the public map asks again whenever the
# version changes (``no-cache`` on the version itself), so it still shows a change within seconds.
CURRENT_CACHE = "public, max-age=5"
HISTORY_CACHE = "public, max-age=300"
VERSION_CACHE = "public, no-cache"
GEOJSON = "application/geo+json"
MAX_HISTORY = 5000


def _settings() -> public.PublicSettings:
    return public.public_settings(current_app.config)


def _cached(body: dict, etag: str, cache: str, mimetype: str = "application/json") -> Response:
    """``body`` as JSON with its ETag and Cache-Control; 304 without a body when the client holds it."""
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache}
    if etag in request.if_none_match:
        return Response(status=304, headers=headers)
    response = jsonify(iso_times(body))
    response.mimetype = mimetype
    response.headers.update(headers)
    return response


# The latest body of each versioned answer, by (database, answer, version): every open map asks
# again when the version changes, and in a storm the version changes every few seconds; one
# worker builds each version once, however many maps and feed readers ask.
_BUILT: dict[tuple, dict] = {}


def _versioned(build) -> Response:
    """An answer that follows the feed's version: 304 before anything is built when it is unchanged."""
    connection = get_session().connection()
    version, _changed = public.feed_version(connection, _settings())
    if version in request.if_none_match:
        return _cached({}, version, CURRENT_CACHE, GEOJSON)
    key = (str(connection.engine.url), request.endpoint, version)
    if key not in _BUILT:
        for old in [k for k in _BUILT if k[:2] == key[:2]]:
            del _BUILT[old]
        _BUILT[key] = build(connection)
    return _cached(_BUILT[key], version, CURRENT_CACHE, GEOJSON)


@bp.get("/status")
@allow(PUBLIC)
@contract(query=c.StatusQuery, responses={200: c.ServiceStatusModel}, errors=(400, 404, 429))
@public_lookup_limits
def service_status():
    """Is the power out at an account (``account``) or an address (``q``)? The outage, its ETR and
    crew status, its public reference, and who answers locally; several addresses: ``choices``."""
    account, q = request.args.get("account", "").strip(), request.args.get("q", "").strip()
    if bool(account) == bool(q):
        raise Invalid(_("give an account number (account) or an address (q), not both"),
                      field="account" if not account else "q")
    if len(account) > 40 or any(not ch.isalnum() and ch not in "-/ " for ch in account):
        raise Invalid(_("account must be the account number on your bill"), field="account")
    connection = get_session().connection()
    found = status.status_by_account(connection, account) if account else status.status_by_address(connection, q)
    body = found.as_dict()
    if found.outage is not None:
        body["follow"] = url_for("outages_public.outage_feature", code=found.outage.reference)
    return jsonify(iso_times(body)), 200, {"Cache-Control": "no-store"}


@bp.get("/public/outages")
@allow(PUBLIC)
@contract(responses={200: Answer(GEOJSON, c.PublicOutages, headers=c.CACHE_HEADERS), 304: None})
def current_outages():
    """The current outages as coarse areas (GeoJSON), with customers out, ETR, cause and crew status."""
    return _versioned(lambda connection: public.current_outages(connection, _settings()))


@bp.get("/public/outages/cells")
@allow(PUBLIC)
@contract(responses={200: Answer(GEOJSON, c.CellTotals, headers=c.CACHE_HEADERS), 304: None})
def cell_totals():
    """The grid cells with customers out now: totals, the earliest ETR, causes and crew statuses."""
    return _versioned(public.cell_totals)


@bp.get("/public/outages/version")
@allow(PUBLIC)
@contract(responses={200: Answer("application/json", c.FeedVersion, headers=c.CACHE_HEADERS), 304: None})
def feed_version():
    """The feed's version (it changes with any current outage) and when an outage last changed:
    the cheap question a map asks every few seconds."""
    version, changed = public.feed_version(get_session().connection(), _settings())
    body = {"version": version, "changed": changed, "at": datetime.now(timezone.utc)}
    return _cached(body, version, VERSION_CACHE)


@bp.get("/public/outages/history")
@allow(PUBLIC)
@contract(query=c.HistoryQuery, responses={200: Answer(GEOJSON, c.ClosedOutages, headers=c.CACHE_HEADERS), 304: None},
          errors=(400,))
def history():
    """Outages restored between ``from`` and ``to`` (at most a year; default: the last 7 days),
    with start, restoration and customer-minutes."""
    end = instant(request.args["to"], "to") if request.args.get("to") else datetime.now(timezone.utc)
    start = instant(request.args["from"], "from") if request.args.get("from") else end - timedelta(days=7)
    if not start < end or end - start > timedelta(days=public.MAX_HISTORY_DAYS):
        raise Invalid(_("from must come before to, at most %(days)s days before it", days=public.MAX_HISTORY_DAYS),
                      field="from")
    body = public.closed_outages(get_session().connection(), start, end, _settings(), MAX_HISTORY)
    return _cached(body, public.etag_of(body), HISTORY_CACHE, GEOJSON)


@bp.get("/public/outages/<code>")
@allow(PUBLIC)
@contract(responses={200: Answer(GEOJSON, c.PublicOutage, headers=c.CACHE_HEADERS), 304: None}, errors=(404,))
def outage_feature(code: str):
    """One outage by its public reference, current or closed (a Feature)."""
    body = public.public_outage(get_session().connection(), code.strip().upper(), _settings())
    return _cached(body, public.etag_of(iso_times(body)), CURRENT_CACHE, GEOJSON)
