"""Power-flow verification of restoration plans, with the optional pandapower extra.

A plan's final state (``Topology.operated``) becomes a pandapower net of the part it energises
around the switches it closes: a bus per node at the node's voltage, an external grid (1.0 pu)
per in-service source, a line per segment with its conductor's standard type (its ampacity as
``max_i_ka`` when known), a transformer per transformer device sized by ``rated_kva``, a bus-bus
switch per switchgear device, and each customer's demand as a load at power factor 0.95.
``runpp`` then reports the most loaded line and transformer and the lowest and highest
voltages; the plan verifies when nothing is loaded over 100 % and every voltage lies within the
band. Model, standard types and assumptions: docs/tracing.md, "Power-flow verification".

pandapower is imported on first use only: without it ``PowerFlowUnavailable`` (501) says so.

Examples
--------
>>> from topology.index import Topology
>>> from topology.network import network_data_from_lists
>>> data = network_data_from_lists(  # src -B1- a -s1- b (C1)
...     nodes=["src", "a", "b"], sources=[("S", "src")],
...     edges=[("B1", "breaker", "src", "a", True), ("s1", "segment", "a", "b", True)],
...     service_points=[("C1", "b")])
>>> found = verify(Topology(data), conductors(data, ["s1"], [500.0], [None]))
>>> found.converged, found.ok, found.line_loading.code
(True, True, 's1')
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import DomainError
from geo.i18n import _
from topology.index import Topology
from topology.network import EDGE_KINDS, NetworkData
from topology.restoration import POWER_FACTOR, Restoration, demand_kw

__all__ = ["BAND", "VERIFIED_PLANS", "STD_TYPES", "Conductors", "Extreme", "PowerFlow", "PowerFlowUnavailable",
           "conductors", "read_conductors", "verify", "verify_plans"]

BAND = (0.95, 1.05)     # the voltages (pu) a plan must keep every energised bus within
VERIFIED_PLANS = 5      # the best plans verified by a power flow: the rest are rarely chosen
# The conductors of the demo city (topology/demo.py) and their nearest pandapower standard types;
# a conductor already named as a standard type (a net imported from pandapower) keeps its own.
STD_TYPES = {
    "NA2XS2Y 3x1x240 RM/25 12/20kV": "NA2XS2Y 1x240 RM/25 12/20 kV",
    "NA2XS2Y 3x1x95 RM/16 12/20kV": "NA2XS2Y 1x95 RM/25 12/20 kV",
    "Al/St 95/15": "94-AL1/15-ST1A 20.0",
    "Al/St 50/8": "48-AL1/8-ST1A 20.0",
    "NAYY-J 4x150 SE 0.6/1kV": "NAYY 4x150 SE",
}
# An unknown conductor: a common cable of its voltage level (low voltage up to 1 kV).
FALLBACK_STD_TYPES = ((1.0, "NAYY 4x150 SE"), (math.inf, "NA2XS2Y 1x240 RM/25 12/20 kV"))
# Transformers take the per-unit figures of the standard type nearest their size, at their own rating.
TRANSFORMER_TYPES = ((250.0, "0.25 MVA 20/0.4 kV"), (400.0, "0.4 MVA 20/0.4 kV"), (math.inf, "0.63 MVA 20/0.4 kV"))
DEFAULT_KV = 20.0        # a node whose voltage neither it nor its level's other nodes know
DEFAULT_KVA = 400.0      # a transformer without a rating
MIN_LENGTH_KM = 0.001    # a segment without a length, or of length 0: pandapower needs an impedance
EDGE_TRANSFORMER = EDGE_KINDS.index("transformer")


class PowerFlowUnavailable(DomainError):
    """The power flow was asked for and the optional pandapower extra is not installed."""

    status = 501
    title = _("Not implemented")


def _pandapower():
    """The pandapower module, imported on first use (it takes seconds and is optional)."""
    try:
        import pandapower
    except ImportError:
        raise PowerFlowUnavailable(_("a power flow needs the optional pandapower extra "
                                     "(pip install 'gridatlas[pandapower]'), which is not installed")) from None
    return pandapower


# -- segments' lengths and conductors --------------------------------------------------------------
@dataclass(frozen=True)
class Conductors:
    """Each edge's length (km, NaN where unknown or not a segment) and conductor (None where unknown)."""

    length_km: np.ndarray
    name: np.ndarray


