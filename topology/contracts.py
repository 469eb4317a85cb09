"""The models of the network's, traces' and switching's API contract (``geo.openapi``).

The views keep their own parsing and messages; these models describe them, and the contract
tests (schemathesis) check that every answer matches. With ``?lists=false`` a trace answers its
counts only, so the lists of codes are optional.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geo.openapi import GEOJSON, JSON, Answer, FeatureCollection, model_of
from topology import trace

Codes = list[str] | None  # absent with ?lists=false


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- parameters ------------------------------------------------------------------------------------
class LayerPath(BaseModel):
    layer: Literal["substations", "segments", "devices", "transformers", "sources", "transformer_areas"] = Field(
        description="a network layer (service_points: GET /api/network/service_points, for dispatchers and planners)")


class LayerQuery(BaseModel):
    bbox: str | None = Field(None, description="west,south,east,north in degrees (WGS 84)",
                             examples=["8.35,48.98,8.45,49.05"])
    limit: int | None = Field(None, ge=1, description="at most this many features (capped by API_MAX_FEATURES)")
    kind: str | None = Field(None, description="devices only: kinds, comma-separated (breaker,switch,fuse,...)")
    state: Literal["open", "closed"] | None = Field(None, description="devices only: their current state")
    level: Literal["mv", "lv"] | None = Field(None, description="segments and devices only: voltage level")


class BboxLimitQuery(BaseModel):
    bbox: str | None = Field(None, description="west,south,east,north in degrees (WGS 84)")
    limit: int | None = Field(None, ge=1, description="at most this many features")


class TraceQuery(BaseModel):
    format: Literal["json", "geojson"] = Field("json", description="geojson: the elements concerned as features")
    lists: Literal["true", "false"] = Field("true", description="false: counts only, no lists of codes")
    limit: int | None = Field(None, ge=1, description="format=geojson: at most this many features")


class RestorationQuery(BaseModel):
    verify: Literal["powerflow"] | None = Field(
        None, description="powerflow: the best plans (at most 5) verified by a power flow of the network after them "
                          "(needs the optional pandapower extra; 501 without it)")


class LogQuery(BaseModel):
    limit: int | None = Field(None, ge=1, description="at most this many operations (default 50, at most 500)")
    device: str | None = Field(None, description="only operations of this device")
    before: int | None = Field(None, ge=0, description="the next_before of the previous page")


# -- bodies ----------------------------------------------------------------------------------------
class ChangeBody(BaseModel):
    """Devices to open and elements to take out of service, by code."""

    model_config = ConfigDict(extra="forbid")
    open: list[str] = Field(default_factory=list, max_length=10_000)
    out_of_service: list[str] = Field(default_factory=list, max_length=10_000)


class SwitchingOperation(BaseModel):
    device: str = Field(min_length=1)
    action: Literal["open", "close"]


class SwitchingBody(BaseModel):
    """Operate devices atomically, as the signed-in account (the body names no actor)."""

    model_config = ConfigDict(extra="forbid")
    operations: list[SwitchingOperation] = Field(min_length=1)
    reason: str = Field(min_length=1)


class PlanBody(BaseModel):
    """A restoration plan to simulate: devices to open, then devices to close, by code."""

    model_config = ConfigDict(extra="forbid")
    open: list[str] = Field(default_factory=list, max_length=10_000)
    close: list[str] = Field(default_factory=list, max_length=10_000)


# -- answers ---------------------------------------------------------------------------------------
class Extent(BaseModel):
    bbox: list[float] | None = Field(description="[west, south, east, north]; null for an empty network")


class Feeder(_Open):
    code: str
    name: str | None
    substation: str | None
    voltage_kv: float | None
    colour: str | None


class Feeders(BaseModel):
    feeders: list[Feeder]


class Counted(_Open):
    """Counts of customers, nodes, segments and devices, and their codes (unless ?lists=false)."""

    customer_count: int
    node_count: int
    segment_count: int
    device_count: int
    customers: Codes = None
    nodes: Codes = None
    segments: Codes = None
    devices: Codes = None


class Loss(Counted):
    by_feeder: dict[str, int]


class Downstream(Loss):
    element: str
    element_type: str


class Upstream(_Open):
    element: str
    energised: bool
    path: list[str]
    nodes: Codes = None
    protective_devices: list[dict[str, Any]]
    source: str | None
    sources: list[str]


class Elements(Counted):
    open_device_count: int
    open_devices: Codes = None


class Isolation(_Open):
    element: str
    devices: list[dict[str, Any]]
    already_open: list[str]
    isolable: bool
    sources_inside: list[str]
    customer_count: int
    customers: Codes = None
    zone: Elements


class Customers(BaseModel):
    customer_count: int
    customers: list[str]


class Headroom(BaseModel):
    kw: float
    percent: float
    element: str
    kind: Literal["feeder", "segment", "transformer"]


class PlanStep(Customers):
    action: Literal["open", "close"]
    device: str


class Worst(BaseModel):
    element: str
    percent: float


class WorstVoltage(BaseModel):
    bus: str
    pu: float


class PowerFlowCheck(BaseModel):
    converged: bool
    ok: bool
    band: list[float]
    buses: int
    max_line_loading: Worst | None
    max_transformer_loading: Worst | None
    min_voltage: WorstVoltage | None
    max_voltage: WorstVoltage | None
    reasons: list[str]


class RestorationPlan(BaseModel):
    open: list[str]
    close: list[str]
    steps: list[PlanStep]
    customer_count: int
    transferred_kw: float
    headroom: Headroom | None
    feasible: bool
    checked_elements: int
    reasons: list[str]
    powerflow: PowerFlowCheck | None = Field(None, description="with ?verify=powerflow, for the best plans")


class Restoration(BaseModel):
    element: str
    isolate: list[str]
    faulted: Customers
    healthy: Customers
    unrestorable: Customers
    plans: list[RestorationPlan]
    assumptions: dict[str, float | int]


class Simulation(BaseModel):
    element: str
    isolates: bool
    lost: Customers
    restored: Customers
    customers_off: int


SupplyState = model_of(trace.SupplyState)


class SupplyChange(BaseModel):
    customer_count: int
    customers: list[str]
    by_feeder: dict[str, int]


class OperatedDevice(BaseModel):
    code: str
    kind: str
    action: str
    from_state: str
    to_state: str


class Operation(BaseModel):
    operation_id: str
    topology_version: int
    occurred_at: str
    actor: str
    reason: str
    devices: list[OperatedDevice]


class SwitchingResult(Operation):
    lost: SupplyChange
    regained: SupplyChange


class SwitchingLog(BaseModel):
    operations: list[Operation]
    next_before: int | None


LAYER = Answer(GEOJSON, FeatureCollection)


def trace_answer(model: type[BaseModel]) -> Answer:
    """A trace's answer: ``model`` as JSON, or its elements as GeoJSON (``?format=geojson``)."""
    return Answer({JSON: model, GEOJSON: FeatureCollection})
