"""Bulk loading of a whole network into PostGIS, shared by every importer and the demo city.

A network arrives as ``NetworkFrames``: one pandas DataFrame per table, elements referring to
each other by external code (the same layout as the GeoPackage format, docs/data-format.md).
``load_network`` validates the frames, COPYs each into a staging table, refuses dangling
references and duplicate codes by naming the layer and row, and inserts with set-based joins.
It runs inside the caller's transaction: a refused file leaves the database unchanged.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import ImportFailed
from topology.models import DeviceKind, NodeKind, SourceKind, SwitchState

__all__ = ["LAYERS", "NetworkFrames", "load_network", "bump_topology_version", "empty_frames"]


@dataclass(frozen=True)
class Column:
    """A column of a layer: its SQL type in staging, whether required, its allowed values."""

    name: str
    sql: str = "text"
    required: bool = False
    choices: tuple[str, ...] | None = None
    default: object = None


@dataclass(frozen=True)
class Reference:
    """A column holding the code of a row of another table."""

    column: str
    table: str
    target: str  # the id column it fills in the real table
    required: bool = True


@dataclass(frozen=True)
class Layer:
    """One table of the layout: its columns, references and geometry kind."""

    table: str
    columns: tuple[Column, ...]
    references: tuple[Reference, ...] = ()
    geometry: str | None = None
    geometry_required: bool = True

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def _values(kind) -> tuple[str, ...]:
    return tuple(member.value for member in kind)


_IN_SERVICE = Column("in_service", "boolean", default=True)
LAYERS: dict[str, Layer] = {
    layer.table: layer
    for layer in (
        Layer("substations", (Column("code", required=True), Column("name")), geometry="Point"),
        Layer(
            "feeders",
            (Column("code", required=True), Column("name"), Column("substation"),
             Column("voltage_kv", "double precision")),
            (Reference("substation", "substations", "substation_id", required=False),),
        ),
        Layer(
            "nodes",
            (Column("code", required=True), Column("kind", choices=_values(NodeKind), default="junction"),
             Column("voltage_kv", "double precision"), Column("feeder"), _IN_SERVICE),
            (Reference("feeder", "feeders", "feeder_id", required=False),),
            geometry="Point",
        ),
        Layer(
            "segments",
            (Column("code", required=True), Column("from_node", required=True),
             Column("to_node", required=True), Column("feeder"), Column("length_m", "double precision"),
             Column("conductor"), _IN_SERVICE),
            (Reference("from_node", "nodes", "from_node_id"), Reference("to_node", "nodes", "to_node_id"),
             Reference("feeder", "feeders", "feeder_id", required=False)),
            geometry="LineString",
        ),
        Layer(
            "devices",
            (Column("code", required=True), Column("kind", required=True, choices=_values(DeviceKind)),
             Column("name"), Column("from_node", required=True), Column("to_node", required=True),
             Column("feeder"),
             Column("normal_state", choices=_values(SwitchState), default="closed"),
             Column("current_state", choices=_values(SwitchState)),
             _IN_SERVICE, Column("rated_kva", "double precision")),
            (Reference("from_node", "nodes", "from_node_id"), Reference("to_node", "nodes", "to_node_id"),
             Reference("feeder", "feeders", "feeder_id", required=False)),
            geometry="Point",
        ),
        Layer(
            "sources",
            (Column("code", required=True), Column("kind", choices=_values(SourceKind), default="substation"),
             Column("node", required=True), Column("substation"), _IN_SERVICE),
            (Reference("node", "nodes", "node_id"),
             Reference("substation", "substations", "substation_id", required=False)),
        ),
        Layer(
            "transformer_areas",
            (Column("code", required=True), Column("name"), Column("transformer", required=True)),
            (Reference("transformer", "devices", "transformer_id"),),
            geometry="Polygon",
            geometry_required=False,
        ),
        Layer(
            "service_points",
            (Column("code", required=True), Column("account_number", required=True), Column("name"),
             Column("phone"), Column("address"), Column("node", required=True),
             Column("transformer_area"), _IN_SERVICE),
            (Reference("node", "nodes", "node_id"),
             Reference("transformer_area", "transformer_areas", "transformer_area_id", required=False)),
            geometry="Point",
        ),
    )
}


@dataclass
class NetworkFrames:
    """A network as one DataFrame per layer; geometry columns hold shapely geometries (4326)."""

    substations: pd.DataFrame = field(default_factory=pd.DataFrame)
    feeders: pd.DataFrame = field(default_factory=pd.DataFrame)
    nodes: pd.DataFrame = field(default_factory=pd.DataFrame)
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)
    devices: pd.DataFrame = field(default_factory=pd.DataFrame)
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)
    transformer_areas: pd.DataFrame = field(default_factory=pd.DataFrame)
    service_points: pd.DataFrame = field(default_factory=pd.DataFrame)

    def items(self) -> Iterable[tuple[str, pd.DataFrame]]:
        """(layer name, frame) in dependency order."""
        for item in fields(self):
            yield item.name, getattr(self, item.name)

    def counts(self) -> dict[str, int]:
        """Rows per layer."""
        return {name: len(frame) for name, frame in self.items()}


def empty_frames() -> NetworkFrames:
    """Frames with every layer's columns and no rows."""
    frames = NetworkFrames()
    for name, layer in LAYERS.items():
        columns = layer.column_names + (["geometry"] if layer.geometry else [])
        setattr(frames, name, pd.DataFrame({column: pd.Series(dtype=object) for column in columns}))
    return frames