def conductors(data: NetworkData, codes, length_m, names) -> Conductors:
    """``Conductors`` from segment codes, their lengths in metres and conductor names (unknown codes ignored)."""
    edges = data.find("segments", list(codes))
    known = edges >= 0
    length_km = np.full(data.edge_count, np.nan)
    length_km[edges[known]] = np.asarray(length_m, dtype=np.float64)[known] / 1000.0
    name = np.full(data.edge_count, None, dtype=object)
    name[edges[known]] = np.asarray(list(names), dtype=object)[known]
    return Conductors(length_km, name)


_SEGMENTS = text("SELECT code, length_m, conductor FROM segments")


def read_conductors(connection: Connection, data: NetworkData) -> Conductors:
    """The segments' lengths and conductors from PostGIS, read once per network."""
    def build():
        rows = connection.execute(_SEGMENTS).all()
        return conductors(data, [r.code for r in rows], [math.nan if r.length_m is None else r.length_m for r in rows],
                          [r.conductor for r in rows])
    return data.shared("powerflow_conductors", build)


# -- the result ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Extreme:
    """The element where a figure is at its worst, and the figure."""

    code: str
    value: float


@dataclass(frozen=True)
class PowerFlow:
    """What the power flow of a state found: the worst loadings and voltages."""

    converged: bool
    band: tuple[float, float]
    buses: int
    line_loading: Extreme | None = None          # percent
    transformer_loading: Extreme | None = None   # percent
    voltage_min: Extreme | None = None           # pu
    voltage_max: Extreme | None = None

    def reasons(self) -> list[str]:
        """Why the state does not verify, in the reader's language (empty when it does)."""
        if not self.converged:
            return [_("the power flow did not converge")]
        low, high = self.band
        found = [_("%(kind)s %(code)s would be loaded at %(percent).1f %%", kind=kind, code=e.code, percent=e.value)
                 for kind, e in ((_("line"), self.line_loading), (_("transformer"), self.transformer_loading))
                 if e is not None and e.value > 100.0]
        if self.voltage_min is not None and self.voltage_min.value < low:
            found.append(_("bus %(code)s would be at %(pu).3f pu, below %(limit)s pu",
                           code=self.voltage_min.code, pu=self.voltage_min.value, limit=low))
        if self.voltage_max is not None and self.voltage_max.value > high:
            found.append(_("bus %(code)s would be at %(pu).3f pu, above %(limit)s pu",
                           code=self.voltage_max.code, pu=self.voltage_max.value, limit=high))
        return found

    @property
    def ok(self) -> bool:
        """Converged, nothing over 100 % and every voltage within the band."""
        return not self.reasons()

    def as_dict(self) -> dict:
        """The API's JSON form."""
        def extreme(found: Extreme | None, key: str, unit: str) -> dict | None:
            return None if found is None else {key: found.code, unit: round(found.value, 4)}
        return {"converged": self.converged, "ok": self.ok, "band": list(self.band), "buses": self.buses,
                "max_line_loading": extreme(self.line_loading, "element", "percent"),
                "max_transformer_loading": extreme(self.transformer_loading, "element", "percent"),
                "min_voltage": extreme(self.voltage_min, "bus", "pu"),
                "max_voltage": extreme(self.voltage_max, "bus", "pu"), "reasons": self.reasons()}


# -- the net ---------------------------------------------------------------------------------------
def _voltages_kv(data: NetworkData) -> np.ndarray:
    """Each node's voltage: its own, else the highest its level knows (the nodes joined by
    anything but transformers), else ``DEFAULT_KV``."""
    def build():
        edges = np.flatnonzero(data.edge_kind != EDGE_TRANSFORMER)
        n = data.node_count
        graph = coo_matrix((np.ones(len(edges)), (data.edge_u[edges], data.edge_v[edges])), shape=(n, n))
        count, label = connected_components(graph, directed=False)
        known = data.node_voltage_kv.astype(np.float64)
        level = np.full(count, np.nan)
        np.fmax.at(level, label, known)
        return np.where(np.isnan(known), np.nan_to_num(level[label], nan=DEFAULT_KV), known)
    return data.shared("powerflow_voltages", build)


