"""Test oracles built from the raw inputs alone, sharing no code with what they check.

``RawNetwork`` answers traces from the lists a test network is made of (nodes, edges with
their kind and state, sources, customers, out-of-service codes) with plain networkx: nothing
from ``topology`` is used. ``OpeningOracle`` evaluates opening hours minute by minute on the
wall clock zoneinfo shows, from the rules as (start, end) clock minutes: nothing from
``outlets.hours`` is used.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Mapping
from zoneinfo import ZoneInfo

import networkx as nx
import numpy as np

SWITCHGEAR = frozenset({"breaker", "recloser", "switch", "fuse"})
PROTECTIVE = frozenset({"breaker", "recloser", "fuse"})
UTC = timezone.utc
MINUTE = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1)


# -- tracing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Loss:
    """What a change de-energises, by code."""

    nodes: set[str]
    customers: set[str]
    edges: set[str]


@dataclass(frozen=True)
class RawNetwork:
    """A network as the lists it was generated from; edges are (code, kind, from, to, closed)."""

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str, str, str, bool], ...]
    sources: tuple[tuple[str, str], ...]
    customers: tuple[tuple[str, str], ...]
    out_of_service: frozenset[str]

    def in_service(self, code: str) -> bool:
        """Whether the element named ``code`` is in service."""
        return code not in self.out_of_service

    def with_states(self, closed: Mapping[str, bool]) -> RawNetwork:
        """The network with the edges named in ``closed`` set closed (True) or open (False)."""
        return replace(self, edges=tuple((c, k, a, b, closed.get(c, s)) for c, k, a, b, s in self.edges))

    def kind(self, code: str) -> str:
        """The kind of the edge named ``code``."""
        return next(kind for c, kind, *_ in self.edges if c == code)

    def graph(self, *, states: bool = True, opened: Iterable[str] = (), removed: Iterable[str] = ()) -> nx.MultiGraph:
        """In-service nodes and the edges that conduct between them (open ones too unless ``states``).

        ``opened`` edges are left out as open; ``removed`` nodes and edges as out of service.
        """
        opened, removed = set(opened), set(removed)
        graph = nx.MultiGraph()
        graph.add_nodes_from(n for n in self.nodes if self.in_service(n) and n not in removed)
        for code, _, a, b, closed in self.edges:
            if not self.in_service(code) or code in removed or a not in graph or b not in graph:
                continue
            if states and (not closed or code in opened):
                continue
            graph.add_edge(a, b, key=code)
        return graph

    def live_sources(self, graph: nx.MultiGraph) -> set[str]:
        """The nodes of ``graph`` that hold an in-service source."""
        return {node for code, node in self.sources if self.in_service(code) and node in graph}

    def energised(self, opened: Iterable[str] = (), removed: Iterable[str] = ()) -> set[str]:
        """The nodes reachable from an in-service source over conducting edges."""
        graph = self.graph(opened=opened, removed=removed)
        live: set[str] = set()
        for node in self.live_sources(graph):
            live |= nx.node_connected_component(graph, node)
        return live

    def customers_on(self, nodes: set[str]) -> list[str]:
        """The in-service customers on ``nodes``, in list order."""
        return [code for code, node in self.customers if node in nodes and self.in_service(code)]

    def loss(self, opened: Iterable[str] = (), removed_edges: Iterable[str] = (),
             removed_nodes: Iterable[str] = ()) -> Loss:
        """What loses supply when ``opened`` open and the removed elements go out of service."""
        removed_edges = set(removed_edges)
        before = self.energised()
        after = self.energised(opened, removed_edges | set(removed_nodes))
        lost = before - after
        edges = {code for code, _, a, b, _ in self.edges
                 if self.in_service(code) and (a in before or b in before)
                 and (code in removed_edges or not (a in after or b in after))}
        return Loss(lost, set(self.customers_on(lost)), edges)

    def distance_to_source(self, node: str) -> int | None:
        """Fewest conducting edges from ``node`` to a live source (None when not energised)."""
        graph = self.graph()
        if node not in graph:
            return None
        lengths = nx.single_source_shortest_path_length(graph, node)
        found = [lengths[s] for s in self.live_sources(graph) if s in lengths]
        return min(found) if found else None


# -- opening hours ---------------------------------------------------------------------------------
Rules = Mapping[int, Iterable[tuple[int, int]]]


@functools.lru_cache(maxsize=32)
def _wall_clock(tz: ZoneInfo, start: datetime, count: int) -> np.ndarray:
    """What the wall clock in ``tz`` shows at each of ``count`` minutes from ``start`` (UTC), as
    minutes after 1970-01-01 00:00 on that clock; asked of zoneinfo minute by minute."""
    return np.array([((start + i * MINUTE).astimezone(tz).replace(tzinfo=None) - _EPOCH) // MINUTE
                     for i in range(count)], dtype=np.int64)


class OpeningOracle:
    """Opening hours over a window of local dates, evaluated minute by minute.

    ``week`` maps a weekday (Monday 0) to (opens, closes) in minutes after midnight as written
    (closes 1440 for 24:00; closes at or before opens: overnight); ``exceptions`` map a date to
    the same, replacing its weekday's. A wall-clock time that the clock shows twice opens at the
    first showing and closes at the second; one the clock skips is taken as that much later than
    the jump (02:30 in a 02:00 -> 03:00 gap is 30 minutes after it). Questions whose answer may
    lie beyond the window raise ``LookupError``.
    """

    def __init__(self, week: Rules, exceptions: Mapping[date, Iterable[tuple[int, int]]], tz: ZoneInfo,
                 first: date, last: date):
        self.start = datetime.combine(first - timedelta(days=2), datetime.min.time(), UTC)
        self.wall = _wall_clock(tz, self.start, ((last - first).days + 6) * 1440)
        self.periods: list[tuple[date, int, int]] = []
        self.open = np.zeros(len(self.wall), dtype=bool)
        day = first - timedelta(days=1)
        while day <= last + timedelta(days=1):
            midnight = (datetime.combine(day, datetime.min.time()) - _EPOCH) // MINUTE
            for opens, closes in exceptions.get(day, week.get(day.weekday(), ())):
                a = self._minute(midnight + opens, closing=False)
                b = self._minute(midnight + (closes if closes > opens else closes + 1440), closing=True)
                if b > a:
                    self.periods.append((day, a, b))
                    self.open[a:b] = True
            day += timedelta(days=1)
        self.openings = np.flatnonzero(self.open[1:] & ~self.open[:-1]) + 1
        self.last = self.instant(len(self.wall) - 1)

    def _minute(self, wall: int, closing: bool) -> int:
        """The grid minute at which the wall clock shows ``wall`` (minutes after 1970 on it)."""
        shown = np.flatnonzero(self.wall == wall)
        if len(shown):
            return int(shown[-1] if closing else shown[0])
        jump = np.flatnonzero((self.wall[:-1] < wall) & (self.wall[1:] > wall))
        if not len(jump):
            raise ValueError(f"minute {wall} lies outside the window")
        i = int(jump[0])  # skipped: as many minutes after the jump as after the last minute shown
        return i + 1 + (wall - int(self.wall[i]) - 1)

    def instant(self, minute: int) -> datetime:
        """The UTC instant of a grid minute."""
        return self.start + int(minute) * MINUTE

    def index(self, at: datetime) -> int:
        """The grid minute ``at`` falls in."""
        i = (at.astimezone(UTC) - self.start) // MINUTE
        if not 0 <= i < len(self.wall):
            raise LookupError(f"{at} lies outside the window")
        return i

    def is_open(self, at: datetime) -> bool:
        """Whether some interval runs at ``at``."""
        return bool(self.open[self.index(at)])

    def closes_at(self, at: datetime) -> datetime | None:
        """The first closed minute after ``at`` if open and within a week."""
        i = self.index(at)
        if not self.open[i]:
            return None
        closed = np.flatnonzero(~self.open[i + 1:])
        if not len(closed):
            return self._beyond(at, timedelta(days=7))
        end = self.instant(i + 1 + closed[0])
        return end if end - at <= timedelta(days=7) else None

    def next_opening(self, at: datetime, horizon_days: int = 31) -> datetime | None:
        """The first closed-to-open minute after ``at`` within the horizon (UTC)."""
        horizon = timedelta(days=horizon_days)
        later = self.openings[self.openings > self.index(at)]
        if not len(later):
            return self._beyond(at, horizon)
        opens = self.instant(later[0])
        return opens if opens - at <= horizon else None

    def _beyond(self, at: datetime, reach: timedelta) -> None:
        """None, once the window is known to reach past ``reach`` after ``at``."""
        if self.last - at <= reach:
            raise LookupError("the window ends too soon for this question; give a longer one")

    def slots(self, day: date, minutes: int) -> list[tuple[datetime, datetime]]:
        """Steps of ``minutes`` through each period of ``day`` or the night before, starting on ``day``."""
        found = set()
        midnight = (datetime.combine(day, datetime.min.time()) - _EPOCH) // MINUTE
        for start_day, a, b in self.periods:
            if start_day in (day - timedelta(days=1), day):
                for start in range(a, b - minutes + 1, minutes):
                    if midnight <= self.wall[start] < midnight + 1440:
                        found.add((self.instant(start), self.instant(start + minutes)))
        return sorted(found)
