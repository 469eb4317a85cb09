"""Bulk loading of a whole network into PostGIS, shared by every importer and the demo city.

A network arrives as ``NetworkFrames``: one pandas DataFrame per table, elements referring to
each other by external code (the same layout as the GeoPackage format, docs/data-format.md).
``load_network`` validates the frames, refuses dangling references and duplicate codes by
naming the layer and row, resolves codes to ids and COPYs each layer into its table.
It runs inside the caller's transaction: a refused file leaves the database unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import shapely
from psycopg.copy import QueuedLibpqWriter
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import ImportFailed
from geo.i18n import _
from topology.models import DeviceKind, NodeKind, SourceKind, SwitchState

__all__ = ["LAYERS", "Layer", "Column", "Reference", "NetworkFrames", "load_network", "bump_topology_version",
           "empty_frames", "normalise_layer"]


@dataclass(frozen=True)
class Column:
    """A column of a layer: its SQL type, whether required, its allowed values, its default.

    ``unique`` columns may not repeat a value, in the file or in the database; ``max_length``
    and ``minimum`` mirror the table's column types and check constraints.
    """

    name: str
    sql: str = "text"
    required: bool = False
    choices: tuple[str, ...] | None = None
    default: object = None
    unique: bool = False
    max_length: int | None = None
    minimum: float | None = None


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
        """The names of the columns, in order."""
        return [column.name for column in self.columns]


def _values(kind) -> tuple[str, ...]:
    """The values of an enum, as the database spells them."""
    return tuple(member.value for member in kind)


_IN_SERVICE = Column("in_service", "boolean", default=True)
# The element's place comes from a schematic layout of the graph, not from the ground.
_SCHEMATIC = Column("schematic", "boolean", default=False)
_CODE = Column("code", required=True, unique=True, max_length=120)
_NAME = Column("name", max_length=200)
LAYERS: dict[str, Layer] = {
    layer.table: layer
    for layer in (
        Layer("substations", (_CODE, _NAME, _SCHEMATIC), geometry="Point"),
        Layer(
            "feeders",
            (_CODE, _NAME, Column("substation"),
             Column("voltage_kv", "double precision"), Column("rating_kva", "double precision", minimum=0.0)),
            (Reference("substation", "substations", "substation_id", required=False),),
        ),
        Layer(
            "nodes",
            (_CODE, Column("kind", choices=_values(NodeKind), default="junction"),
             Column("voltage_kv", "double precision"), Column("feeder"), _IN_SERVICE, _SCHEMATIC),
            (Reference("feeder", "feeders", "feeder_id", required=False),),
            geometry="Point",
        ),
        Layer(
            "segments",
            (_CODE, Column("from_node", required=True),
             Column("to_node", required=True), Column("feeder"), Column("length_m", "double precision", minimum=0.0),
             Column("conductor", max_length=120),
             Column("ampacity_a", "double precision", minimum=0.0), _IN_SERVICE, _SCHEMATIC),
            (Reference("from_node", "nodes", "from_node_id"), Reference("to_node", "nodes", "to_node_id"),
             Reference("feeder", "feeders", "feeder_id", required=False)),
            geometry="LineString",
        ),
        Layer(
            "devices",
            (_CODE, Column("kind", required=True, choices=_values(DeviceKind)),
             _NAME, Column("from_node", required=True), Column("to_node", required=True),
             Column("feeder"),
             Column("normal_state", choices=_values(SwitchState), default="closed"),
             Column("current_state", choices=_values(SwitchState)),
             _IN_SERVICE, Column("rated_kva", "double precision"), _SCHEMATIC),
            (Reference("from_node", "nodes", "from_node_id"), Reference("to_node", "nodes", "to_node_id"),
             Reference("feeder", "feeders", "feeder_id", required=False)),
            geometry="Point",
        ),
        Layer(
            "sources",
            (_CODE, Column("kind", choices=_values(SourceKind), default="substation"),
             Column("node", required=True), Column("substation"), _IN_SERVICE),
            (Reference("node", "nodes", "node_id"),
             Reference("substation", "substations", "substation_id", required=False)),
        ),
        Layer(
            "transformer_areas",
            (_CODE, _NAME, Column("transformer", required=True, unique=True)),
            (Reference("transformer", "devices", "transformer_id"),),
            geometry="Polygon",
            geometry_required=False,
        ),
        Layer(
            "service_points",
            (_CODE, Column("account_number", required=True, unique=True, max_length=40), _NAME,
             Column("phone", max_length=40), Column("address"), Column("node", required=True),
             Column("transformer_area"), Column("demand_kw", "double precision", minimum=0.0), _IN_SERVICE, _SCHEMATIC),
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


# Called as ``progress(layer, rows)`` with the rows just stored: with 0 when a layer starts,
# then once per COPY chunk, so that the rows reported for a layer add up to its count.
Progress = Callable[[str, int], None]


def _silent(_layer: str, _rows: int) -> None:
    """Report nothing."""


def load_network(connection: Connection, frames: NetworkFrames, progress: Progress | None = None) -> dict[str, int]:
    """Validate and insert ``frames`` into the database behind ``connection``; return row counts.

    Raises ``ImportFailed`` naming the layer, the row (its position in the layer, from 1, as a
    GeoPackage's fid and a spreadsheet count) and the reason. Runs in the caller's
    transaction, so a refusal leaves the database unchanged provided the caller rolls back
    (``with engine.begin()`` does).

    Notes
    -----
    References are resolved to ids in pandas (codes loaded in the same call, else looked up
    in the database) and each layer goes into its table with one COPY. A large layer is
    loaded without the table's secondary indexes and foreign keys, which are built again
    afterwards. Time grows linearly with rows.
    """
    counts: dict[str, int] = {}
    loaded: dict[str, tuple[pd.Index, np.ndarray]] = {}
    report = progress or _silent
    for name, frame in frames.items():
        report(name, 0)
        layer = LAYERS[name]
        table = normalise_layer(name, frame)
        if len(table):
            loaded[name] = _load_layer(connection, layer, table, loaded, report)
        counts[name] = len(table)
    bump_topology_version(connection)
    return counts


def bump_topology_version(connection: Connection) -> int:
    """Increment and return the topology version, so that cached graphs know they are stale."""
    return connection.execute(
        text("UPDATE topology_state SET version = version + 1, changed_at = now() WHERE id = 1 RETURNING version")
    ).scalar_one()


# -- validation ---------------------------------------------------------------------------------
def normalise_layer(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The layer's columns, in order, checked and typed (text, float, bool, shapely geometry).

    Fills defaults (``kind``, ``normal_state``, ``in_service``; ``current_state`` from
    ``normal_state``) and raises ``ImportFailed`` on a missing required value, an unknown
    choice, a duplicate code, a bad geometry or a segment or device from a node to itself.
    """
    layer = LAYERS[name]
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    for column in layer.columns:
        out[column.name] = _column_values(layer, column, frame)
        if column.unique:
            values = out[column.name]
            duplicated = values.notna() & values.duplicated()
            if duplicated.any():
                row = _first(duplicated)
                raise ImportFailed(layer.table, row + 1, _("%(name)s %(value)r appears twice", name=column.name, value=values.iloc[row]))
    if layer.table == "devices":
        out["current_state"] = out["current_state"].where(out["current_state"].notna(), out["normal_state"])
    if layer.geometry:
        out["geometry"] = _checked_geometries(layer, frame)
    return out


def _column_values(layer: Layer, column: Column, frame: pd.DataFrame) -> pd.Series:
    """One column checked and typed; None where there is no value."""
    if column.name in frame.columns:
        values = frame[column.name]
    else:
        values = pd.Series(None, index=frame.index, dtype=object)
    if column.sql == "boolean":
        values = _booleans(layer, column, values)
    elif column.sql == "double precision":
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        wrong = numbers.isna() & values.notna()
        if wrong.any():
            _refuse(layer, wrong, _("%(column)s must be a number", column=column.name))
        if column.minimum is not None and (numbers < column.minimum).any():
            _refuse(layer, numbers < column.minimum, _("%(column)s must be at least %(minimum)g", column=column.name, minimum=column.minimum))
        values = numbers
    else:
        values = _texts(values)
        if column.default is not None:
            values = values.where(values.notna(), column.default)
        if column.required:
            missing = values.isna() | (values == "")
            if missing.any():
                _refuse(layer, missing, _("%(column)s is required", column=column.name))
        if column.max_length is not None:
            too_long = values.str.len() > column.max_length
            if too_long.any():
                _refuse(layer, too_long, _("%(column)s is longer than %(limit)s characters", column=column.name,
                                                       limit=column.max_length))
        if column.choices is not None:
            unknown = values.notna() & ~values.isin(column.choices)
            if unknown.any():
                row = _first(unknown)
                raise ImportFailed(layer.table, row + 1, _("unknown %(name)s %(value)r; expected one of %(choices)s", name=column.name, value=values.iloc[row], choices=', '.join(column.choices)))
    return values


def _texts(values: pd.Series) -> pd.Series:
    """Values as stripped strings (None where missing); whole floats lose their ``.0``."""
    present = values.notna()
    values = values.astype(object).where(present, None)
    if not present.any():
        return values
    if pd.api.types.infer_dtype(values, skipna=True) == "string":  # the common case, done fast
        return pd.Series([value if value is None else value.strip() for value in values.tolist()],
                         index=values.index, dtype=object)
    return values.map(_as_text, na_action="ignore").where(present, None)


def _booleans(layer: Layer, column: Column, values: pd.Series) -> pd.Series:
    """A boolean column: true/false in any usual spelling, the default where missing."""
    if values.dtype == bool:
        return values
    if column.default is not None and values.isna().all():  # a column the file leaves out: no per-row parsing
        return pd.Series(bool(column.default), index=values.index)
    values = values.where(values.notna(), column.default)
    if values.isna().any():
        _refuse(layer, values.isna(), _("%(column)s is required", column=column.name))
    converted = values.map(_as_bool)
    if converted.isna().any():
        _refuse(layer, converted.isna(), _("%(column)s must be true or false", column=column.name))
    return converted.astype(bool)


def _checked_geometries(layer: Layer, frame: pd.DataFrame) -> np.ndarray:
    """The layer's geometries, refused when missing, of the wrong type, invalid or not lon/lat."""
    geoms = np.asarray(frame["geometry"] if "geometry" in frame.columns else [None] * len(frame), dtype=object)
    present = ~shapely.is_missing(geoms)
    if layer.geometry_required and not present.all():
        _refuse(layer, ~present, _("geometry is missing"))
    valid_types = shapely.get_type_id(geoms) == _TYPE_IDS[layer.geometry]
    if (present & ~valid_types).any():
        row = _first(present & ~valid_types)
        raise ImportFailed(layer.table, row + 1, _("geometry must be a %(geometry)s, not a %(geom_type)s", geometry=layer.geometry, geom_type=geoms[row].geom_type))
    problems = present & ~(shapely.is_valid(geoms) & ~shapely.is_empty(geoms))
    if layer.geometry == "LineString":
        problems |= present & (shapely.get_num_points(geoms) < 2)
    if problems.any():
        row = _first(problems)
        raise ImportFailed(layer.table, row + 1, _("invalid geometry: %(reason)s", reason=shapely.is_valid_reason(geoms[row])))
    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        outside = present & ((bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90) | (bounds[:, 3] > 90))
    if outside.any():
        raise ImportFailed(layer.table, _first(outside) + 1,
                           _("coordinates are outside longitude/latitude range (SRID 4326 expected)"))
    return geoms


_TYPE_IDS = {"Point": 0, "LineString": 1, "Polygon": 3}


def _as_bool(value) -> bool | None:
    """True, False, or None for a value that is neither."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer, float, np.floating)):
        return bool(value) if value in (0, 1) else None
    text_value = str(value).strip().lower()
    return {"true": True, "t": True, "1": True, "yes": True,
            "false": False, "f": False, "0": False, "no": False}.get(text_value)


def _as_text(value) -> str:
    """A value as text; a whole float loses its ``.0`` (an account number read as a number)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _refuse(layer: Layer, mask: pd.Series, reason: str) -> None:
    """Raise ``ImportFailed`` for the first row where ``mask`` holds."""
    raise ImportFailed(layer.table, _first(mask) + 1, reason)


def _first(mask) -> int:
    """Position of the first true value."""
    return int(np.flatnonzero(np.asarray(mask))[0])


# -- insertion -----------------------------------------------------------------------------------
# A layer of this many rows or more, going into a table that holds at most ten times as many,
# loads faster without the table's secondary indexes and foreign keys, built again afterwards:
# one sort or join each instead of an index insertion and a trigger per row (50-100x here).
BULK_ROWS = 1_000
BULK_GROWTH = 10
# Fewer rows than this are left to autovacuum's ANALYZE.
ANALYZE_ROWS = 1_000
_COPY_CHUNK = 100_000
_NULL = "\\N"
_GEOD = Geod(ellps="WGS84")


def _load_layer(connection: Connection, layer: Layer, table: pd.DataFrame,
                loaded: dict[str, tuple[pd.Index, np.ndarray]], report: Progress) -> tuple[pd.Index, np.ndarray]:
    """Check ``table`` against the database, COPY it in; return its (codes, ids)."""
    # Writers wait until the import commits; readers go on reading the old network.
    connection.execute(text(f"LOCK TABLE {layer.table} IN EXCLUSIVE MODE"))
    stored = connection.execute(text(f"SELECT count(*) FROM {layer.table}")).scalar_one()
    targets = {reference.target: _resolve(connection, layer, reference, table[reference.column], loaded)
               for reference in layer.references}
    if stored:
        _refuse_stored_values(connection, layer, table, targets)
    if "from_node_id" in targets:
        loops = targets["from_node_id"] == targets["to_node_id"]
        if loops.any():
            raise ImportFailed(layer.table, _first(loops) + 1, _("from_node and to_node are the same node"))
    ids = _reserve_ids(connection, layer.table, len(table))
    bulk = len(table) >= BULK_ROWS and stored <= BULK_GROWTH * len(table)
    restore = _drop_indexes(connection, layer.table) if bulk else []
    _copy(connection, layer, table, ids, targets, report)
    if layer.table == "transformer_areas":
        _refuse_areas_of_other_devices(connection, ids)
    for statement in restore:
        connection.execute(text(statement))
    if len(table) >= ANALYZE_ROWS:
        connection.execute(text(f"ANALYZE {layer.table}"))
    return pd.Index(table["code"]), ids


def _refuse_stored_values(connection: Connection, layer: Layer, table: pd.DataFrame,
                          targets: dict[str, np.ndarray]) -> None:
    """Refuse a value of a unique column (a code, an account number, ...) that the table already holds."""
    referenced = {reference.column: reference.target for reference in layer.references}
    for column in layer.columns:
        if not column.unique:
            continue
        target = referenced.get(column.name, column.name)
        values = pd.Series(targets[target]) if target in targets else table[column.name]
        wanted = [value for value in pd.unique(values[values.notna()]).tolist() if value != -1]
        clashes = connection.execute(text(f"SELECT {target} FROM {layer.table} WHERE {target} = ANY(:values)"),
                                     {"values": wanted}).scalars().all()
        if clashes:
            row = _first(values.isin(clashes))
            raise ImportFailed(layer.table, row + 1, _("%(name)s %(value)r already exists in the database", name=column.name, value=table[column.name].iloc[row]))


def _resolve(connection: Connection, layer: Layer, reference: Reference, values: pd.Series,
             loaded: dict[str, tuple[pd.Index, np.ndarray]]) -> np.ndarray:
    """The ids the codes in ``values`` name (-1 where there is none); refuse unknown codes."""
    ids = np.full(len(values), -1, dtype=np.int64)
    present = values.notna().to_numpy()
    if not present.any():
        return ids
    codes, known = loaded.get(reference.table, (pd.Index([], dtype=object), np.array([], dtype=np.int64)))
    positions = codes.get_indexer(values)
    found = positions >= 0
    ids[found] = known[positions[found]]
    missing = present & ~found
    if missing.any():
        wanted = pd.unique(values[missing])
        stored = dict(connection.execute(text(f"SELECT code, id FROM {reference.table} WHERE code = ANY(:codes)"),
                                         {"codes": list(wanted)}).all())
        looked_up = values[missing].map(stored)
        if looked_up.isna().any():
            row = int(np.flatnonzero(missing)[_first(looked_up.isna())])
            raise ImportFailed(layer.table, row + 1,
                               _("%(column)s %(value)r is not a known %(table)s code", column=reference.column, value=values.iloc[row], table=reference.table))
        ids[missing] = looked_up.to_numpy(dtype=np.int64)
    return ids


def _refuse_areas_of_other_devices(connection: Connection, ids: np.ndarray) -> None:
    """A transformer area belongs to a transformer, not to a switch or a fuse."""
    wrong = connection.execute(text(
        "SELECT a.id, d.code, d.kind::text AS kind FROM transformer_areas a JOIN devices d ON d.id = a.transformer_id "
        "WHERE a.id BETWEEN :first AND :last AND d.kind <> 'transformer' ORDER BY a.id LIMIT 1"
    ), {"first": int(ids[0]), "last": int(ids[-1])}).first()
    if wrong:
        raise ImportFailed("transformer_areas", wrong.id - int(ids[0]) + 1,
                           _("transformer %(code)r is a %(kind)s, not a transformer", code=wrong.code, kind=wrong.kind))


def _reserve_ids(connection: Connection, table: str, count: int) -> np.ndarray:
    """``count`` consecutive ids from the table's sequence (the table is locked against writers)."""
    sequence = connection.execute(text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}).scalar_one()
    first = connection.execute(text("SELECT nextval(CAST(:sequence AS regclass))"), {"sequence": sequence}).scalar_one()
    if count > 1:
        connection.execute(text("SELECT setval(CAST(:sequence AS regclass), :last)"),
                           {"sequence": sequence, "last": first + count - 1})
    return np.arange(first, first + count, dtype=np.int64)


