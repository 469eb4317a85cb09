"""The models of the public outage API's contract (``/api/status``, ``/api/public/outages...``):
what outside users of the open feed can rely on (docs/open-feed.md)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geo.openapi import model_of
from outages.models import CAUSES
from outages.status import ServiceStatus

CACHE_HEADERS = {"ETag": "the version of the answer: send it back as If-None-Match for a 304",
                 "Cache-Control": "how long a copy may be kept (the version itself: ask again each time)"}

Cause = Literal[CAUSES]  # type: ignore[valid-type]
PublicStatus = Literal["investigating", "out", "restored", "cancelled"]


class StatusQuery(BaseModel):
    """Exactly one of ``account`` and ``q``."""

    account: str | None = Field(None, max_length=40, description="the account number on the bill")
    q: str | None = Field(None, min_length=3, max_length=200, description="an address: street and house number")


class ServiceStatusModel(model_of(ServiceStatus)):  # type: ignore[misc]
    """``status``: out, planned (an outage announced ahead), investigating (reports are being looked
    into), on (no known outage), or null with ``choices`` (addresses to choose from)."""

    follow: str | None = Field(None, description="where to follow the outage (GET, public)")


class _Properties(BaseModel):
    model_config = ConfigDict(extra="allow")


class OutageProperties(_Properties):
    code: str = Field(description="the outage's public reference")
    status: PublicStatus = Field(description="investigating: predicted from reports, not confirmed yet")
    state: str = Field(description="predicted, confirmed, crew_assigned, en_route, on_site, restored, cancelled")
    origin: Literal["predicted", "manual", "planned"]
    cause: Cause
    started_at: datetime
    etr: datetime | None = Field(description="estimated time of restoration")
    etr_source: Literal["dispatcher", "history"] | None
    customers_out: int
    customers_affected: int
    crew_status: Literal["assigned", "en_route", "on_site", "available", "off_duty"] | None
    planned_start: datetime | None
    planned_end: datetime | None
    updated_at: datetime
    marker: list[float] | None = Field(description="[lon, lat] inside the area, for a marker; null without an area")


class CurrentOutageProperties(OutageProperties):
    cells: list[str] = Field(description="the grid cells it has customers out in")


class _Feature(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["Feature"]
    id: str
    geometry: dict[str, Any] | None = Field(description="the coarse area (MultiPolygon or Polygon); null below the "
                                                        "publishing threshold")


class PublicOutage(_Feature):
    properties: OutageProperties


class CurrentOutage(_Feature):
    properties: CurrentOutageProperties


class PublicOutages(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[CurrentOutage]


class CellProperties(_Properties):
    code: str
    name: str
    customers_out: int
    outages: int
    investigating: int = Field(description="of its outages, those predicted from reports and not confirmed yet")
    etr: datetime | None = Field(description="the earliest ETR of its outages")
    causes: dict[str, int] = Field(description="cause -> outages")
    crew_statuses: dict[str, int] = Field(description="crew status (none: no crew yet) -> outages")
    marker: list[float] | None


class CellFeature(_Feature):
    properties: CellProperties


class CellTotals(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[CellFeature]


class FeedVersion(BaseModel):
    version: str
    changed: datetime | None = Field(description="when an open outage last changed")
    at: datetime = Field(description="when the server answered")


class HistoryQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: datetime | None = Field(None, alias="from", description="restored at or after (ISO 8601 with offset); "
                                                                   "default: 7 days before to")
    to: datetime | None = Field(None, description="restored before (default: now); at most 366 days after from")


class ClosedProperties(_Properties):
    code: str
    origin: Literal["predicted", "manual", "planned"]
    cause: Cause
    started_at: datetime
    restored_at: datetime
    momentary: bool | None
    customers_affected: int
    customer_minutes: float = Field(description="the sum over its customers of the minutes each was out")
    planned_start: datetime | None
    planned_end: datetime | None


class ClosedOutage(_Feature):
    properties: ClosedProperties


class ClosedOutages(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[ClosedOutage]
    truncated: bool