def _std_type(pp_types, name, kv: float) -> str:
    """The pandapower line type of a conductor: its mapped or own name, else the fallback for ``kv``."""
    name = STD_TYPES.get(name, name)
    if isinstance(name, str) and name in pp_types.index:
        return name
    return next(std for up_to, std in FALLBACK_STD_TYPES if kv <= up_to)


def _energised_around(state: Topology, around: np.ndarray | None) -> np.ndarray:
    """The energised nodes of ``state``, only those joined to ``around`` when given (the part a plan touches)."""
    data = state.data
    keep = state.energised & data.node_in_service
    if around is None or not len(around):
        return keep
    u, v = data.edge_u, data.edge_v
    live = state.closed & data.edge_in_service & keep[u] & keep[v]
    n = data.node_count
    graph = coo_matrix((np.ones(int(live.sum())), (u[live], v[live])), shape=(n, n))
    _count, label = connected_components(graph, directed=False)
    return keep & np.isin(label, label[around])


def _add_lines(pp, net, state: Topology, lines: Conductors, edges: np.ndarray, kv: np.ndarray) -> None:
    """A line per segment of ``edges``, with its standard type's impedance and its own ampacity if known."""
    data = state.data
    types = pp.available_std_types(net, "line")
    u, v = data.edge_u[edges], data.edge_v[edges]
    chosen = types.loc[[_std_type(types, lines.name[e], kv[data.edge_u[e]]) for e in edges.tolist()]]
    ampacity = data.edge_ampacity_a[edges].astype(np.float64)
    max_i_ka = np.where(np.isnan(ampacity), chosen["max_i_ka"].to_numpy(np.float64), ampacity / 1000.0)
    length = np.fmax(np.nan_to_num(lines.length_km[edges], nan=MIN_LENGTH_KM), MIN_LENGTH_KM)
    pp.create_lines_from_parameters(
        net, u, v, length, chosen["r_ohm_per_km"].to_numpy(np.float64), chosen["x_ohm_per_km"].to_numpy(np.float64),
        chosen["c_nf_per_km"].to_numpy(np.float64), max_i_ka, name=data.edge_code[edges].tolist(), index=edges)


def _add_transformers(pp, net, state: Topology, edges: np.ndarray, kv: np.ndarray) -> None:
    """A transformer per device of ``edges`` between two voltages (sized by ``rated_kva``, the
    per-unit figures of the standard type nearest that size), an impedance of the same figures
    between nodes of one voltage."""
    data = state.data
    types = pp.available_std_types(net, "trafo")
    for edge in edges.tolist():
        rated = float(data.edge_rated_kva[edge])
        sn_kva = DEFAULT_KVA if math.isnan(rated) else rated
        std = types.loc[next(name for up_to, name in TRANSFORMER_TYPES if sn_kva <= up_to)]
        a, b = int(data.edge_u[edge]), int(data.edge_v[edge])
        hv, lv = (a, b) if kv[a] >= kv[b] else (b, a)
        if kv[hv] > kv[lv]:
            pp.create_transformer_from_parameters(
                net, hv, lv, sn_kva / 1000.0, kv[hv], kv[lv], std.vkr_percent, std.vk_percent, std.pfe_kw,
                std.i0_percent, name=data.edge_code[edge], index=edge)
        else:
            vkr, vk = std.vkr_percent / 100.0, std.vk_percent / 100.0
            pp.create_impedance(net, hv, lv, rft_pu=vkr, xft_pu=math.sqrt(vk ** 2 - vkr ** 2),
                                sn_mva=sn_kva / 1000.0, name=data.edge_code[edge])


