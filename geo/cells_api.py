"""JSON API of grid cells (planners edit, dispatchers see), the service territory, and the
``flask --app app cells`` commands. Each route parses, calls one function of geo.cells /
geo.cell_edits / geo.cell_checks / geo.cells_io, and answers; the author of every change is the
signed-in account, never a field of the body.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import click
from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from flask.cli import AppGroup
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from geo import basemap, cell_checks, cell_edits, cells, cells_io, cells_views, features, tiles
from geo.auth import ADMIN, DISPATCHER, PLANNER, PUBLIC, allow, current_principal
from geo.db import get_session, read
from geo.errors import Invalid
from geo.i18n import _, translate
from geo.jsonprovider import iso_times
from geo.openapi import JSON, Answer, FeatureCollection, contract
from geo.requests import allow_body, body_bytes, json_object
from geo.spatial import BBox, in_bbox

__all__ = ["bp", "init_app", "EDITORS", "READERS"]

bp = Blueprint("cells_api", __name__, url_prefix="/api")

EDITORS = (PLANNER,)
READERS = (PLANNER, DISPATCHER)
PRIVATE = {"Cache-Control": "no-store"}
# A district's cells with their vertices: a few MB at most.
MAX_IMPORT_BYTES = 32 * 1024 * 1024


# -- contract ----------------------------------------------------------------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MemberModel(BaseModel):
    name: str = Field(max_length=100)
    phone: str = Field(max_length=40, description="the member's service phone")
    duty: Literal["manager", "transformer_area_manager"]
    transformer_areas: list[str] = Field(default_factory=list, description="the areas a transformer-area manager answers for")


class CellBody(BaseModel):
    code: str = Field(max_length=64, examples=["C-07"])
    name: str = Field(max_length=200)
    notes: str | None = Field(None, max_length=4000)
    team: list[MemberModel] = Field(default_factory=list)
    geometry: dict = Field(description="a GeoJSON Polygon or MultiPolygon in longitude/latitude")
    reason: str = Field(max_length=1000, description="why: the history shows it")


class CellEditBody(BaseModel):
    version: int = Field(ge=1, description="the version you edited: a newer one answers 409")
    name: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=4000)
    team: list[MemberModel] | None = None
    geometry: dict | None = None
    reason: str = Field(max_length=1000)


class DeleteBody(BaseModel):
    version: int = Field(ge=1)
    reason: str = Field(max_length=1000)


class RestoreBody(BaseModel):
    version: int | None = Field(None, ge=1, description="the live version you saw (absent when the cell is deleted)")
    reason: str = Field(max_length=1000)


class ValidateBody(BaseModel):
    code: str | None = Field(None, description="the cell being edited (absent: a new one)")
    geometry: dict


class AssignBody(BaseModel):
    cell: str | None = Field(description="the cell the area belongs to; null: where its customers lie")


class TerritoryBody(BaseModel):
    geometry: dict


class ExportQuery(BaseModel):
    format: Literal["geojson", "gpkg"] = "geojson"


class ImportQuery(BaseModel):
    format: Literal["geojson", "gpkg"] | None = None
    mode: Literal["merge", "replace"] = Field("merge", description="replace: delete the cells the file leaves out")
    reason: str = Field(max_length=1000)


class Saved(BaseModel):
    code: str
    version: int
    deleted: bool


# -- helpers -------------------------------------------------------------------------------------------
def _author() -> str:
    return current_principal().name


def _answer(body: Any, status: int = 200, headers: dict | None = None):
    return jsonify(iso_times(body)), status, {**PRIVATE, **(headers or {})}


def _saved(saved: cell_edits.Saved, status: int = 200):
    headers = {} if saved.deleted else {"Location": url_for("cells_api.cell_detail", code=saved.code)}
    return _answer(saved.as_dict(), status, headers)


def _layer(connection) -> dict:
    """Every live cell as a Feature with its team and figures, and the figures' legend."""
    listed, values = cells.figures(connection)
    document = json.loads(cells_io.export_cells(connection, "geojson"))
    for feature in document["features"]:
        feature["properties"]["figures"] = values.get(feature["id"], {})
    document["figures"] = [{"key": figure.key, "label": translate(figure.label)} for figure in listed]
    return document


