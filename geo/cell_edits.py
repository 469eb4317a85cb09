"""Changing grid cells: create, edit, delete, restore an older version, give a split transformer
area to one cell, import the territory, and import many cells at once, each checked before it is
kept (``geo.cell_checks``) and written as a new version (``geo.cells.save_version``).

Every change runs in one transaction that first bumps ``grid_cell_revision`` (geo/cells.py): its
row lock makes concurrent saves take turns, so two planners drawing overlapping cells at the
same moment cannot both succeed; the second is checked against the first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.cell_checks import Problem, check, parse_polygon, shape_problems
from geo.cells import (CellDraft, assign, bump_revision, cell, cell_or_none, parse_code, parse_team, save_version,
                       version as version_of)
from geo.errors import Invalid, Unprocessable
from geo.i18n import _

__all__ = ["CellProblems", "Saved", "ImportReport", "parse_fields", "create", "update", "delete", "restore",
           "assign_area", "import_territory", "import_cells", "validate", "parse_reason", "parse_version"]

MAX_IMPORT = 5_000


class CellProblems(Unprocessable):
    """A cell (or an import) that cannot be kept as drawn: every problem with its geometry."""

    def __init__(self, problems: list[Problem], code: str | None = None):
        extra: dict[str, Any] = {"problems": [problem.as_dict() for problem in problems]}
        if code is not None:
            extra["code"] = code
        super().__init__(_("the cell cannot be saved: %(n)s problem(s); each is listed with where it is",
                           n=len(problems)), **extra)
        self.problems = problems


@dataclass(frozen=True)
class Saved:
    """A change kept: the cell, its new version, and the revision of all cells it made."""

    code: str
    version: int
    deleted: bool = False

    def as_dict(self) -> dict:
        return {"code": self.code, "version": self.version, "deleted": self.deleted}


@dataclass(frozen=True)
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "deleted": self.deleted}


def parse_reason(value: Any) -> str:
    """Why the change is made: required, 1 to 1,000 characters (the history shows it)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise Invalid(_("reason must say why, in 1 to 1,000 characters"), field="reason")
    return value.strip()