def _drop_indexes(connection: Connection, table: str) -> list[str]:
    """Drop ``table``'s unique and foreign-key constraints and secondary indexes; return the DDL to restore them.

    Primary keys stay (other tables' foreign keys need them) and so do check constraints
    (cheap per row). Runs in the caller's transaction: a failed load rolls the DDL back too.
    """
    constraints = connection.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) AS definition, contype FROM pg_constraint "
        "WHERE conrelid = CAST(:table AS regclass) AND contype IN ('u', 'f') ORDER BY conname"
    ), {"table": table}).all()
    indexes = connection.execute(text(
        "SELECT CAST(indexrelid AS regclass)::text AS name, pg_get_indexdef(indexrelid) AS definition "
        "FROM pg_index WHERE indrelid = CAST(:table AS regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = pg_index.indexrelid) ORDER BY 1"
    ), {"table": table}).all()
    for constraint in constraints:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint.conname}"'))
    for index in indexes:
        connection.execute(text(f"DROP INDEX {index.name}"))
    connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
    # Unique constraints first: the foreign keys of the tables loaded next need their indexes.
    return ([f'ALTER TABLE {table} ADD CONSTRAINT "{c.conname}" {c.definition}' for c in constraints if c.contype == "u"]
            + [index.definition for index in indexes]
            + [f'ALTER TABLE {table} ADD CONSTRAINT "{c.conname}" {c.definition}' for c in constraints if c.contype == "f"])


