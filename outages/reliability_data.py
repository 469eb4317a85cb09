"""Reliability reports: the customer interruptions read from the outages' frozen steps (the SQL
of reliability is all here), the customers served from the network, and the indices of
``outages.reliability`` over them, system-wide, per feeder or per grid cell, with and without
major event days.

An interruption is a customer of an outage's latest ``affected`` step (a move freezes the
customers again; the latest is the truth), from the outage's start to the ``restored`` step that
gave it back (each step's customers with their own time), or still out. Outages only predicted
(never confirmed) or cancelled interrupt no one here; a planned outage counts from its window's
start, once that has come.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.cells import contents
from outages.reliability import (Interruptions, MedThreshold, daily_saidi, grouped_indices, indices,
                                 major_event_days, med_threshold, monthly_indices)
from topology.cells import customer_cells
from topology.index import Topology

__all__ = ["ReliabilityQuery", "Report", "reliability_report", "report_csv", "read_interruptions", "BY", "MED_HISTORY_DAYS",
           "MED_MIN_HISTORY_DAYS"]

BY = ("system", "feeder", "cell")
# IEEE 1366 computes T_MED from the five years before the reporting period, and asks for at least one.
MED_HISTORY_DAYS = 5 * 365
MED_MIN_HISTORY_DAYS = 365
_EPOCH = date(1970, 1, 1)

_COUNTED = "o.state NOT IN ('predicted', 'cancelled') AND o.started_at <= now()"
_LOCAL_DAY = "(CAST(o.started_at AT TIME ZONE :zone AS date) - DATE '1970-01-01')"

# One row per customer and outage; the outages by the local day they began on. The customers are
# unnested last, from steps joined to their outage (thousands of rows), never joined to as rows
# themselves: with a fresh table's estimates that join became a nested loop (70 s at 106,000).
# A restored step gives back only customers of the latest affected step (outages/lifecycle.py):
# those are the restored interruptions; the rest of that step is still out, or ended with its outage.
_INTERRUPTIONS = text(f"""
WITH counted AS (
  SELECT o.id, extract(epoch FROM o.started_at)::float8 AS started, extract(epoch FROM o.restored_at)::float8 AS restored,
         o.origin = 'planned' AS planned, {_LOCAL_DAY} AS day FROM outages o
  WHERE {_COUNTED} AND o.started_at >= CAST(CAST(:first AS date) AS timestamp) AT TIME ZONE :zone
    AND o.started_at < CAST(CAST(:last AS date) + 1 AS timestamp) AT TIME ZONE :zone),
latest AS (
  SELECT s.outage_id, max(s.number) AS number FROM outage_steps s JOIN counted c ON c.id = s.outage_id
  WHERE s.kind = 'affected' GROUP BY s.outage_id)
SELECT unnest(s.customers), c.id, c.started, extract(epoch FROM s.occurred_at)::float8, c.planned, c.day
FROM outage_steps s JOIN latest l ON l.outage_id = s.outage_id AND s.number > l.number JOIN counted c ON c.id = s.outage_id
WHERE s.kind = 'restored'
UNION ALL
SELECT out.customer, c.id, c.started, c.restored, c.planned, c.day
FROM outage_steps s JOIN latest l ON l.outage_id = s.outage_id AND s.number = l.number JOIN counted c ON c.id = s.outage_id
CROSS JOIN LATERAL (SELECT unnest(s.customers) EXCEPT SELECT unnest(r.customers) FROM outage_steps r
                    WHERE r.outage_id = s.outage_id AND r.kind = 'restored' AND r.number > s.number) AS out(customer)
WHERE s.customer_count > (SELECT coalesce(sum(r.customer_count), 0) FROM outage_steps r
                          WHERE r.outage_id = s.outage_id AND r.kind = 'restored' AND r.number > s.number)
