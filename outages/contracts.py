"""The models of the outages' API contract (``geo.openapi``): what each route takes and answers.

Answers are made from the domain's result dataclasses (``model_of``), so that a result and its
schema cannot drift; the views keep their own parsing and messages.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geo.live import Changes
from geo.openapi import model_of
from outages.crews import CrewView, NearCrew
from outages.intake import CallReceipt, CallStatus, MeterReceipt
from outages.lifecycle import OutageView
from outages.models import CAUSES
from outages.read import Found
from outages.subscriptions import SubscriptionView

Outage = model_of(OutageView)
CallReceiptModel = model_of(CallReceipt)
CallStatusModel = model_of(CallStatus)
MeterReceiptModel = model_of(MeterReceipt)
Crew = model_of(CrewView)
NearCrewModel = model_of(NearCrew)
FoundModel = model_of(Found)
ChangesModel = model_of(Changes)
SubscriptionModel = model_of(SubscriptionView)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- bodies ------------------------------------------------------------------------------------------
class CallBody(BaseModel):
    """Exactly one of ``account``, ``phone``, or ``lon`` with ``lat``; the details are optional."""

    account: str | None = Field(None, description="the account number on the bill", examples=["1234567897"])
    phone: str | None = Field(None, description="the phone number the account has", examples=["+49 30 23125123"])
    lon: float | None = Field(None, ge=-180, le=180, description="a point on the map (snapped to the nearest connection)")
    lat: float | None = Field(None, ge=-90, le=90)
    wire_down: bool = False
    partial_power: bool = False
    flickering: bool = False
    note: str | None = Field(None, max_length=1000)


class MeterEvent(BaseModel):
    id: str = Field(description="the head-end's event id: an event sent twice is stored once", max_length=120)
    meter: str = Field(description="the service point's code", max_length=120)
    kind: Literal["last_gasp", "power_restored"]
    at: datetime


class MeterEventsBody(BaseModel):
    events: list[MeterEvent] = Field(min_length=1, max_length=10_000)


class SubscriptionBody(BaseModel):
    """Where to (``channel`` and ``address``) and about what: exactly one of ``account`` or ``cell``."""

    channel: Literal["sms", "email", "webhook"]
    address: str = Field(max_length=200, description="an SMS number, an e-mail address or an https URL",
                         examples=["+49 30 23125123"])
    account: str | None = Field(None, description="the account number on the bill", examples=["1234567897"])
    cell: str | None = Field(None, description="a grid cell's code: outages touching any customer in it",
                             examples=["GC-01"])
    language: Literal["en", "zh"] | None = Field(None, description="the messages' language (default: the request's)")


class ConfirmBody(BaseModel):
    code: str = Field(pattern=r"^[0-9]{6}$", description="the six digits sent to the address")


class TransitionBody(BaseModel):
    to: Literal["confirmed", "en_route", "on_site", "restored", "cancelled"]
    note: str | None = Field(None, max_length=2000)


class CreateOutageBody(BaseModel):
    """An outage at a device, confirmed at once; with a window it is a planned outage."""

    device: str = Field(description="a device, segment or service point code")
    cause: Literal[CAUSES] | None = None  # type: ignore[valid-type]
    note: str | None = Field(None, max_length=2000)
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    etr: datetime | None = None


class MoveBody(BaseModel):
    device: str
    note: str | None = Field(None, max_length=2000)


class EtrBody(BaseModel):
    etr: datetime | None = Field(description="the dispatcher's ETR; null: estimate it from history")
    note: str | None = Field(None, max_length=2000)


class StepBody(BaseModel):
    """Either ``device`` (its customers come back) or ``customers`` (service point codes)."""

    device: str | None = None
    customers: list[str] | None = Field(None, max_length=100_000)
    note: str | None = Field(None, max_length=2000)


class AssignBody(BaseModel):
    crew: str | None = Field(None, description="the crew's code; null or absent: the nearest available crew")
    note: str | None = Field(None, max_length=2000)


class NoteBody(BaseModel):
    note: str | None = Field(None, max_length=2000)


class Position(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    at: datetime
    accuracy_m: float | None = Field(None, ge=0, le=100_000)


class PositionsBody(BaseModel):
    positions: list[Position] = Field(min_length=1, max_length=1000)


class StatusBody(BaseModel):
    status: Literal["available", "en_route", "on_site", "off_duty"]
    note: str | None = Field(None, max_length=2000)


class CrewNoteBody(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


# -- queries -----------------------------------------------------------------------------------------
class OutagesQuery(BaseModel):
    bbox: str | None = Field(None, description="west,south,east,north in degrees (WGS 84)")
    limit: int | None = Field(None, ge=1, description="at most this many features")
    state: Literal["open", "recent", "all"] = Field("open", description="open; open and closed in the last day; all")
    geometry: Literal["point", "area"] = Field("point", description="the device, or the outline of its customers")


class LayerQuery(BaseModel):
    bbox: str | None = Field(None, description="west,south,east,north in degrees (WGS 84)")
    limit: int | None = Field(None, ge=1)


class DetailQuery(BaseModel):
    format: Literal["json", "geojson"] = Field("json", description="geojson: the device and what it cuts off now")
    customers: int = Field(200, ge=0, le=5000, description="list at most this many customers")


class NearestCrewsQuery(BaseModel):
    limit: int = Field(5, ge=1, le=50)


class LiveQuery(BaseModel):
    cursor: int | None = Field(None, ge=0, description="the cursor of the previous answer; absent: start now")


class SearchQuery(BaseModel):
    q: str = Field(min_length=1, max_length=200, description="a device or outage code, an account number or an address")


# -- answers -----------------------------------------------------------------------------------------
class OutageChange(BaseModel):
    outage: Outage  # type: ignore[valid-type]
    event: dict[str, Any]


class OutageDetail(BaseModel):
    outage: Outage  # type: ignore[valid-type]
    timeline: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    customers: list[dict[str, Any]]
    customers_listed: int
    calls: list[dict[str, Any]]


class NearCrews(BaseModel):
    outage: str
    crews: list[NearCrewModel]  # type: ignore[valid-type]


class PositionsReceipt(BaseModel):
    crew: str
    accepted: int
    duplicates: int


class CrewNoteAnswer(BaseModel):
    outage: str
    event: dict[str, Any]


class MyCrew(BaseModel):
    crew: Crew | None  # type: ignore[valid-type]
    outage: OutageDetail | None


class SearchAnswer(BaseModel):
    found: list[FoundModel]  # type: ignore[valid-type]
