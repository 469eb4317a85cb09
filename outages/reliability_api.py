"""JSON and CSV of the reliability indices (``GET /api/reliability``, ``/api/reliability.csv``) and
the page that charts them month by month (``/reliability``), for dispatchers, planners and admins.

The routes parse the query and call ``outages.reliability_data.reliability_report``; the
counting is in ``outages.reliability``.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, current_app, render_template, request, url_for

from geo.auth import ADMIN, DISPATCHER, PLANNER, allow
from geo.errors import Invalid
from geo.i18n import _
from geo.jsonprovider import iso_times
from geo.openapi import HTML, Answer, contract
from outages import reliability_contracts as c
from outages.reliability_data import BY, ReliabilityQuery, Report, reliability_report, report_csv
from outages.settings import settings_from
from topology.cache import current_topology

bp = Blueprint("reliability", __name__)

# Who reads the indices (docs/access.md): not public, they name feeders and cells.
RELIABILITY_ROLES = (DISPATCHER, PLANNER, ADMIN)
# The longest period one report covers (a decade), so that one request cannot read all history twice over.
MAX_PERIOD_DAYS = 3660
PRIVATE = {"Cache-Control": "no-store"}


def _zone() -> str:
    """The utility's time zone, whose days the indices count (``RELIABILITY_TIME_ZONE``, UTC by default)."""
    name = current_app.config.get("RELIABILITY_TIME_ZONE", "UTC")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuntimeError(f"RELIABILITY_TIME_ZONE {name!r} is not an IANA time zone") from None
    return name


def _day(name: str, default: date) -> date:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_day(name, value)
    except ValueError:
        return _bad_day(name, value)


def _bad_day(name: str, value: str) -> date:
    raise Invalid(_("%(name)s must be a day as YYYY-MM-DD; got %(value)r", name=name, value=value), field=name)


def _flag(name: str) -> bool:
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise Invalid(_("%(name)s must be true or false; got %(value)r", name=name, value=value), field=name)
    return value in ("true", "1")


def parse_query() -> ReliabilityQuery:
    """The report the request asks for; 400 naming the parameter at fault."""
    zone = _zone()
    today = datetime.now(ZoneInfo(zone)).date()
    last = _day("to", today)
    first = _day("from", last - timedelta(days=364))
    if first > last:
        raise Invalid(_("from must not come after to"), field="from")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise Invalid(_("a report covers at most %(days)s days", days=MAX_PERIOD_DAYS), field="from")
    by = request.args.get("by", "system")
    if by not in BY:
        raise Invalid(_("%(name)s must be one of %(values)s; got %(value)r", name="by", values=", ".join(BY),
                        value=by), field="by")
    n = request.args.get("cemi_n", "3")
    if not n.isdigit() or int(n) > 50:
        raise Invalid(_("cemi_n must be a whole number from 0 to 50"), field="cemi_n")
    return ReliabilityQuery(first, last, by, _flag("exclude_planned"), _flag("exclude_med"),
                            settings_from(current_app.config).momentary_minutes, int(n), zone)


def _report() -> Report:
    topology, connection = current_topology()
    return reliability_report(connection, topology, parse_query())


def _csv(report: Report) -> Response:
    query = report.query
    name = f"reliability-{query['by']}-{query['first']}-{query['last']}.csv"
    return Response(report_csv(report), mimetype="text/csv",
                    headers={**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/api/reliability")
@allow(*RELIABILITY_ROLES)
@contract(query=c.ReliabilityQueryModel, errors=(400,),
          responses={200: Answer({"application/json": c.ReportModel, "text/csv": None})})
def reliability_json():
    """SAIDI, SAIFI, CAIDI, CAIFI, MAIFI, MAIFIe and CEMIn over a period, system-wide, per feeder or
    per grid cell, with and without major event days, and month by month (``format=csv``: the rows as CSV)."""
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise Invalid(_("%(name)s must be one of %(values)s; got %(value)r", name="format", values="json, csv",
                        value=fmt), field="format")
    report = _report()
    if fmt == "csv":
        return _csv(report)
    return current_app.json.response(iso_times(report.as_dict())), 200, PRIVATE


@bp.get("/api/reliability.csv")
@allow(*RELIABILITY_ROLES)
@contract(query=c.ReliabilityQueryModel, errors=(400,), responses={200: Answer("text/csv")})
def reliability_csv():
    """The rows of ``/api/reliability`` as CSV, the indices with and without major event days side by side."""
    return _csv(_report())


@bp.get("/reliability")
@allow(*RELIABILITY_ROLES)
@contract(responses={200: Answer(HTML)})
def reliability_page():
    """The reliability page: a period, a grouping and what to leave out; the indices month by month
    as a chart and per feeder or cell as a table."""
    config = {"api": url_for("reliability.reliability_json"), "csv": url_for("reliability.reliability_csv"),
              "by": list(BY)}
    return render_template("reliability.html", config=config)
