"""The topology cache: one ``Topology`` per process, following the version in ``topology_state``.

``init_app`` gives the application its cache; ``topology_cache`` and ``current_topology`` are
how a request reaches it. Switching stages a new state here, persists it, and installs it
once its transaction has committed; other processes catch up by replaying the events.
"""
from __future__ import annotations

import gc
import threading

import numpy as np
from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.db import get_session
from topology.index import Topology
from topology.network import FREEZE_GC_PAST
from topology.read import read_network, read_version

__all__ = ["TopologyCache", "init_app", "topology_cache", "current_topology"]

_EXTENSION = "topology_cache"


class TopologyCache:
    """The current ``Topology`` of one database, rebuilt or caught up when its version changes.

    Every request reads the version (one cheap query). When it moved on only by switching
    operations, their events are replayed on the cached state (the sections they touch are
    indexed again); any other change (an import) rebuilds everything from PostGIS.
    """

    def __init__(self):
        """An empty cache: the first ``get`` builds the topology."""
        self._lock = threading.Lock()
        self._current: Topology | None = None
        self._pending: dict = {}
        self.rebuilds = 0

    def get(self, connection: Connection, version: tuple | None = None) -> Topology:
        """The topology at the version ``connection`` sees (``version``: read already, in the
        same transaction, e.g. with ``read.VERSION_COLUMNS``)."""
        key = read_version(connection) if version is None else version
        current = self._current
        if current is not None and current.version == key:
            return current
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        with self._lock:
            current = self._current
            if current is not None and current.version == key:
                return current
            topology = self._catch_up(connection, current, key) if current is not None else None
            if topology is None:
                data, key = read_network(connection)
                data.warm_lookups()
                topology = Topology(data, version=key)
                self.rebuilds += 1
                if data.node_count > FREEZE_GC_PAST:
                    gc.freeze()  # keep the collector from walking the millions of code strings again
            if self._current is None or self._current.version[0] <= key[0]:
                self._current = topology
            return topology

    def _catch_up(self, connection: Connection, current: Topology, key) -> Topology | None:
        """``current`` brought to ``key`` by replaying switching events, or None if it cannot be."""
        if key[0] <= current.version[0]:
            return None
        rows = connection.execute(text(
            "SELECT e.topology_version, d.id, e.to_state FROM switching_events e JOIN devices d ON d.id = e.device_id "
            "WHERE e.topology_version > :since AND e.topology_version <= :until ORDER BY e.topology_version, e.id"
        ), {"since": current.version[0], "until": key[0]}).all()
        if {row[0] for row in rows} != set(range(current.version[0] + 1, key[0] + 1)):
            return None  # some version came from something other than switching
        data = current.data
        device_ids = data.edge_id[data.edge_table == 1]
        first_device = int(np.flatnonzero(data.edge_table == 1)[0]) if len(device_ids) else 0
        states: dict[int, bool] = {}
        for _, device_id, to_state in rows:
            position = int(np.searchsorted(device_ids, device_id))
            if position >= len(device_ids) or device_ids[position] != device_id:
                return None
            states[first_device + position] = to_state == "closed"
        return current.operated(states, version=key)

    def install(self, topology: Topology) -> None:
        """Make ``topology`` current (after the transaction that produced it committed)."""
        with self._lock:
            self._pending.pop(topology.version, None)
            if self._current is None or self._current.version[0] <= topology.version[0]:
                self._current = topology

    def stage(self, topology: Topology) -> None:
        """Offer ``topology`` to readers that see its version before ``install`` is called."""
        self._pending[topology.version] = topology

    def discard(self, topology: Topology) -> None:
        """Forget a staged topology whose transaction rolled back."""
        self._pending.pop(topology.version, None)


def init_app(app: Flask) -> None:
    """Give ``app`` its topology cache (empty: the first request builds it)."""
    app.extensions[_EXTENSION] = TopologyCache()


def topology_cache() -> TopologyCache:
    """The current application's cache of the current ``Topology``."""
    return current_app.extensions[_EXTENSION]


def current_topology() -> tuple[Topology, Connection]:
    """The topology at the version the request's transaction sees, and that connection."""
    connection = get_session().connection()
    return topology_cache().get(connection), connection