""")


_FIRST_DAY = text(f"SELECT min({_LOCAL_DAY}) FROM outages o WHERE {_COUNTED}")


def _day(value: date) -> int:
    return (value - _EPOCH).days


def _date(day: int) -> date:
    return _EPOCH + timedelta(days=int(day))


def read_interruptions(connection: Connection, first: date, last: date, zone: str) -> Interruptions:
    """The interruptions of the outages that began from local day ``first`` to ``last`` (both included)."""
    return Interruptions.of(connection.execute(_INTERRUPTIONS, {"first": first, "last": last, "zone": zone}).all())


@dataclass(frozen=True)
class ReliabilityQuery:
    """What a report covers: local days ``first`` to ``last`` (both included) in ``zone``, the
    grouping, what is left out, the momentary threshold and the n of CEMIn."""

    first: date
    last: date
    by: str = "system"
    exclude_planned: bool = False
    exclude_med: bool = False
    momentary_minutes: float = 5.0
    cemi_n: int = 3
    zone: str = "UTC"


@dataclass(frozen=True)
class MedView:
    """The major event days found (2.5 beta) and what they were found from; ``basis`` is
    ``prior`` (the up to five years before the period) or ``including_period`` (less than a year
    before it: the up to five years up to its end), None without a year of history."""

    available: bool
    basis: str | None = None
    history_from: date | None = None
    history_to: date | None = None
    t_med: float | None = None
    alpha: float | None = None
    beta: float | None = None
    days_with_interruptions: int = 0
    days: list[date] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    """A system, feeder or cell (``key`` None: customers in no feeder or no cell) and its indices."""

    key: str | None
    customers_served: int
    indices: dict
    indices_excluding_med: dict | None


@dataclass(frozen=True)
class Report:
    """The indices of a period, per row, and month by month for the system (with MEDs left out
    when the query asks)."""

    query: dict
    med: MedView
    rows: list[Row]
    months: list[dict]

    def as_dict(self) -> dict:
        return asdict(self)


def _history_window(first_recorded: int | None, query: ReliabilityQuery) -> tuple[str, int, int] | None:
    """Which days T_MED is computed from: the basis and first and last day, or None."""
    start, end = _day(query.first), _day(query.last)
    if first_recorded is None:
        return None
    if start - max(first_recorded, start - MED_HISTORY_DAYS) >= MED_MIN_HISTORY_DAYS:
        return "prior", max(first_recorded, start - MED_HISTORY_DAYS), start - 1
    if end - first_recorded + 1 >= MED_MIN_HISTORY_DAYS:
        return "including_period", max(first_recorded, end - MED_HISTORY_DAYS + 1), end
    return None


def _major_events(connection: Connection, query: ReliabilityQuery, served: int,
                  period: Interruptions) -> MedView:
    """The MEDs of the period by the 2.5 beta method over the daily SAIDI of unplanned
    interruptions (planned work is no major event, and the days must not move with the
    ``exclude_planned`` choice)."""
    window = _history_window(connection.execute(_FIRST_DAY, {"zone": query.zone}).scalar(), query)
    if window is None:
        return MedView(False)
    basis, first, last = window
    history = period if basis == "including_period" and first >= _day(query.first) else read_interruptions(
        connection, _date(first), _date(last), query.zone)
    unplanned = history.where(~history.planned)
    threshold: MedThreshold | None = med_threshold(daily_saidi(unplanned, served, first, last, query.momentary_minutes))
    if threshold is None:
        return MedView(False, basis, _date(first), _date(last))
    start, end = _day(query.first), _day(query.last)
    in_period = period.where(~period.planned)
    days = major_event_days(daily_saidi(in_period, served, start, end, query.momentary_minutes), start, threshold)
    return MedView(True, basis, _date(first), _date(last), threshold.t_med, threshold.alpha, threshold.beta,
                   threshold.days, [_date(day) for day in days])


def _groups(connection: Connection, topology: Topology, by: str, customers: np.ndarray) -> tuple[np.ndarray, dict]:
    """Each interruption's group (its customer's feeder or cell) and each group's customers served."""
    data = topology.data
    if by == "feeder":
        feeder = data.node_feeder[data.sp_node]
        codes = np.append(data.feeder_code, None)  # position -1: no feeder
        counts = np.bincount(feeder[data.sp_in_service] + 1, minlength=len(codes))
        served = {codes[k - 1]: int(n) for k, n in enumerate(counts) if n}
        order = np.argsort(data.sp_id)
        at = np.searchsorted(data.sp_id, customers, sorter=order).clip(0, max(len(order) - 1, 0))
        of = np.full(len(customers), -1)
        known = data.sp_id[order[at]] == customers if len(order) else np.zeros(len(customers), dtype=bool)
        of[known] = feeder[order[at[known]]]
        return codes[of], served
    held = contents(connection)
    cell_of = customer_cells(connection, np.unique(customers), held)
    served = dict(held.customers)
    if held.outside:
        served[None] = held.outside
    return np.array([cell_of.get(int(c)) for c in customers], dtype=object), served


