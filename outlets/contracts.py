"""The models of the outlets' and bookings' API contract (``geo.openapi``): what each route takes and answers.

The views keep their own parsing and messages; these models describe them, and the contract
tests (schemathesis) check that every answer matches.
"""
from __future__ import annotations

from datetime import date as Day
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geo.openapi import GEOJSON, Answer, FeatureCollection
from outlets.search import MAX_RESULTS


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- query and path parameters ---------------------------------------------------------------------
class NearestQuery(BaseModel):
    """Give ``lon`` and ``lat``, or an address ``q`` (not both)."""

    lon: float | None = Field(None, ge=-180, le=180, description="longitude of the customer (with lat)")
    lat: float | None = Field(None, ge=-90, le=90, description="latitude of the customer (with lon)")
    q: str | None = Field(None, description="an address, town or postcode instead of lon/lat")
    n: int = Field(5, ge=1, le=MAX_RESULTS, description="how many outlets")
    service: str | None = Field(None, description="only outlets offering this service (GET /api/outlets/services)")
    open: str | None = Field(None, description="'now', or an ISO 8601 time: only outlets open then "
                                                "(without an offset: each outlet's local time)")


class AddressQuery(BaseModel):
    q: str = Field("", description="the start of an address, town or postcode")


class BboxQuery(BaseModel):
    bbox: str | None = Field(None, description="west,south,east,north in degrees (WGS 84)",
                             examples=["8.35,48.98,8.45,49.05"])


class SlotsQuery(BaseModel):
    date: Day | None = Field(None, description="YYYY-MM-DD (default: the outlet's today)")
    service: str | None = Field(None, description="only this service's slots")
    by: Literal["shift"] | None = Field(None, description="shift: the slots of the openings that start on the date "
                                                          "(overnight ones whole), each naming its opening")


class ExceptionPath(BaseModel):
    day: Day = Field(description="the date, YYYY-MM-DD")


class ImportQuery(BaseModel):
    format: Literal["geojson", "csv"] | None = Field(None, description="default: from the uploaded file's name")
    mode: Literal["replace", "create"] = Field("replace", description="create refuses codes that exist")


class ExportQuery(BaseModel):
    format: Literal["geojson", "csv"] = "geojson"


# -- bodies ----------------------------------------------------------------------------------------
class BookingBody(BaseModel):
    """A visit to book; ``idempotency_key`` (or the Idempotency-Key header) makes a retry safe."""

    model_config = ConfigDict(extra="forbid")
    outlet: str = Field(max_length=60)
    service: str = Field(max_length=40)
    start: str = Field(max_length=40, description="ISO 8601; without an offset, the outlet's local time")
    name: str = Field(max_length=120)
    phone: str = Field(max_length=40)
    idempotency_key: str | None = Field(None, max_length=200)


class IdempotencyHeader(BaseModel):
    idempotency_key: str | None = Field(None, alias="Idempotency-Key", min_length=1, max_length=200,
                                        pattern=r"^[\x21-\x7e]+$",
                                        description="makes a retried booking safe (or idempotency_key in the body)")


class RescheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(max_length=40)
    service: str | None = Field(None, max_length=40)


class OutletBody(BaseModel):
    """An outlet in the import layout (docs/outlets.md)."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    name: str = Field(max_length=200)
    address: str = Field(max_length=500)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    timezone: str | None = Field(None, description="IANA zone, e.g. Europe/Berlin")
    country: str | None = Field(None, description="ISO 3166 code, e.g. DE")
    phone: str | None = Field(None, max_length=40)
    slot_minutes: int | None = None
    services: dict[str, int] | str = Field(description='{"billing": 2} or "billing:2; meter:1"')
    hours: dict[str, list[str]] | str | None = Field(None, description='"Mo-Fr 08:00-18:00" or {"mon": ["08:00-18:00"]}')
    exceptions: Any = None
    active: bool | None = None


class ExceptionBody(BaseModel):
    hours: str | list[str] = Field(description='"off", "08:00-12:00,13:00-17:00" or a list of intervals')
    note: str | None = Field(None, max_length=200)


class ImportUpload(BaseModel):
    file: bytes = Field(json_schema_extra={"format": "binary"})


# -- answers ---------------------------------------------------------------------------------------
class Services(BaseModel):
    services: dict[str, str]


class Opening(_Open):
    hours_known: bool
    open_now: bool | None
    closes_at: str | None
    next_opening: str | None


class Place(_Open):
    """An outlet's code, name, address, phone and point."""

    code: str
    name: str
    address: str
    phone: str | None
    phone_display: str | None
    lon: float
    lat: float
    timezone: str


class NearbyOutlet(Place, Opening):
    services: list[str]
    distance_m: float
    travel: dict[str, int]
    directions: dict[str, str]
    directions_url: str


class AddressMatch(BaseModel):
    address: str
    source: str
    lon: float
    lat: float
    score: float


class Origin(BaseModel):
    lon: float
    lat: float
    address: str | None = None
    source: str | None = None


class NearestAnswer(BaseModel):
    origin: Origin | None
    outlets: list[NearbyOutlet]
    at: str
    did_you_mean: list[AddressMatch] | None = None


class AddressSuggestions(BaseModel):
    addresses: list[AddressMatch]


class OutletSummary(Place):
    services: list[str]
    capacity: dict[str, int]
    slot_minutes: int
    hours_known: bool
    week: dict[str, list[str]] | None
    exceptions: list[dict[str, Any]]


class OutletDetail(OutletSummary):
    open_now: bool | None
    closes_at: str | None
    next_opening: str | None


class SlotShift(BaseModel):
    date: str = Field(description="the local date the opening starts on")
    hours: str = Field(description="the opening, e.g. 18:00-02:00")


class Slot(BaseModel):
    start: str
    end: str
    service: str
    capacity: int
    remaining: int
    shift: SlotShift | None = None


class DaySlots(BaseModel):
    outlet: str
    date: str
    timezone: str
    slot_minutes: int
    hours: Any
    slots: list[Slot]
    note: str | None


class Booking(BaseModel):
    code: str
    status: str
    outlet: Place
    service: str
    service_label: str
    start: str
    end: str
    name: str
    phone: str | None
    phone_display: str | None
    ics_url: str
    sequence: int


class ImportReport(BaseModel):
    rows: int
    created: int
    updated: int


LOCATION = {"Location": "the booking's URL"}
BOOKING_OR_CALENDAR = Answer({"application/json": Booking, "text/calendar": None},
                             description="The booking; a code ending in .ics: the booking as an iCalendar file")
EXPORT = Answer({GEOJSON: FeatureCollection, "text/csv": None}, description="The outlets in the import layout")
# The file as the multipart field "file", or as the raw body (whatever its media type).
IMPORT_BODY = {"multipart/form-data": ImportUpload, "application/octet-stream": {"type": "string", "format": "binary"}}
