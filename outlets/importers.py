"""Outlets from GeoJSON or CSV, and back: every row checked, all or nothing.

``import_outlets`` checks every row before it writes any; a file with a bad row is refused
with a report naming each bad row, field and reason, and the database is left unchanged.
The layout (one outlet a row/feature, the fields of outlets/records.py) is in docs/outlets.md.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.errors import Invalid, Unprocessable
from geo.i18n import _
from outlets.records import FIELDS, RecordInvalid, parse_outlet
from outlets.store import export_records, outlets, save_outlet

__all__ = ["ImportRefused", "read_outlets", "import_outlets", "write_geojson", "write_csv", "FORMATS"]

FORMATS = ("geojson", "csv")
MAX_REPORTED = 500


class ImportRefused(Unprocessable):
    """A file with bad rows; nothing was imported. ``errors`` lists ``{row, code, field, reason}``."""

    title = _("Import refused")

    def __init__(self, errors: list[dict[str, Any]], rows: int):
        first = errors[0]
        super().__init__(
            _("%(problems)s problem(s) in %(rows)s row(s), nothing was imported; first: row %(row)s, %(field)s: %(reason)s",
              problems=len(errors), rows=rows, row=first["row"], field=first["field"], reason=first["reason"]),
            rows=rows, errors=errors[:MAX_REPORTED], truncated=len(errors) > MAX_REPORTED)
        self.errors = errors


def format_of(filename: str | None, declared: str | None = None) -> str:
    """``geojson`` or ``csv`` from a declared format or the file's extension."""
    if declared:
        if declared.lower() not in FORMATS:
            raise Invalid(_("format %(declared)r is not one of %(formats)s", declared=declared, formats=', '.join(FORMATS)), field="format")
        return declared.lower()
    suffix = (filename or "").rsplit(".", 1)[-1].lower()
    if suffix in ("geojson", "json"):
        return "geojson"
    if suffix in ("csv", "txt"):
        return "csv"
    raise Invalid(_("say which format the file is in (format=geojson or format=csv, or a .geojson/.csv name)"), field="format")


def _decoded(data: bytes) -> str:
    """The file as text; Invalid when it is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Invalid(_("the file is not UTF-8 text (byte %(start)s)", start=error.start)) from None


def _geojson_rows(data: bytes) -> list[tuple[int, dict[str, Any], str | None]]:
    """A GeoJSON FeatureCollection's features as rows."""
    try:
        document = json.loads(_decoded(data))
    except json.JSONDecodeError as error:
        raise Invalid(_("the file is not JSON: %(msg)s at line %(lineno)s, column %(colno)s", msg=error.msg, lineno=error.lineno, colno=error.colno)) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection" \
            or not isinstance(document.get("features"), list):
        raise Invalid(_("a GeoJSON import must be a FeatureCollection of Point features"))
    rows = []
    for number, feature in enumerate(document["features"], start=1):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            rows.append((number, {}, "is not a GeoJSON Feature"))
            continue
        values = dict(feature.get("properties") or {})
        geometry = feature.get("geometry") or {}
        coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point" or not isinstance(coordinates, list) \
                or len(coordinates) < 2:
            rows.append((number, values, "geometry must be a Point [lon, lat]"))
            continue
        values["lon"], values["lat"] = coordinates[0], coordinates[1]
        rows.append((number, values, None))
    return rows


def _csv_rows(data: bytes) -> list[tuple[int, dict[str, Any], str | None]]:
    """A CSV file's lines under its header as rows."""
    text = _decoded(data)
    header = text.split("\n", 1)[0]
    # Spreadsheets set to a comma-decimal locale write semicolons between fields.
    delimiter = ";" if ";" in header and "," not in header else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames or "code" not in reader.fieldnames:
        raise Invalid(_("the CSV file needs a header row naming its columns (%(fields)s)", fields=', '.join(FIELDS)))
    rows = []
    for number, row in enumerate(reader, start=1):
        extra = row.pop(None, None)
        values = {key.strip(): (value or "").strip() for key, value in row.items() if key is not None}
        rows.append((number, values, f"has {len(extra)} more field(s) than the header" if extra else None))
    return rows


def read_outlets(data: bytes, file_format: str) -> list[tuple[int, dict[str, Any], str | None]]:
    """A file's rows as (row number from 1, raw values, a problem with the row's shape or None)."""
    rows = _geojson_rows(data) if file_format == "geojson" else _csv_rows(data)
    if not rows:
        raise Invalid(_("the file holds no outlets"))
    return rows


def import_outlets(session: Session, rows: Iterable[tuple[int, dict[str, Any], str | None]],
                   replace: bool = True) -> dict[str, Any]:
    """Check every row, then save them all in one transaction; ImportRefused lists every problem.

    ``replace`` False refuses codes already stored instead of replacing those outlets.
    """
    rows = list(rows)
    errors: list[dict[str, Any]] = []
    records, first_row = [], {}
    for number, values, problem in rows:
        code = str(values.get("code") or "").strip() or None
        if problem:
            errors.append({"row": number, "code": code, "field": "geometry" if "geometry" in problem else "row",
                           "reason": problem})
            continue
        try:
            record = parse_outlet(values)
        except RecordInvalid as invalid:
            errors.extend({"row": number, "code": code, **error} for error in invalid.errors)
            continue
        if record.code in first_row:
            errors.append({"row": number, "code": code, "field": "code",
                           "reason": _("%(code)r appears again (first at row %(row)s)", code=record.code, row=first_row[record.code])})
            continue
        first_row[record.code] = number
        records.append((number, record))
    with session.begin():
        connection = session.connection()
        if not replace and first_row:
            stored = set(connection.execute(select(outlets.c.code).where(outlets.c.code.in_(first_row))).scalars())
            errors.extend({"row": first_row[code], "code": code, "field": "code",
                           "reason": _("outlet %(code)r already exists", code=code)} for code in sorted(stored))
        if errors:
            errors.sort(key=lambda error: error["row"])
            raise ImportRefused(errors, len(rows))
        created = sum(save_outlet(connection, record) for _, record in records)
    return {"rows": len(rows), "created": created, "updated": len(records) - created}


def write_geojson(records: list[dict[str, Any]]) -> str:
    """Outlet records (``store.export_records``) as a GeoJSON FeatureCollection in the import layout."""
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                 "properties": {k: v for k, v in r.items() if k not in ("lon", "lat")}} for r in records]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False, indent=1)


def write_csv(records: list[dict[str, Any]]) -> str:
    """Outlet records as CSV in the import layout."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[f for f in FIELDS if f != "active"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def export_outlets(session: Session, file_format: str, today: date) -> str:
    """Every active outlet, in ``file_format``."""
    records = export_records(session.connection(), today)
    return write_geojson(records) if file_format == "geojson" else write_csv(records)
