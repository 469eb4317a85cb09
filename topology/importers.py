"""The network file format (docs/data-format.md): GeoPackage and GeoJSON in, GeoPackage out; pandapower in.

``read_network_file`` and ``read_pandapower_json`` turn a file into ``NetworkFrames``;
``topology.loader.load_network`` validates and stores them. ``export_network`` writes the stored
network back in the same layout, so that export -> import -> export gives the same file content.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

from geo.i18n import _
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from sqlalchemy.engine import Connection

from geo.errors import ImportFailed, Unprocessable
from topology.loader import LAYERS, Layer, NetworkFrames, empty_frames, normalise_layer

__all__ = ["read_network_file", "write_network_file", "export_network", "read_pandapower_json"]

Say = Callable[[str], None]
# Layers some tools add to a GeoPackage on their own (QGIS saves its styles there); skipped.
IGNORED_LAYERS = frozenset({"layer_styles"})
WGS84 = "EPSG:4326"


def _quiet(_message: str) -> None:
    """Say nothing."""


# -- reading ------------------------------------------------------------------------------------
def read_network_file(path: str | Path, progress: Say | None = None) -> NetworkFrames:
    """Read a GeoPackage (``.gpkg``) or a GeoJSON FeatureCollection (``.geojson``, ``.json``).

    Geometries come back in EPSG:4326 whatever the file's CRS. Raises ``ImportFailed`` naming the
    layer and row (row 0: the layer as a whole) for unknown layers and missing required
    columns; the values themselves are checked by ``load_network``.
    """
    path = Path(path)
    say = progress or _quiet
    suffix = path.suffix.lower()
    if suffix == ".gpkg":
        return _read_geopackage(path, say)
    if suffix in (".geojson", ".json"):
        return _read_geojson(path, say)
    raise ImportFailed("file", 0, _("%(name)s is neither a GeoPackage (.gpkg) nor GeoJSON (.geojson, .json)", name=path.name))


def _check_layer_names(names: list[str]) -> None:
    """Refuse a layer this layout does not have, or a file with none of its layers."""
    for name in names:
        if name not in LAYERS and name not in IGNORED_LAYERS:
            raise ImportFailed(name, 0, _("unknown layer; expected some of %(layers)s", layers=', '.join(LAYERS)))
    if not set(names) & set(LAYERS):
        raise ImportFailed("file", 0, _("no network layer found; expected some of %(layers)s", layers=', '.join(LAYERS)))


def _check_columns(layer: Layer, present) -> list[str]:
    """The layer's columns the file has; refuse when a required one is missing."""
    present = set(present)
    for column in layer.columns:
        if column.required and column.name not in present:
            raise ImportFailed(layer.table, 0, _("required column %(name)r is missing", name=column.name))
    return [name for name in layer.column_names if name in present]


def _read_geopackage(path: Path, say: Say) -> NetworkFrames:
    """Each known layer of the GeoPackage, only the columns the layout knows, through Arrow."""
    try:
        listed = pyogrio.list_layers(path)
    except pyogrio.errors.DataSourceError as error:
        raise ImportFailed("file", 0, _("%(name)s cannot be read as a GeoPackage (%(error)s)", name=path.name, error=error)) from None
    names = [str(name) for name, _ in listed]
    _check_layer_names(names)
    frames = empty_frames()
    for name, layer in LAYERS.items():
        if name not in names:
            continue
        info = pyogrio.read_info(path, layer=name)
        columns = _check_columns(layer, info["fields"])
        say(f"reading {name}: {info['features']:,} rows")
        frame = pyogrio.read_dataframe(path, layer=name, columns=columns, use_arrow=True,
                                       read_geometry=layer.geometry is not None)
        setattr(frames, name, _plain_frame(layer, frame, columns))
    return frames