Progress = Callable[[str, int], None]


def load_network(connection: Connection, frames: NetworkFrames, progress: Progress | None = None) -> dict[str, int]:
    """Validate and insert ``frames`` into the database behind ``connection``; return row counts.

    Raises ``ImportFailed`` naming the layer, the row (its position in the layer, from 1, as a
    GeoPackage's fid and a spreadsheet count) and the
    reason. Runs in the caller's transaction, so a refusal leaves the database unchanged
    provided the caller rolls back (``with engine.begin()`` does).

    Notes
    -----
    Set-based: one COPY and one INSERT ... SELECT per layer, so time grows linearly with rows.
    """
    counts: dict[str, int] = {}
    for name, frame in frames.items():
        layer = LAYERS[name]
        prepared = _prepare(layer, frame)
        if len(prepared):
            _stage(connection, layer, prepared)
            _check_references(connection, layer)
            _insert(connection, layer)
        counts[name] = len(prepared)
        if progress:
            progress(name, len(prepared))
    bump_topology_version(connection)
    return counts


def bump_topology_version(connection: Connection) -> int:
    """Increment and return the topology version, so that cached graphs know they are stale."""
    return connection.execute(
        text("UPDATE topology_state SET version = version + 1, changed_at = now() WHERE id = 1 RETURNING version")
    ).scalar_one()


# -- validation ---------------------------------------------------------------------------------
def _prepare(layer: Layer, frame: pd.DataFrame) -> pd.DataFrame:
    """Check required values, choices, duplicate codes and geometries; return staging columns."""
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    for column in layer.columns:
        if column.name in frame.columns:
            values = frame[column.name]
            values = values.where(pd.notna(values), None)
        else:
            values = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if column.default is not None:
            values = values.where(values.notna(), column.default)
        if column.required:
            missing = values.isna() | (values.astype(str).str.strip() == "")
            if missing.any():
                _refuse(layer, missing, f"{column.name} is required")
        if column.sql == "boolean":
            values = values.map(_as_bool, na_action="ignore")
            if values.isna().any():
                _refuse(layer, values.isna(), f"{column.name} must be true or false")
        elif column.sql == "double precision":
            numbers = pd.to_numeric(values, errors="coerce")
            if (numbers.isna() & values.notna()).any():
                _refuse(layer, numbers.isna() & values.notna(), f"{column.name} must be a number")
            values = numbers
        elif values.notna().any():
            values = values.map(_as_text, na_action="ignore")
        if column.choices is not None:
            unknown = values.notna() & ~values.isin(column.choices)
            if unknown.any():
                row = _first(unknown)
                raise ImportFailed(layer.table, row + 1, f"unknown {column.name} {values.iloc[row]!r}; "
                                   f"expected one of {', '.join(column.choices)}")
        out[column.name] = values
    duplicated = out["code"].duplicated()
    if duplicated.any():
        row = _first(duplicated)
        raise ImportFailed(layer.table, row + 1, f"code {out['code'].iloc[row]!r} appears twice")
    if layer.table == "devices":
        out["current_state"] = out["current_state"].where(out["current_state"].notna(), out["normal_state"])
    if layer.geometry:
        out["geometry"] = _geometry_hex(layer, frame)
    return out


def _geometry_hex(layer: Layer, frame: pd.DataFrame) -> pd.Series:
    geoms = np.asarray(frame["geometry"] if "geometry" in frame.columns else [None] * len(frame), dtype=object)
    present = ~shapely.is_missing(geoms)
    if layer.geometry_required and not present.all():
        _refuse(layer, ~present, "geometry is missing")
    valid_types = shapely.get_type_id(geoms) == _TYPE_IDS[layer.geometry]
    if (present & ~valid_types).any():
        row = _first(present & ~valid_types)
        raise ImportFailed(layer.table, row + 1, f"geometry must be a {layer.geometry}, not a {geoms[row].geom_type}")
    problems = present & ~(shapely.is_valid(geoms) & ~shapely.is_empty(geoms))
    if layer.geometry == "LineString":
        problems |= present & (shapely.get_num_points(geoms) < 2)
    if problems.any():
        row = _first(problems)
        raise ImportFailed(layer.table, row + 1, f"invalid geometry: {shapely.is_valid_reason(geoms[row])}")
    coords_ok = np.ones(len(geoms), dtype=bool)
    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        coords_ok &= ~(present & ((bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90) | (bounds[:, 3] > 90)))
    if not coords_ok.all():
        raise ImportFailed(layer.table, _first(~coords_ok) + 1, "coordinates are outside longitude/latitude range (SRID 4326 expected)")
    hexes = shapely.to_wkb(geoms, hex=True, output_dimension=2, include_srid=False)
    return pd.Series(hexes, index=frame.index, dtype=object)


