"""The contract (``geo.openapi``) of the reliability routes: their query and the report they answer."""
from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from geo.openapi import model_of
from outages.reliability import Indices

IndicesModel = model_of(Indices)


class ReliabilityQueryModel(BaseModel):
    from_: date | None = Field(None, alias="from", description="the first local day (default: a year before to)")
    to: date | None = Field(None, description="the last local day, included (default: today)")
    by: Literal["system", "feeder", "cell"] = Field("system", description="one row, a row per feeder, or per grid cell")
    exclude_planned: bool = Field(False, description="leave planned outages out")
    exclude_med: bool = Field(False, description="leave major event days out of the monthly series")
    cemi_n: int = Field(3, ge=0, le=50, description="CEMIn counts customers with more than n sustained interruptions")
    format: Literal["json", "csv"] = "json"


class MedModel(BaseModel):
    available: bool = Field(description="false without a year of history: no day is a major event day")
    basis: Literal["prior", "including_period"] | None
    history_from: date | None
    history_to: date | None
    t_med: float | None = Field(description="T_MED in minutes of daily SAIDI")
    alpha: float | None
    beta: float | None
    days_with_interruptions: int
    days: list[date] = Field(description="the period's major event days")


class RowModel(BaseModel):
    key: str | None = Field(description="'system', a feeder's code or a grid cell's code; null: in none")
    customers_served: int
    indices: IndicesModel  # type: ignore[valid-type]
    indices_excluding_med: IndicesModel | None  # type: ignore[valid-type]


class MonthModel(IndicesModel):  # type: ignore[valid-type, misc]
    month: str = Field(description="YYYY-MM")


class ReportModel(BaseModel):
    query: dict
    med: MedModel
    rows: list[RowModel]
    months: list[MonthModel]