# -- reading -------------------------------------------------------------------------------------------
@bp.get("/cells")
@allow(*READERS)
@contract(responses={200: Answer("application/geo+json", FeatureCollection)})
def cell_layer():
    """Every grid cell with its team and per-cell figures (customers, transformer areas, outlets,
    open outages, customers out), and the figures' names in ``figures`` for a legend."""
    return read(_layer), 200, {**PRIVATE, "Content-Type": "application/geo+json"}


@bp.get("/cells/<code>")
@allow(*READERS)
@contract(responses={200: _Open}, errors=(404,))
def cell_detail(code: str):
    """A cell: team, transformer areas with the member answering for each, gaps, figures."""
    return _answer(read(cells.detail, code).as_dict())


@bp.get("/cells/coverage")
@allow(*READERS)
@contract(responses={200: _Open})
def coverage():
    """The territory, the parts of it no cell covers (a warning layer), the transformer areas a
    border splits, and the customers outside every cell (counted, and placed)."""
    def gather(connection) -> dict:
        held = cells.contents(connection)
        answer = cell_checks.coverage(connection)
        answer["split_transformer_areas"] = [{"code": area, "cells": spread} for area, spread in sorted(held.split_areas.items())]
        answer["outside_customers"] = held.outside
        answer["outside_points"] = {"type": "MultiPoint", "coordinates": [list(p) for p in held.outside_points]}
        return answer
    return _answer(read(gather))


@bp.get("/cells/<code>/versions")
@allow(*READERS)
@contract(responses={200: _Open}, errors=(404,))
def cell_versions(code: str):
    """The history of a cell, newest first: version, author, time, reason, deleted."""
    return _answer({"code": code, "versions": [v.as_dict() for v in read(cells.versions, code)]})


@bp.get("/cells/<code>/versions/<int:number>")
@allow(*READERS)
@contract(responses={200: _Open}, errors=(404,))
def cell_version(code: str, number: int):
    """One version of a cell with its geometry (none for a deletion), to compare on the map."""
    return _answer(read(cells.version, code, number).as_dict())


@bp.get("/cells/export")
@allow(*READERS)
@contract(query=ExportQuery, responses={200: Answer({"application/geo+json": None,
                                                     "application/geopackage+sqlite3": None})}, errors=(400,))
def export():
    """Every cell as a GeoJSON or GeoPackage file (the import's layout)."""
    file_format = cells_io.format_of(None, request.args.get("format", "geojson"))
    data = read(cells_io.export_cells, file_format)
    return Response(data, mimetype=cells_io.MEDIA[file_format], headers={
        **PRIVATE, "Content-Disposition": f'attachment; filename="grid_cells.{file_format}"'})


@bp.get("/territory")
@allow(PUBLIC)
@contract(responses={200: _Open})
def territory():
    """The service territory's outline and where it comes from (imported, or the network's hull)."""
    outline, source = read(cell_checks.territory_outline)
    return _answer({"source": source, "territory": outline})


# -- changing ------------------------------------------------------------------------------------------
@bp.post("/cells/validate")
@allow(*EDITORS)
@contract(body=ValidateBody, responses={200: _Open}, errors=(422,))
def validate():
    """The problems a polygon would have as a cell, each with its geometry; nothing is saved."""
    body = json_object({"code", "geometry"})
    code = cells.parse_code(body["code"]) if body.get("code") is not None else None
    problems = cell_edits.validate(get_session(), code, body.get("geometry"))
    return _answer({"valid": not problems, "problems": [problem.as_dict() for problem in problems]})


@bp.post("/cells")
@allow(*EDITORS)
@contract(body=CellBody, responses={201: Answer(JSON, Saved, headers={"Location": "the cell"})}, errors=(409, 422))
def cell_create():
    """A new cell, checked (422 lists each problem with its geometry); 409 when the code exists."""
    body = json_object({"code", "name", "notes", "team", "geometry", "reason"})
    code = cells.parse_code(body.get("code"))
    fields = cell_edits.parse_fields(body)
    return _saved(cell_edits.create(get_session(), code, fields, _author(), cell_edits.parse_reason(body.get("reason"))),
                  201)