_TYPE_IDS = {"Point": 0, "LineString": 1, "Polygon": 3}


def _as_bool(value) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer, float, np.floating)):
        return bool(value) if value in (0, 1) else None
    text_value = str(value).strip().lower()
    return {"true": True, "t": True, "1": True, "yes": True,
            "false": False, "f": False, "0": False, "no": False}.get(text_value)


def _as_text(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _refuse(layer: Layer, mask: pd.Series, reason: str) -> None:
    raise ImportFailed(layer.table, _first(mask) + 1, reason)


def _first(mask) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


# -- staging and insertion -----------------------------------------------------------------------
def _stage_name(layer: Layer) -> str:
    return f"stage_{layer.table}"


def _stage(connection: Connection, layer: Layer, prepared: pd.DataFrame) -> None:
    stage = _stage_name(layer)
    columns = [f"{column.name} {column.sql}" for column in layer.columns]
    if layer.geometry:
        columns.append("geometry geometry")
    columns.append("row_number bigint")
    connection.execute(text(f"DROP TABLE IF EXISTS {stage}"))
    connection.execute(text(f"CREATE TEMP TABLE {stage} ({', '.join(columns)}) ON COMMIT DROP"))
    prepared = prepared.assign(row_number=np.arange(1, len(prepared) + 1))
    buffer = io.StringIO()
    prepared.to_csv(buffer, sep="\t", header=False, index=False, na_rep="", quoting=3, escapechar="\\",
                    lineterminator="\n")
    names = ", ".join(prepared.columns)
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN WITH (NULL '')") as copy:
            copy.write(buffer.getvalue())
    connection.execute(text(f"CREATE INDEX ON {stage} (code)"))
    connection.execute(text(f"ANALYZE {stage}"))


def _check_references(connection: Connection, layer: Layer) -> None:
    stage = _stage_name(layer)
    clash = connection.execute(text(
        f"SELECT s.row_number, s.code FROM {stage} s JOIN {layer.table} t ON t.code = s.code "
        "ORDER BY s.row_number LIMIT 1"
    )).first()
    if clash:
        raise ImportFailed(layer.table, clash.row_number, f"code {clash.code!r} already exists in the database")
    for reference in layer.references:
        dangling = connection.execute(text(
            f"SELECT s.row_number, s.{reference.column} AS ref FROM {stage} s "
            f"LEFT JOIN {reference.table} t ON t.code = s.{reference.column} "
            f"WHERE s.{reference.column} IS NOT NULL AND t.id IS NULL ORDER BY s.row_number LIMIT 1"
        )).first()
        if dangling:
            raise ImportFailed(layer.table, dangling.row_number,
                               f"{reference.column} {dangling.ref!r} is not a known {reference.table} code")
    if layer.table in ("segments", "devices"):
        loop = connection.execute(text(
            f"SELECT row_number FROM {stage} WHERE from_node = to_node ORDER BY row_number LIMIT 1")).first()
        if loop:
            raise ImportFailed(layer.table, loop.row_number, "from_node and to_node are the same node")


def _insert(connection: Connection, layer: Layer) -> None:
    stage = _stage_name(layer)
    referenced = {reference.column: reference for reference in layer.references}
    targets, values, joins = [], [], []
    for position, column in enumerate(layer.columns):
        if column.name in referenced:
            reference = referenced[column.name]
            alias = f"r{position}"
            targets.append(reference.target)
            values.append(f"{alias}.id")
            joins.append(f"LEFT JOIN {reference.table} {alias} ON {alias}.code = s.{column.name}")
        elif column.name == "length_m":
            targets.append("length_m")
            values.append("COALESCE(s.length_m, ST_Length(ST_SetSRID(s.geometry, 4326)::geography))")
        else:
            targets.append(column.name)
            cast = _ENUM_CASTS.get((layer.table, column.name))
            values.append(f"s.{column.name}::{cast}" if cast else f"s.{column.name}")
    if layer.geometry:
        targets.append("geom")
        values.append("ST_SetSRID(s.geometry, 4326)")
    connection.execute(text(
        f"INSERT INTO {layer.table} ({', '.join(targets)}) SELECT {', '.join(values)} "
        f"FROM {stage} s {' '.join(joins)} ORDER BY s.row_number"
    ))
    connection.execute(text(f"ANALYZE {layer.table}"))


_ENUM_CASTS = {
    ("nodes", "kind"): "node_kind",
    ("devices", "kind"): "device_kind",
    ("devices", "normal_state"): "switch_state",
    ("devices", "current_state"): "switch_state",
    ("sources", "kind"): "source_kind",
}
