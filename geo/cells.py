"""Grid cells: the polygons planners divide a supply station's territory into, each with a team
(the cell's manager and a transformer-area manager for each of its transformer areas), every save
a new version with its author, time and reason.

geo holds the polygons, their validation (``geo.cell_checks``) and their history; what lies in a
cell is answered by the packages that own it, through the registries below, so that geo names no
domain table:

- ``register_contents(provider)``: topology says which transformer areas and service points each
  cell holds, which areas a border splits and which service points lie in no cell;
- ``register_figures(name, shown, count)``: each package counts its part per cell (customers, transformer
  areas, outlets, open outages, customers out);
- ``register_territory(provider)``: the service territory when the admin has imported none (the
  network's hull).

Writes are decided by the database: every change first bumps the one ``grid_cell_revision`` row,
whose lock orders concurrent saves, so that the second of two overlapping cells is checked
against the first once it has committed; a save names the version it edits, and an
``UPDATE ... WHERE version = :expected`` refuses a stale one (409).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Protocol

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base
from geo.errors import Conflict, Invalid, NotFound
from geo.i18n import _

__all__ = [
    "GridCell", "GridCellVersion", "Territory", "TransformerAreaCell", "CellRevision",
    "Member", "CellDraft", "CellView", "VersionView", "Contents", "Figure",
    "MANAGER", "AREA_MANAGER", "DUTIES", "parse_team", "parse_code",
    "register_contents", "register_figures", "FigureCount", "register_territory", "register_zone", "zone_feeders", "figures", "contents", "territory_wkb",
    "bump_revision", "revision", "cell", "cell_or_none", "versions", "version", "save_version",
    "CELL_POLYGONS", "AREA_ASSIGNMENTS", "CellDetail", "detail", "assign", "RESERVED_CODES",
]

# Codes that name a route under /api/cells rather than a cell.
RESERVED_CODES = frozenset({"export", "import", "coverage", "validate", "figures"})

# What other packages join to: the live cells' polygons and the areas given to a cell, as
# subqueries (``(...) AS cells``), so that they need not know geo's tables.
CELL_POLYGONS = "(SELECT code, name, geom FROM grid_cells)"
AREA_ASSIGNMENTS = "(SELECT transformer_area, cell_code FROM transformer_area_cells)"

MANAGER = "manager"
AREA_MANAGER = "transformer_area_manager"
DUTIES = (MANAGER, AREA_MANAGER)
MAX_TEAM = 200


def _area(nullable: bool = False) -> Mapped[WKBElement]:
    return mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=nullable)


class GridCell(Base):
    """A live cell: its newest version, kept apart from the history for spatial queries."""

    __tablename__ = "grid_cells"
    __table_args__ = (Index("ix_grid_cells_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    team: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    geom: Mapped[WKBElement] = _area()
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_by: Mapped[str] = mapped_column(String(64))


class GridCellVersion(Base):
    """Every save of a cell, append-only; ``geom`` NULL: the cell was deleted in this version."""

    __tablename__ = "grid_cell_versions"
    __table_args__ = (UniqueConstraint("code", "version", name="grid_cell_version_once"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    team: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    geom: Mapped[WKBElement | None] = _area(nullable=True)
    author: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reason: Mapped[str] = mapped_column(Text)


class Territory(Base):
    """The service territory an admin imported (one row); without it, the network's hull."""

    __tablename__ = "grid_territory"
    __table_args__ = (CheckConstraint("id = 1", name="grid_territory_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    geom: Mapped[WKBElement] = _area()
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TransformerAreaCell(Base):
    """A transformer area given to one cell by a planner (its customers lie in several)."""

    __tablename__ = "transformer_area_cells"

    transformer_area: Mapped[str] = mapped_column(String(120), primary_key=True)
    cell_code: Mapped[str] = mapped_column(ForeignKey("grid_cells.code", ondelete="CASCADE"))
    assigned_by: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CellRevision(Base):
    """One row counting every change to cells, assignments and the territory."""

    __tablename__ = "grid_cell_revision"
    __table_args__ = (CheckConstraint("id = 1", name="grid_cell_revision_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, server_default="0")


# -- the team ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    """A member of a cell's team: the cell's manager, or the manager of some transformer areas."""

    name: str
    phone: str
    duty: str
    transformer_areas: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"name": self.name, "phone": self.phone, "duty": self.duty,
                "transformer_areas": list(self.transformer_areas)}


def parse_code(value: Any, name: str = "code") -> str:
    """A cell's code: 1 to 64 letters, digits, ``-``, ``_`` or ``.``.

    >>> parse_code(" C-01 ")
    'C-01'
    """
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 64 or not all(
            ch.isalnum() or ch in "-_." for ch in value.strip()):
        raise Invalid(_("%(name)s must be 1 to 64 letters, digits, '-', '_' or '.'", name=name), field=name)
    if value.strip().lower() in RESERVED_CODES:
        raise Invalid(_("%(code)s cannot be a cell's code: it names a route", code=value.strip()), field=name)
    return value.strip()


def _member(index: int, item: Any) -> Member:
    where = f"team[{index}]"
    if not isinstance(item, dict) or set(item) - {"name", "phone", "duty", "transformer_areas"}:
        raise Invalid(_("%(where)s must be an object with name, phone, duty and transformer_areas", where=where),
                      field=where)
    name, phone, duty = item.get("name"), item.get("phone"), item.get("duty")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
        raise Invalid(_("%(where)s.name must be 1 to 100 characters", where=where), field=f"{where}.name")
    digits = sum(ch.isdigit() for ch in phone) if isinstance(phone, str) else 0
    if not isinstance(phone, str) or len(phone) > 40 or digits < 3 or any(
            not (ch.isdigit() or ch in "+-() ") for ch in phone):
        raise Invalid(_("%(where)s.phone must be a phone number (digits, '+', '-', '(', ')', spaces)", where=where),
                      field=f"{where}.phone")
    if duty not in DUTIES:
        raise Invalid(_("%(where)s.duty must be one of %(duties)s", where=where, duties=", ".join(DUTIES)),
                      field=f"{where}.duty")
    areas = item.get("transformer_areas") or []
    if not isinstance(areas, list) or not all(isinstance(a, str) and 0 < len(a) <= 120 for a in areas):
        raise Invalid(_("%(where)s.transformer_areas must be a list of transformer area codes", where=where),
                      field=f"{where}.transformer_areas")
    if duty == MANAGER and areas:
        raise Invalid(_("%(where)s: the cell's manager answers for the whole cell; list transformer areas under "
                        "a transformer-area manager", where=where), field=f"{where}.transformer_areas")
    return Member(name.strip(), phone.strip(), duty, tuple(dict.fromkeys(areas)))


def parse_team(value: Any) -> tuple[Member, ...]:
    """A cell's team from JSON: at most one manager, each transformer area under one member.

    >>> [m.duty for m in parse_team([{"name": "Li Wei", "phone": "+86 10 1234", "duty": "manager"}])]
    ['manager']
    """
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TEAM:
        raise Invalid(_("team must be a list of at most %(n)s members", n=MAX_TEAM), field="team")
    team = tuple(_member(index, item) for index, item in enumerate(value))
    if sum(member.duty == MANAGER for member in team) > 1:
        raise Invalid(_("a cell has one manager"), field="team")
    seen: dict[str, str] = {}
    for member in team:
        for area in member.transformer_areas:
            if area in seen:
                raise Invalid(_("transformer area %(area)s is under both %(a)s and %(b)s", area=area, a=seen[area],
                                b=member.name), field="team")
            seen[area] = member.name
    return team


# -- registries the packages fill --------------------------------------------------------------------
@dataclass(frozen=True)
class Contents:
    """What the cells hold, by cell code: transformer areas and customers; the areas a border
    splits (area code -> {cell code: customers}) and how many customers lie in no cell."""

    transformer_areas: dict[str, list[dict]] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)
    split_areas: dict[str, dict[str, int]] = field(default_factory=dict)
    outside: int = 0
    outside_points: list[tuple[float, float]] = field(default_factory=list)
    area_homes: dict[str, str] = field(default_factory=dict)  # area code -> the cell it belongs to


class ContentsProvider(Protocol):
    def __call__(self, connection: Connection, revision: tuple) -> Contents: ...


@dataclass(frozen=True)
class Figure:
    """A per-cell figure, as a legend names it."""

    key: str
    label: str  # marked with _() by the package; translated when shown


# What a package counts per cell: {figure key: {cell code: value}}, from the connection and the
# cells' contents; one call for all of its figures (outages place their customers once for two).
FigureCount = Callable[[Connection, Contents], dict[str, dict[str, float]]]


_CONTENTS: list[ContentsProvider] = []
_FIGURES: dict[str, tuple[tuple[Figure, ...], FigureCount]] = {}
_TERRITORY: list[Callable[[Connection], bytes | None]] = []
_ZONE: list[Callable[[Connection, list[str]], set[str]]] = []


def register_contents(provider: ContentsProvider) -> None:
    """The package that knows what lies in a cell (topology) answers ``contents``."""
    _CONTENTS[:] = [provider]


def register_figures(name: str, shown: tuple[Figure, ...], count: FigureCount) -> None:
    """Show a package's ``shown`` figures per cell, counted by ``count`` (a name registered again
    replaces its figures)."""
    _FIGURES[name] = (tuple(shown), count)


def register_territory(provider: Callable[[Connection], bytes | None]) -> None:
    """The territory (WKB, SRID 4326) when no polygon was imported: topology's network hull."""
    _TERRITORY[:] = [provider]


def register_zone(resolver: Callable[[Connection, list[str]], set[str]]) -> None:
    """The package that knows the feeders (topology) says which feed a set of cells."""
    _ZONE[:] = [resolver]


def zone_feeders(connection: Connection, cell_codes: list[str]) -> set[str]:
    """The feeders a dispatcher whose control zone is ``cell_codes`` may operate (none without a resolver)."""
    return _ZONE[0](connection, list(cell_codes)) if _ZONE and cell_codes else set()


def revision(connection: Connection) -> tuple[int, str]:
    """Which state of the cells ``connection`` sees: the number of changes so far and the
    transaction that made the last one (``xmin``: never reused, so that a change rolled back and
    another made instead are told apart). What is derived from the cells is kept per revision."""
    row = connection.execute(text("SELECT revision, CAST(xmin AS text) FROM grid_cell_revision WHERE id = 1")).first()
    return (row[0], row[1]) if row else (0, "")


def bump_revision(connection: Connection) -> int:
    """Count a change, and hold the row until commit: concurrent changes to cells wait here."""
    return connection.execute(text(
        "INSERT INTO grid_cell_revision (id, revision) VALUES (1, 1) ON CONFLICT (id) DO UPDATE "
        "SET revision = grid_cell_revision.revision + 1 RETURNING revision")).scalar_one()


def contents(connection: Connection) -> Contents:
    """What each cell holds (empty when no package answers)."""
    return _CONTENTS[0](connection, revision(connection)) if _CONTENTS else Contents()


def figures(connection: Connection, held: Contents | None = None) -> tuple[list[Figure], dict[str, dict[str, float]]]:
    """The registered figures and their values: {cell code: {figure key: value}} (``held``: the
    contents when the caller has them already)."""
    held = contents(connection) if held is None else held
    values: dict[str, dict[str, float]] = {}
    for shown, count in _FIGURES.values():
        for key, per_cell in count(connection, held).items():
            for code, value in per_cell.items():
                values.setdefault(code, {})[key] = value
    return [figure for shown, _count in _FIGURES.values() for figure in shown], values


def territory_wkb(connection: Connection) -> tuple[bytes | None, str]:
    """The service territory (WKB) and where it comes from: ``imported``, ``network`` or ``none``."""
    imported = connection.execute(text("SELECT ST_AsBinary(geom) FROM grid_territory WHERE id = 1")).scalar()
    if imported is not None:
        return bytes(imported), "imported"
    hull = _TERRITORY[0](connection) if _TERRITORY else None
    return (hull, "network") if hull is not None else (None, "none")


# -- reading and writing cells -------------------------------------------------------------------------
@dataclass(frozen=True)
class CellDraft:
    """A cell as a planner saves it: the geometry is WKB (SRID 4326), already parsed and checked."""

    code: str
    name: str
    notes: str | None
    team: tuple[Member, ...]
    geometry: bytes


@dataclass(frozen=True)
class CellView:
    code: str
    name: str
    notes: str | None
    team: list[dict]
    version: int
    updated_at: datetime
    updated_by: str
    geometry: dict

    def as_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "notes": self.notes, "team": self.team, "version": self.version,
                "updated_at": self.updated_at, "updated_by": self.updated_by, "geometry": self.geometry}


@dataclass(frozen=True)
class VersionView:
    code: str
    version: int
    name: str
    notes: str | None
    team: list[dict]
    deleted: bool
    author: str
    at: datetime
    reason: str
    geometry: dict | None = None

    def as_dict(self) -> dict:
        answer = {"code": self.code, "version": self.version, "name": self.name, "notes": self.notes,
                  "team": self.team, "deleted": self.deleted, "author": self.author, "at": self.at,
                  "reason": self.reason}
        if self.geometry is not None:
            answer["geometry"] = self.geometry
        return answer


# Coordinates are written with 9 decimals (0.1 mm): a border read, edited and saved again still
# coincides with its neighbour's (7 decimals, 1 cm, left overlaps of several m² along 1 km).
_CELL_COLUMNS = ("SELECT code, name, notes, team, version, updated_at, updated_by, "
                 "CAST(ST_AsGeoJSON(geom, 9) AS json) AS geometry FROM grid_cells")


def cell_or_none(connection: Connection, code: str) -> CellView | None:
    row = connection.execute(text(_CELL_COLUMNS + " WHERE code = :code"), {"code": code}).mappings().first()
    return CellView(**row) if row else None


def cell(connection: Connection, code: str) -> CellView:
    """The live cell ``code`` (NotFound when there is none)."""
    found = cell_or_none(connection, code)
    if found is None:
        raise NotFound(_("no grid cell %(code)s", code=code), code=code)
    return found


def versions(connection: Connection, code: str) -> list[VersionView]:
    """The history of ``code``, newest first (NotFound when it never existed)."""
    rows = connection.execute(text(
        "SELECT code, version, name, notes, team, geom IS NULL AS deleted, author, at, reason "
        "FROM grid_cell_versions WHERE code = :code ORDER BY version DESC"), {"code": code}).mappings().all()
    if not rows:
        raise NotFound(_("no grid cell %(code)s", code=code), code=code)
    return [VersionView(**row) for row in rows]


def version(connection: Connection, code: str, number: int) -> VersionView:
    """Version ``number`` of ``code`` with its geometry (None for a deletion)."""
    row = connection.execute(text(
        "SELECT code, version, name, notes, team, geom IS NULL AS deleted, author, at, reason, "
        "CAST(ST_AsGeoJSON(geom, 9) AS json) AS geometry FROM grid_cell_versions "
        "WHERE code = :code AND version = :version"), {"code": code, "version": number}).mappings().first()
    if row is None:
        raise NotFound(_("grid cell %(code)s has no version %(version)s", code=code, version=number), code=code)
    return VersionView(**row)


def save_version(connection: Connection, draft: CellDraft | None, code: str, expected: int | None, author: str,
                 reason: str) -> int:
    """Write version ``expected + 1`` of ``code`` (``expected`` None: a new cell; ``draft`` None: a
    deletion) and the live row; the caller has bumped the revision and checked the draft. The
    number of the new version; Conflict when ``code`` exists (create) or moved on (edit)."""
    params = {"code": code, "expected": expected, "author": author}
    if draft is not None:
        params.update(name=draft.name, notes=draft.notes, team=_team_json(draft.team), geom=draft.geometry)
    if expected is None:
        written = connection.execute(text(
            "INSERT INTO grid_cells (code, name, notes, team, geom, version, updated_by) "
            "SELECT CAST(:code AS varchar), :name, :notes, CAST(:team AS jsonb), ST_Multi(ST_GeomFromWKB(:geom, 4326)), "
            "  COALESCE((SELECT max(version) FROM grid_cell_versions WHERE code = CAST(:code AS varchar)), 0) + 1, :author "
            "ON CONFLICT (code) DO NOTHING RETURNING version"), params).scalar()
        if written is None:
            raise Conflict(_("grid cell %(code)s exists already", code=code), code=code)
    elif draft is None:
        written = connection.execute(text(
            "DELETE FROM grid_cells WHERE code = CAST(:code AS varchar) AND version = :expected RETURNING version + 1"), params).scalar()
    else:
        written = connection.execute(text(
            "UPDATE grid_cells SET name = :name, notes = :notes, team = CAST(:team AS jsonb), "
            "  geom = ST_Multi(ST_GeomFromWKB(:geom, 4326)), version = version + 1, updated_at = now(), "
            "  updated_by = :author WHERE code = CAST(:code AS varchar) AND version = :expected RETURNING version"), params).scalar()
    if written is None:
        current = connection.execute(text("SELECT version FROM grid_cells WHERE code = CAST(:code AS varchar)"), params).scalar()
        if current is None:
            raise NotFound(_("no grid cell %(code)s", code=code), code=code)
        raise Conflict(_("grid cell %(code)s is at version %(current)s now, not %(expected)s: reload it and try again",
                         code=code, current=current, expected=expected), code=code, version=current)
    connection.execute(text(
        "INSERT INTO grid_cell_versions (code, version, name, notes, team, geom, author, reason) "
        "SELECT CAST(:code AS varchar), :written, c.name, c.notes, c.team, c.geom, :author, :reason FROM grid_cells c WHERE c.code = CAST(:code AS varchar) "
        "UNION ALL SELECT CAST(:code AS varchar), :written, v.name, v.notes, v.team, NULL, :author, :reason FROM grid_cell_versions v "
        "WHERE :deleted AND v.code = CAST(:code AS varchar) AND v.version = :written - 1"),
        {**params, "written": written, "reason": reason, "deleted": draft is None})
    return written


def _team_json(team: tuple[Member, ...]) -> str:
    return json.dumps([member.as_dict() for member in team], ensure_ascii=False)


@dataclass(frozen=True)
class CellDetail:
    """A cell with what it holds: its transformer areas, each with the member who answers for it
    (None: a gap), the areas its team lists that are not in it, and its figures."""

    cell: CellView
    transformer_areas: list[dict]
    gaps: list[str]
    listed_elsewhere: list[str]
    figures: dict[str, float]

    def as_dict(self) -> dict:
        return {**self.cell.as_dict(), "transformer_areas": self.transformer_areas, "gaps": self.gaps,
                "listed_elsewhere": self.listed_elsewhere, "figures": self.figures}


def detail(connection: Connection, code: str) -> CellDetail:
    """Cell ``code`` with its transformer areas and their managers, its gaps and its figures."""
    found = cell(connection, code)
    held = contents(connection)
    answering = {area: member for member in found.team for area in member.get("transformer_areas", ())}
    areas = [{**area, "manager": {k: answering[area["code"]][k] for k in ("name", "phone")}
              if area["code"] in answering else None} for area in held.transformer_areas.get(code, [])]
    inside = {area["code"] for area in areas}
    _figures, values = figures(connection, held)
    return CellDetail(found, areas, [a["code"] for a in areas if a["manager"] is None],
                      sorted(set(answering) - inside), values.get(code, {}))


def assign(connection: Connection, area: str, cell_code: str | None, author: str) -> None:
    """Give transformer area ``area`` to cell ``cell_code`` (None: back to where its customers lie)."""
    if cell_code is None:
        connection.execute(text("DELETE FROM transformer_area_cells WHERE transformer_area = :area"), {"area": area})
        return
    cell(connection, cell_code)
    connection.execute(text(
        "INSERT INTO transformer_area_cells (transformer_area, cell_code, assigned_by) VALUES (:area, :cell, :by) "
        "ON CONFLICT (transformer_area) DO UPDATE SET cell_code = EXCLUDED.cell_code, "
        "assigned_by = EXCLUDED.assigned_by, assigned_at = now()"), {"area": area, "cell": cell_code, "by": author})