def _build(pp, state: Topology, lines: Conductors, keep: np.ndarray):
    """The pandapower net of the nodes ``keep`` in ``state``: buses, lines, transformers,
    switches, loads and external grids, numbered by node and edge position."""
    data = state.data
    kv = _voltages_kv(data)
    net = pp.create_empty_network()
    nodes = np.flatnonzero(keep)
    pp.create_buses(net, len(nodes), kv[nodes], index=nodes, name=data.node_code[nodes].tolist())
    u, v = data.edge_u, data.edge_v
    inside = data.edge_in_service & keep[u] & keep[v]
    if (segments := np.flatnonzero(inside & (data.edge_table == 0))).size:
        _add_lines(pp, net, state, lines, segments, kv)
    transformer = data.edge_kind == EDGE_TRANSFORMER
    _add_transformers(pp, net, state, np.flatnonzero(inside & transformer & state.closed), kv)
    # every other device joins its nodes when closed (switchgear open in the plan stays open)
    if (devices := np.flatnonzero(inside & (data.edge_table == 1) & ~transformer)).size:
        pp.create_switches(net, u[devices], v[devices], "b", closed=state.closed[devices],
                           name=data.edge_code[devices].tolist())
    customers = data.customer_order[keep[data.sp_node[data.customer_order]]]
    p_mw = np.bincount(data.sp_node[customers], weights=demand_kw(data)[0][customers],
                       minlength=data.node_count)[nodes] / 1000.0
    pp.create_loads(net, nodes, p_mw, q_mvar=p_mw * math.tan(math.acos(POWER_FACTOR)))
    for source in np.flatnonzero(data.source_in_service & keep[data.source_node]).tolist():
        pp.create_ext_grid(net, int(data.source_node[source]), vm_pu=1.0, name=data.source_code[source])
    return net


def _worst(frame, column: str, codes, highest: bool = True) -> Extreme | None:
    """The row of ``frame`` with the highest (or lowest) ``column``, as the code of its element."""
    values = frame[column].dropna()
    if values.empty:
        return None
    index = values.idxmax() if highest else values.idxmin()
    return Extreme(str(codes[index]), float(values[index]))


def verify(state: Topology, lines: Conductors, band: tuple[float, float] = BAND,
           around: np.ndarray | None = None) -> PowerFlow:
    """The power flow of ``state``'s energised part (the nodes joined to ``around`` when given):
    whether it converges, its most loaded line and transformer, its lowest and highest voltage.

    Notes
    -----
    One Newton-Raphson power flow (``pandapower.runpp``) of the part: tens of milliseconds for
    a feeder of a few hundred buses, on top of building the net.
    """
    pp = _pandapower()
    data = state.data
    keep = _energised_around(state, around)
    if not keep.any():
        return PowerFlow(converged=True, band=band, buses=0)
    net = _build(pp, state, lines, keep)
    try:
        # numba only speeds it up; without it pandapower warns on every run unless told
        pp.runpp(net, calculate_voltage_angles=False, init="flat", numba=importlib.util.find_spec("numba") is not None)
    except pp.powerflow.LoadflowNotConverged:
        return PowerFlow(converged=False, band=band, buses=len(net.bus))
    return PowerFlow(converged=True, band=band, buses=len(net.bus),
                     line_loading=_worst(net.res_line, "loading_percent", data.edge_code),
                     transformer_loading=_worst(net.res_trafo, "loading_percent", data.edge_code),
                     voltage_min=_worst(net.res_bus, "vm_pu", data.node_code, highest=False),
                     voltage_max=_worst(net.res_bus, "vm_pu", data.node_code))


def verify_plans(topology: Topology, found: Restoration, lines: Conductors, band: tuple[float, float] = BAND,
                 limit: int = VERIFIED_PLANS) -> Restoration:
    """``found`` with the best ``limit`` plans verified by the power flow of their final state,
    around the switches they close."""
    data = topology.data
    verified = []
    for rank, plan in enumerate(found.plans):
        if rank < limit:
            opened, closed = data.find("devices", plan.open), data.find("devices", plan.close)
            final = topology.operated({int(e): False for e in opened} | {int(e): True for e in closed})
            around = np.concatenate([data.edge_u[closed], data.edge_v[closed]])
            plan = replace(plan, powerflow=verify(final, lines, band, around))
        verified.append(plan)
    return replace(found, plans=verified)