def _plain_frame(layer: Layer, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Attributes plus a ``geometry`` column of shapely objects in EPSG:4326."""
    out = pd.DataFrame({name: frame[name].to_numpy() for name in columns}, index=pd.RangeIndex(len(frame)))
    if layer.geometry is None:
        return out
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        series = frame.geometry
        if series.crs is not None and not series.crs.equals(WGS84):
            series = series.to_crs(WGS84)
        geoms = np.asarray(series.array, dtype=object)
    else:
        geoms = np.full(len(frame), None, dtype=object)
    out["geometry"] = _single_parts(geoms)
    return out


def _single_parts(geoms: np.ndarray) -> np.ndarray:
    """Multi-geometries of one part (as GIS tools often save lines) become that part."""
    multi = np.isin(shapely.get_type_id(geoms), (4, 5, 6)) & (shapely.get_num_geometries(geoms) == 1)
    if multi.any():
        geoms = geoms.copy()
        geoms[multi] = shapely.get_geometry(geoms[multi], 0)
    return geoms


def _read_geojson(path: Path, say: Say) -> NetworkFrames:
    """One FeatureCollection; each feature's ``layer`` property says which layer it belongs to."""
    say(f"reading {path.name}")
    try:
        with path.open("rb") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as error:
        raise ImportFailed("file", 0, _("%(name)s is not JSON (%(error)s)", name=path.name, error=error)) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise ImportFailed("file", 0, _("expected a GeoJSON FeatureCollection"))
    properties: dict[str, list[dict]] = {}
    geometries: dict[str, list[str | None]] = {}
    for position, feature in enumerate(document.get("features") or [], start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        name = props.get("layer") if isinstance(props, dict) else None
        if not isinstance(name, str):
            raise ImportFailed("features", position, _("feature has no 'layer' property"))
        properties.setdefault(name, []).append(props)
        geometry = feature.get("geometry")
        geometries.setdefault(name, []).append(json.dumps(geometry) if geometry else None)
    _check_layer_names(list(properties))
    crs = _legacy_crs(document)
    frames = empty_frames()
    for name, layer in LAYERS.items():
        if name not in properties:
            continue
        say(f"reading {name}: {len(properties[name]):,} rows")
        frame = pd.DataFrame.from_records(properties[name])
        columns = _check_columns(layer, frame.columns)
        frame = frame.astype(object).where(frame.notna(), None)
        out = pd.DataFrame({column: frame[column].to_numpy() for column in columns}, index=pd.RangeIndex(len(frame)))
        if layer.geometry:
            texts = np.array(geometries[name], dtype=object)
            geoms = shapely.from_geojson(texts, on_invalid="ignore")
            unreadable = np.flatnonzero(np.not_equal(texts, None) & shapely.is_missing(geoms))
            if len(unreadable):
                raise ImportFailed(name, int(unreadable[0]) + 1, _("geometry is not valid GeoJSON"))
            if crs is not None:
                geoms = np.asarray(gpd.GeoSeries(geoms, crs=crs).to_crs(WGS84).array, dtype=object)
            out["geometry"] = _single_parts(geoms)
        setattr(frames, name, out)
    return frames


def _legacy_crs(document: dict) -> str | None:
    """The CRS a pre-RFC 7946 ``crs`` member names, if any (RFC 7946 GeoJSON is always WGS 84)."""
    crs = document.get("crs")
    if not isinstance(crs, dict):
        return None
    name = (crs.get("properties") or {}).get("name")
    if not isinstance(name, str):
        raise ImportFailed("file", 0, _("the 'crs' member names no coordinate reference system"))
    try:
        from pyproj import CRS

        return None if CRS.from_user_input(name).equals(WGS84) else name
    except Exception:  # pyproj raises its own CRSError and others on junk
        raise ImportFailed("file", 0, _("unknown coordinate reference system %(name)r", name=name)) from None


# -- writing ------------------------------------------------------------------------------------
def write_network_file(frames: NetworkFrames, path: str | Path, progress: Say | None = None) -> dict[str, int]:
    """Write ``frames`` as a GeoPackage in the import layout (every layer, even empty); return row counts.

    The values are checked as on import (``ImportFailed`` for a bad row), so what is written can
    be imported again. An existing file at ``path`` is replaced.
    """
    path = Path(path)
    say = progress or _quiet
    path.unlink(missing_ok=True)
    counts = {}
    for name, frame in frames.items():
        layer = LAYERS[name]
        say(f"writing {name}: {len(frame):,} rows")
        table = normalise_layer(name, frame)
        for column in layer.columns:
            if column.sql == "text":
                # A column with no value at all would otherwise be guessed as something else.
                table[column.name] = table[column.name].astype(object)
        if layer.geometry:
            data = gpd.GeoDataFrame(table.drop(columns="geometry"), geometry=gpd.GeoSeries(table["geometry"]),
                                    crs=WGS84)
            pyogrio.write_dataframe(data, path, layer=name, driver="GPKG", geometry_type=layer.geometry,
                                    promote_to_multi=False, use_arrow=True)
        else:
            pyogrio.write_dataframe(table, path, layer=name, driver="GPKG", use_arrow=True)
        counts[name] = len(table)
    return counts


def export_network(connection: Connection, path: str | Path, progress: Say | None = None) -> dict[str, int]:
    """Write the network stored behind ``connection`` to a GeoPackage; return row counts.

    One COPY per table (elements refer to each other by code, joined in SQL), in id order, so
    the file lists elements in the order they were imported.
    """
    say = progress or _quiet
    frames = NetworkFrames()
    for name, layer in LAYERS.items():
        say(f"reading {name} from the database")
        setattr(frames, name, _read_table(connection, layer))
    return write_network_file(frames, path, progress)


_NULL = r"\N"


def _read_table(connection: Connection, layer: Layer) -> pd.DataFrame:
    """One layer's rows from the database, codes in place of ids, as the reader would give them."""
    referenced = {reference.column: reference for reference in layer.references}
    selected, joins = [], []
    for position, column in enumerate(layer.columns):
        if column.name in referenced:
            reference = referenced[column.name]
            joins.append(f"LEFT JOIN {reference.table} r{position} ON r{position}.id = t.{reference.target}")
            selected.append(f"r{position}.code")
        else:
            selected.append(f"t.{column.name}")
    names = layer.column_names
    if layer.geometry:
        selected.append("encode(ST_AsBinary(t.geom), 'hex')")
        names = names + ["geometry"]
    query = f"SELECT {', '.join(selected)} FROM {layer.table} t {' '.join(joins)} ORDER BY t.id"
    buffer = io.BytesIO()
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, NULL '{_NULL}')") as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    dtypes = {column.name: "float64" if column.sql == "double precision" else str for column in layer.columns}
    frame = pd.read_csv(buffer, header=None, names=names, dtype={**dtypes, "geometry": str},
                        na_values=[_NULL], keep_default_na=False)
    for column in layer.columns:
        values = frame[column.name]
        if column.sql == "boolean":
            frame[column.name] = values.map({"t": True, "f": False})
        elif column.sql == "text":
            frame[column.name] = values.astype(object).where(values.notna(), None)
    if layer.geometry:
        frame["geometry"] = shapely.from_wkb(frame["geometry"].astype(object).where(frame["geometry"].notna(), None)
                                             .to_numpy())
    return frame


# -- pandapower ---------------------------------------------------------------------------------
PANDAPOWER_MISSING = _("pandapower is not installed; install the extra with: pip install 'gridatlas[pandapower]'")


def read_pandapower_json(path: str | Path, progress: Say | None = None,
                         origin: tuple[float, float] | None = None) -> NetworkFrames:
    """Read a pandapower net saved with ``pandapower.to_json`` (mapping: docs/data-format.md).

    A net whose buses lack coordinates is laid out schematically around ``origin`` (lon, lat)
    and its rows are marked ``schematic``; without an origin it is refused.
    Raises ``Unprocessable`` when pandapower is not installed and ``ImportFailed`` naming
    the pandapower table and index of an element that cannot be mapped.
    """
    say = progress or _quiet
    try:
        import pandapower
    except ImportError:
        raise Unprocessable(PANDAPOWER_MISSING) from None
    from topology.pandapower_mapping import frames_from_net

    say(f"reading pandapower net {Path(path).name}")
    try:
        net = pandapower.from_json(str(path))
    except Exception as error:  # from_json raises whatever its parsers raise on a foreign file
        raise ImportFailed("file", 0, _("not a pandapower net saved with to_json (%(name)s: %(error)s)", name=type(error).__name__, error=error)) \
            from None
    say("mapping buses, lines, switches, transformers, sources and loads")
    return frames_from_net(net, origin)