def _copy(connection: Connection, layer: Layer, table: pd.DataFrame, ids: np.ndarray,
          targets: dict[str, np.ndarray], report: Progress) -> None:
    """One COPY of the layer into its table (text format), encoded chunk by chunk.

    A queued writer sends each chunk from a thread while the next one is encoded, so that
    Python and the server work at the same time.
    """
    referenced = {reference.column: reference.target for reference in layer.references}
    names = ["id"] + [referenced.get(column.name, column.name) for column in layer.columns]
    names += ["geom"] if layer.geometry else []
    with connection.connection.driver_connection.cursor() as cursor:
        statement = f"COPY {layer.table} ({', '.join(names)}) FROM STDIN"
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for start in range(0, len(table), _COPY_CHUNK):
                part = slice(start, start + _COPY_CHUNK)
                columns = _encoded_columns(layer, table.iloc[part], ids[part],
                                           {name: values[part] for name, values in targets.items()})
                copy.write("\n".join(map("\t".join, zip(*columns))) + "\n")
                report(layer.table, len(columns[0]))


def _encoded_columns(layer: Layer, table: pd.DataFrame, ids: np.ndarray,
                     targets: dict[str, np.ndarray]) -> list[list[str]]:
    """Each column of a chunk as the strings COPY reads, in the order of ``_copy``'s names."""
    referenced = {reference.column: reference.target for reference in layer.references}
    columns = [ids.astype(str).tolist()]
    for column in layer.columns:
        if column.name in referenced:
            resolved = targets[referenced[column.name]]
            columns.append(np.where(resolved >= 0, resolved.astype(str), _NULL).tolist())
        elif column.name == "length_m":
            lengths = table["length_m"].to_numpy(dtype="float64", copy=True)
            unknown = np.isnan(lengths)
            if unknown.any():
                lengths[unknown] = _geodesic_lengths(table["geometry"].to_numpy()[unknown])
            columns.append(_encode_numbers(lengths))
        elif column.sql == "double precision":
            columns.append(_encode_numbers(table[column.name].to_numpy(dtype="float64")))
        elif column.sql == "boolean":
            columns.append(np.where(table[column.name].to_numpy(dtype=bool), "t", "f").tolist())
        else:
            columns.append(_encode_texts(table[column.name]))
    if layer.geometry:
        columns.append(_encode_geometries(layer, table["geometry"].to_numpy()))
    return columns