def parse_version(value: Any) -> int:
    """The version an edit starts from (what the planner saw)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(_("version must be the cell's version you edited (a whole number from 1)"), field="version")
    return value


def _text(body: dict, name: str, limit: int, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise Invalid(_("%(name)s must be text of at most %(n)s characters", name=name, n=limit), field=name)
    return value.strip() or None


def parse_fields(body: dict) -> dict:
    """The cell fields present in ``body`` (name, notes, team, geometry), parsed."""
    fields: dict[str, Any] = {}
    if "name" in body:
        fields["name"] = _text(body, "name", 200, required=True)
    if "notes" in body:
        fields["notes"] = _text(body, "notes", 4000)
    if "team" in body:
        fields["team"] = parse_team(body["team"])
    if "geometry" in body:
        geometry, problems = parse_polygon(body["geometry"])
        if problems:
            raise CellProblems(problems)
        fields["geometry"] = geometry
    return fields


def _keep(session: Session, code: str, geometry: Polygon | MultiPolygon) -> None:
    problems = check(session.connection(), code, geometry)
    if problems:
        raise CellProblems(problems, code)


def _draft(code: str, fields: dict) -> CellDraft:
    return CellDraft(code, fields["name"], fields.get("notes"), fields.get("team", ()),
                     shapely.to_wkb(fields["geometry"]))


def validate(session: Session, code: str | None, geometry_value: Any) -> list[Problem]:
    """The problems ``geometry_value`` would have as cell ``code`` (nothing is saved)."""
    geometry, problems = parse_polygon(geometry_value)
    return problems or check(session.connection(), code, geometry)


def create(session: Session, code: str, fields: dict, author: str, reason: str) -> Saved:
    """A new cell ``code`` (name and geometry required); CellProblems or Conflict otherwise."""
    for required in ("name", "geometry"):
        if required not in fields:
            raise Invalid(_("%(name)s is required", name=required), field=required)
    with session.begin():
        bump_revision(session.connection())
        _keep(session, code, fields["geometry"])
        return Saved(code, save_version(session.connection(), _draft(code, fields), code, None, author, reason))


def _stored_fields(connection, code: str) -> dict:
    current = cell(connection, code)
    return {"name": current.name, "notes": current.notes, "team": parse_team(current.team),
            "geometry": shapely.geometry.shape(current.geometry)}


def update(session: Session, code: str, expected: int, fields: dict, author: str, reason: str) -> Saved:
    """Edit cell ``code`` from version ``expected``: the fields given replace the stored ones."""
    with session.begin():
        bump_revision(session.connection())
        merged = {**_stored_fields(session.connection(), code), **fields}
        if "geometry" in fields:
            _keep(session, code, merged["geometry"])
        return Saved(code, save_version(session.connection(), _draft(code, merged), code, expected, author, reason))


def delete(session: Session, code: str, expected: int, author: str, reason: str) -> Saved:
    """Delete cell ``code`` (from version ``expected``); its history stays, and can be restored."""
    with session.begin():
        bump_revision(session.connection())
        return Saved(code, save_version(session.connection(), None, code, expected, author, reason), deleted=True)


def restore(session: Session, code: str, number: int, expected: int | None, author: str, reason: str) -> Saved:
    """Make version ``number`` of ``code`` the live one again, as a new version, checked as any save
    (``expected``: the live version the planner saw; None when the cell is deleted now)."""
    with session.begin():
        bump_revision(session.connection())
        old = version_of(session.connection(), code, number)
        if old.deleted:
            raise Unprocessable(_("version %(version)s of %(code)s is a deletion; restore one before it",
                                  version=number, code=code), code=code)
        fields = {"name": old.name, "notes": old.notes, "team": parse_team(old.team),
                  "geometry": shapely.geometry.shape(old.geometry)}
        live = cell_or_none(session.connection(), code)
        _keep(session, code, fields["geometry"])
        if live is None:
            return Saved(code, save_version(session.connection(), _draft(code, fields), code, None, author, reason))
        if expected is None:
            raise Invalid(_("version must be the cell's version you edited (a whole number from 1)"), field="version")
        return Saved(code, save_version(session.connection(), _draft(code, fields), code, expected, author, reason))


def assign_area(session: Session, area: str, cell_code: str | None, author: str) -> None:
    """Give transformer area ``area`` to cell ``cell_code`` (None: back to where its customers lie)."""
    with session.begin():
        bump_revision(session.connection())
        assign(session.connection(), area, cell_code, author)


def import_territory(session: Session, geometry_value: Any, author: str) -> None:
    """Keep the service territory the admin imports (a valid polygon); cells are checked against it."""
    geometry, problems = parse_polygon(geometry_value)
    problems = problems or shape_problems(geometry)
    if problems:
        raise CellProblems(problems)
    with session.begin():
        bump_revision(session.connection())
        session.connection().execute(text(
            "INSERT INTO grid_territory (id, geom, imported_by) VALUES (1, ST_Multi(ST_GeomFromWKB(:g, 4326)), :by) "
            "ON CONFLICT (id) DO UPDATE SET geom = EXCLUDED.geom, imported_by = EXCLUDED.imported_by, "
            "imported_at = now()"), {"g": shapely.to_wkb(geometry), "by": author})


def _import_rows(features: Any) -> list[tuple[str, dict]]:
    """(code, fields) of each feature of an imported FeatureCollection."""
    if not isinstance(features, list) or not features:
        raise Invalid(_("an import is a GeoJSON FeatureCollection with at least one cell"), field="features")
    if len(features) > MAX_IMPORT:
        raise Invalid(_("an import holds at most %(n)s cells", n=MAX_IMPORT), field="features")
    rows, seen = [], set()
    for index, feature in enumerate(features):
        if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
            raise Invalid(_("feature %(i)s has no properties", i=index), field=f"features[{index}]")
        properties = feature["properties"]
        code = parse_code(properties.get("code"), f"features[{index}].properties.code")
        if code in seen:
            raise Invalid(_("cell %(code)s is in the file twice", code=code), field=f"features[{index}]")
        seen.add(code)
        try:
            fields = parse_fields({**{k: v for k, v in properties.items() if k in ("name", "notes", "team")},
                                   "geometry": feature.get("geometry")})
        except CellProblems as error:
            raise CellProblems(error.problems, code) from None
        rows.append((code, fields))
    return rows


def import_cells(session: Session, features: Any, replace: bool, author: str, reason: str) -> ImportReport:
    """Keep every cell of ``features`` (new ones created, existing ones edited; ``replace``: the
    cells not in the file deleted) or none: all are written, then each is checked against all the
    others, and the first problems found abort the whole import."""
    rows = _import_rows(features)
    report = ImportReport()
    with session.begin():
        connection = session.connection()
        bump_revision(connection)
        live = dict(connection.execute(text("SELECT code, version FROM grid_cells")).all())
        if replace:
            for code in sorted(set(live) - {row[0] for row in rows}):
                save_version(session.connection(), None, code, live[code], author, reason)
                report.deleted.append(code)
        for code, fields in rows:
            if code in live:  # what the file leaves out (a team, notes) stays as it is
                fields = {**_stored_fields(connection, code), **fields}
            save_version(session.connection(), _draft(code, {"name": code, **fields}), code, live.get(code), author, reason)
            (report.updated if code in live else report.created).append(code)
        for code, fields in rows:
            problems = check(connection, code, fields["geometry"])
            if problems:
                raise CellProblems(problems, code)
    return report