@bp.put("/cells/<code>")
@allow(*EDITORS)
@contract(body=CellEditBody, responses={200: Saved}, errors=(404, 409, 422))
def cell_update(code: str):
    """Edit a cell from the version you saw: the fields given replace the stored ones."""
    body = json_object({"version", "name", "notes", "team", "geometry", "reason"})
    fields = cell_edits.parse_fields(body)
    return _saved(cell_edits.update(get_session(), code, cell_edits.parse_version(body.get("version")), fields,
                                    _author(), cell_edits.parse_reason(body.get("reason"))))


@bp.delete("/cells/<code>")
@allow(*EDITORS)
@contract(body=DeleteBody, responses={200: Saved}, errors=(404, 409))
def cell_delete(code: str):
    """Delete a cell (its history stays and it can be restored)."""
    body = json_object({"version", "reason"})
    return _saved(cell_edits.delete(get_session(), code, cell_edits.parse_version(body.get("version")), _author(),
                                    cell_edits.parse_reason(body.get("reason"))))


@bp.post("/cells/<code>/versions/<int:number>/restore")
@allow(*EDITORS)
@contract(body=RestoreBody, responses={200: Saved}, errors=(404, 409, 422))
def cell_restore(code: str, number: int):
    """Make an older version the live one again, as a new version, checked like any save."""
    body = json_object({"version", "reason"})
    expected = cell_edits.parse_version(body["version"]) if body.get("version") is not None else None
    return _saved(cell_edits.restore(get_session(), code, number, expected, _author(),
                                     cell_edits.parse_reason(body.get("reason"))))


@bp.put("/transformer-areas/<area>/cell")
@allow(*EDITORS)
@contract(body=AssignBody, responses={200: _Open}, errors=(404,))
def area_cell(area: str):
    """Give a transformer area a border splits to one cell (``cell``: null gives it back to where
    its customers lie)."""
    body = json_object({"cell"})
    target = cells.parse_code(body["cell"], "cell") if body.get("cell") is not None else None
    cell_edits.assign_area(get_session(), area, target, _author())
    return _answer({"transformer_area": area, "cell": target})


@bp.put("/territory")
@allow(ADMIN)
@contract(body=TerritoryBody, responses={200: _Open}, errors=(422,))
def territory_import():
    """Import the service territory (a polygon): cells are then checked against it."""
    body = json_object({"geometry"})
    cell_edits.import_territory(get_session(), body.get("geometry"), _author())
    return _answer({"source": "imported"})


@bp.post("/cells/import")
@allow(*EDITORS)
@contract(query=ImportQuery, body={JSON: _Open, "application/geo+json": _Open,
                                   "application/geopackage+sqlite3": {"type": "string", "format": "binary"}},
          responses={200: _Open}, errors=(413, 415, 422))
def cell_import():
    """Cells from a GeoJSON or GeoPackage file (the raw body, or the multipart field ``file``),
    all kept or none: each is checked against the others; ``mode=replace`` deletes the cells the
    file leaves out."""
    allow_body(MAX_IMPORT_BYTES)
    upload = request.files.get("file")
    data, filename = (upload.read(), upload.filename) if upload else (body_bytes(), None)
    given = request.args.get("format") or ("gpkg" if request.mimetype == cells_io.MEDIA["gpkg"] else None)
    mode = request.args.get("mode", "merge")
    if mode not in ("merge", "replace"):
        raise Invalid(_("mode must be merge or replace"), field="mode")
    features = cells_io.read_features(data, cells_io.format_of(filename, given))
    report = cell_edits.import_cells(get_session(), features, mode == "replace", _author(),
                                     cell_edits.parse_reason(request.args.get("reason")))
    return _answer(report.as_dict())


# -- command line ---------------------------------------------------------------------------------------
cells_cli = AppGroup("cells", help="Import and export grid cells; import the service territory.")


def _session() -> Session:
    return current_app.extensions["sessionmaker"]()