def _encode_numbers(values: np.ndarray) -> list[str]:
    """Shortest round-trip text of each float; each distinct value is formatted once."""
    distinct, inverse = np.unique(values, return_inverse=True)
    texts = np.array([_NULL if value != value else repr(value) for value in distinct.tolist()], dtype=object)  # NaN
    return texts[inverse.reshape(-1)].tolist()


def _encode_texts(values: pd.Series) -> list[str]:
    """Strings for COPY's text format: backslash, tab and line breaks escaped; None as ``\\N``."""
    strings = values.where(values.notna(), None)
    present = [value for value in strings.tolist() if value is not None]
    joined = "".join(present)
    if any(special in joined for special in "\\\t\n\r"):
        strings = strings.str.replace("\\", "\\\\", regex=False).str.replace("\t", "\\t", regex=False) \
            .str.replace("\n", "\\n", regex=False).str.replace("\r", "\\r", regex=False)
    return strings.where(strings.notna(), _NULL).tolist()


def _encode_geometries(layer: Layer, geoms: np.ndarray) -> list[str]:
    """Hex EWKB with SRID 4326, written by hand: shapely's own hex and SRID paths are 5-10x slower."""
    type_id = {"Point": "01", "LineString": "02", "Polygon": "03"}[layer.geometry]
    # Little-endian WKB starts 01 <type: 4 bytes>; EWKB sets the SRID flag and puts the SRID after it.
    prefix = f"01{type_id}000020E6100000"
    blobs = shapely.to_wkb(geoms, output_dimension=2, byte_order=1)
    return [_NULL if blob is None else prefix + blob.hex()[10:] for blob in blobs]


def _geodesic_lengths(geoms: np.ndarray) -> np.ndarray:
    """Lengths in metres on the WGS 84 ellipsoid, as PostGIS's ``ST_Length(geography)``."""
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    same = index[1:] == index[:-1]
    start, end = coords[:-1][same], coords[1:][same]
    _, _, distances = _GEOD.inv(start[:, 0], start[:, 1], end[:, 0], end[:, 1])
    return np.bincount(index[1:][same], weights=distances, minlength=len(geoms))