def _rows(connection: Connection, topology: Topology, query: ReliabilityQuery, period: Interruptions,
          kept: np.ndarray | None) -> list[Row]:
    """The report's rows; ``kept``: the interruptions not on a major event day (None: no MEDs known)."""
    served = int(topology.data.sp_in_service.sum())
    args = (query.momentary_minutes, query.cemi_n)
    if query.by == "system":
        found = {"system": (served, indices(period, served, *args),
                            indices(period.where(kept), served, *args) if kept is not None else None)}
    else:
        group_of, served_by = _groups(connection, topology, query.by, period.customer)
        every = grouped_indices(period, group_of, served_by, *args)
        without = grouped_indices(period.where(kept), group_of[kept], served_by, *args) if kept is not None else {}
        found = {key: (served_by.get(key, 0), value, without.get(key)) for key, value in every.items()}
    return [Row(key, n, a.as_dict(), b.as_dict() if b is not None else None) for key, (n, a, b) in found.items()]


def reliability_report(connection: Connection, topology: Topology, query: ReliabilityQuery) -> Report:
    """The indices of ``query``'s period; customers served are the network's service points in
    service now (the denominator IEEE 1366 asks for, as the network stands)."""
    served = int(topology.data.sp_in_service.sum())
    period = read_interruptions(connection, query.first, query.last, query.zone)
    med = _major_events(connection, query, served, period)
    if query.exclude_planned:
        period = period.where(~period.planned)
    kept = ~np.isin(period.day, [_day(day) for day in med.days]) if med.available else None
    rows = _rows(connection, topology, query, period, kept)
    shown = period.where(kept) if query.exclude_med and kept is not None else period
    months = monthly_indices(shown, served, query.momentary_minutes, query.cemi_n)
    return Report(asdict(query), med, rows, _every_month(query, months, served))


def _every_month(query: ReliabilityQuery, months: dict, served: int) -> list[dict]:
    """Every month of the period, those without interruptions with zeros (a chart without gaps)."""
    none = indices(Interruptions.of([]), served, query.momentary_minutes, query.cemi_n)
    names = [str(m) for m in np.arange(np.datetime64(query.first, "M"), np.datetime64(query.last, "M") + 1)]
    return [{"month": name, **months.get(name, none).as_dict()} for name in names]


# The indices a CSV row carries, in order.
CSV_INDICES = ("saidi", "saifi", "caidi", "caifi", "maifi", "maifi_e", "cemi", "customer_interruptions",
               "customers_interrupted", "customer_minutes", "in_progress", "momentary_interruptions")


def report_csv(report: Report) -> str:
    """The report's rows as CSV: key, customers served, then each index with major event days and
    without them (``_xmed``; empty when no MED could be determined).

    >>> row = Row("F1", 10, dict.fromkeys(CSV_INDICES, 1.5), None)
    >>> print(report_csv(Report({"cemi_n": 3}, MedView(False), [row], [])).splitlines()[1][:24])
    F1,10,1.5,1.5,1.5,1.5,1.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cemi = f"cemi{report.query['cemi_n']}"
    names = [cemi if name == "cemi" else name for name in CSV_INDICES]
    writer.writerow(["key", "customers_served", *names, *(f"{name}_xmed" for name in names)])
    for row in report.rows:
        without = row.indices_excluding_med or {}
        writer.writerow([row.key if row.key is not None else "", row.customers_served,
                         *(_cell(row.indices.get(name)) for name in CSV_INDICES),
                         *(_cell(without.get(name)) for name in CSV_INDICES)])
    return out.getvalue()


def _cell(value) -> str:
    """A CSV cell: a float rounded to six significant digits, nothing for None."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