@cells_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Delete the cells the file leaves out.")
@click.option("--reason", default="imported from a file", show_default=True)
@click.option("--author", default="cli", show_default=True, help="The name the history records.")
def import_command(path: Path, replace: bool, reason: str, author: str) -> None:
    """Import cells from a GeoJSON or GeoPackage file: all checked together, all kept or none."""
    try:
        features = cells_io.read_features(path.read_bytes(), cells_io.format_of(path.name, None))
        with _session() as session:
            report = cell_edits.import_cells(session, features, replace, author, reason)
    except cell_edits.CellProblems as refused:
        lines = [f"  {refused.extra.get('code', '')}: {translate(p.detail)}" for p in refused.problems]
        raise click.ClickException(f"{path}: nothing was imported; {len(lines)} problem(s):\n" + "\n".join(lines)) from None
    except Invalid as error:
        raise click.ClickException(f"{path}: {translate(error.detail)}; nothing was imported") from None
    click.echo(f"imported {path}: {len(report.created)} new, {len(report.updated)} changed, "
               f"{len(report.deleted)} deleted")


@cells_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export_command(path: Path) -> None:
    """Write every cell to a GeoJSON or GeoPackage file (by its extension)."""
    with _session() as session:
        data = cells_io.export_cells(session.connection(), cells_io.format_of(path.name, None))
    path.write_bytes(data)
    click.echo(f"wrote {path} ({len(data):,} bytes)")


@cells_cli.command("territory")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--author", default="cli", show_default=True)
def territory_command(path: Path, author: str) -> None:
    """Import the service territory from a GeoJSON file (its first polygon feature, or a geometry)."""
    document = json.loads(path.read_bytes())
    geometry = document["features"][0] if document.get("type") == "FeatureCollection" else document
    try:
        with _session() as session:
            cell_edits.import_territory(session, geometry, author)
    except (Invalid, cell_edits.CellProblems) as error:
        raise click.ClickException(f"{path}: {translate(error.detail)}") from None
    click.echo(f"imported the service territory from {path}")


def _cell_outlines(bbox: BBox | None) -> Select:
    """The cells' outlines for the light base map: code and name only (it is public)."""
    table = cells.GridCell.__table__
    return select(table.c.code.label("id"), table.c.geom, table.c.name).where(in_bbox(table.c.geom, bbox))


def _cells_for_gis(bbox: BBox | None) -> Select:
    """The cells for GIS clients: code, name, version and its time, the manager's name (the team's
    phones stay with the signed-in API)."""
    table = cells.GridCell.__table__
    manager = literal_column("""jsonb_path_query_first(grid_cells.team, '$[*] ? (@.duty == "manager").name') #>> '{}'""")
    return select(table.c.code.label("id"), table.c.geom, table.c.code, table.c.name, table.c.version,
                  table.c.updated_at, manager.label("manager")).where(in_bbox(table.c.geom, bbox))


def _cell_tile(connection, tile: tiles.Tile) -> Select:
    layer = _cells_for_gis(tile.bbox()).subquery("layer")
    return select(*[column for column in layer.c if column.key != "id"])


def _cells_version(connection) -> str:
    """What a cells tile's ETag follows: every change to the cells."""
    return "%s-%s" % cells.revision(connection)


def _cells_extent(connection) -> BBox | None:
    extent = select(func.ST_Extent(cells.GridCell.__table__.c.geom).label("box")).subquery()
    box = connection.execute(select(func.ST_XMin(extent.c.box), func.ST_YMin(extent.c.box), func.ST_XMax(extent.c.box),
                                    func.ST_YMax(extent.c.box))).one()
    return None if box[0] is None else BBox(*box)


def init_app(app: Flask) -> None:
    """Register the API, ``flask cells``, the cells' OGC API collection and their outlines on the
    light base map."""
    app.register_blueprint(bp)
    app.register_blueprint(cells_views.bp)
    app.cli.add_command(cells_cli)
    tiles.register(tiles.TileLayer(
        "grid_cells", "Grid cells", "The grid cells: code, name, version, saved at and the cell's manager.",
        frozenset({PUBLIC}), _cell_tile, _cells_version))
    features.register(features.Collection(
        "grid_cells", "Grid cells", "The grid cells planners draw: code, name, version, when it was saved and the "
        "cell's manager.", frozenset({PUBLIC}), _cells_for_gis, _cells_extent))
    basemap.register_outline(basemap.Outline(
        id="grid_cells", title=_("Grid cells"), query=_cell_outlines, min_zoom=11,
        style={"color": "#9c8f73", "weight": 1.5, "dashArray": "2 4", "fill": False}))
