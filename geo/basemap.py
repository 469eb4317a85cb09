"""Base maps without the internet: a local tileset file the app serves, and a light base layer
drawn from our own data, so that no map page is ever a blank background.

- ``BASEMAP_FILE`` names an MBTiles (SQLite, TMS rows) or PMTiles (v3) file of raster (png, jpg,
  webp) or vector (pbf) tiles; ``/basemap/{z}/{x}/{y}`` serves its tiles and ``/basemap/metadata``
  what the page needs to draw them.
- Without a base map, or when the tile server does not answer, the pages draw the outlines the
  packages register here (``register_outline``: the territory, transformer areas, later grid
  cells) and the street names of the address index (``/basemap/streets``). ``geo`` names no
  package's table: topology registers its outlines from its ``init_app``::

      basemap.register_outline(basemap.Outline(
          id="transformer_areas", title=_("Transformer areas"), query=areas_query,  # (bbox) -> Select
          min_zoom=14, style={"color": "#cfc6b4", "weight": 1, "fill": False}))

  An outline must be public data: anyone may read ``/basemap/outlines/<id>``.
"""
from __future__ import annotations

import json
import math
import mmap
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Protocol

from flask import Blueprint, Flask, Response, current_app, request, url_for
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from geo.auth import PUBLIC, allow
from geo.db import get_session
from geo.errors import Invalid, NotFound
from geo.geojson import GEOJSON, feature_collection, parse_bbox, parse_limit
from geo.i18n import _, translate
from geo.openapi import Answer, contract
from geo.spatial import BBox

__all__ = ["TILE_MEDIA", "TilesetInfo", "Tile", "Tileset", "MBTiles", "PMTiles", "BasemapFileError", "open_tileset",
           "tileset_of", "parse_tile_address", "read_tile", "Outline", "register_outline", "outlines",
           "StreetLabel", "street_labels", "streets_in", "page_config", "bp", "init_app"]

# The formats a tileset may hold and the media type each is served as.
TILE_MEDIA = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp",
              "pbf": "application/vnd.mapbox-vector-tile"}
_FORMAT_ALIASES = {"jpeg": "jpg", "mvt": "pbf"}
# PMTiles' tile type codes (spec v3: 1 MVT, 2 PNG, 3 JPEG, 4 WebP).
_PMTILES_TYPES = {1: "pbf", 2: "png", 3: "jpg", 4: "webp"}
MAX_ZOOM = 24
# A base map's tiles change when its file is replaced: a browser may keep one for a day.
TILE_CACHE_CONTROL = "public, max-age=86400"
GZIP_MAGIC = b"\x1f\x8b"


class BasemapFileError(ValueError):
    """BASEMAP_FILE is not a readable MBTiles or PMTiles file of a format we serve."""


@dataclass(frozen=True)
class TilesetInfo:
    """What a page needs to draw a tileset: its format, bounds (west, south, east, north),
    zoom range, attribution and name, and for vector tiles the ids of its layers."""

    format: str
    bounds: tuple[float, float, float, float] | None
    min_zoom: int
    max_zoom: int
    attribution: str = ""
    name: str = ""
    layers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bounds": list(self.bounds) if self.bounds else None, "layers": list(self.layers)}


@dataclass(frozen=True)
class Tile:
    """One tile as served: its bytes, media type and content encoding (gzip for gzipped pbf)."""

    data: bytes
    media: str
    encoding: str | None


class Tileset(Protocol):
    info: TilesetInfo

    def tile_data(self, z: int, x: int, y: int) -> bytes | None:
        """The stored bytes of tile z/x/y (XYZ numbering), None when the file has none."""


def _format(value: str | None, path: Path) -> str:
    name = _FORMAT_ALIASES.get((value or "").lower(), (value or "").lower())
    if name not in TILE_MEDIA:
        raise BasemapFileError(f"BASEMAP_FILE {path}: tile format {value!r} is not one of {', '.join(TILE_MEDIA)}")
    return name


def _vector_layers(metadata: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(layer.get("id")) for layer in metadata.get("vector_layers") or () if layer.get("id"))


class MBTiles:
    """An MBTiles file (SQLite; tile rows numbered from the south, TMS), opened read-only."""

    def __init__(self, path: Path):
        self.path = path
        with self._connect() as db:
            metadata = dict(db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = db.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
        self.info = self._info(metadata, zooms)

    def _connect(self) -> sqlite3.Connection:
        # One connection per read: SQLite opens in microseconds, and nothing is shared across threads.
        return sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)

    def _info(self, metadata: dict[str, str], zooms: tuple) -> TilesetInfo:
        bounds = tuple(float(part) for part in metadata["bounds"].split(",")) if metadata.get("bounds") else None
        extra = json.loads(metadata["json"]) if metadata.get("json") else {}
        return TilesetInfo(
            format=_format(metadata.get("format", "png"), self.path), bounds=bounds,
            min_zoom=int(metadata.get("minzoom", zooms[0] or 0)), max_zoom=int(metadata.get("maxzoom", zooms[1] or 0)),
            attribution=metadata.get("attribution", ""), name=metadata.get("name", ""), layers=_vector_layers(extra))

    def tile_data(self, z: int, x: int, y: int) -> bytes | None:
        with self._connect() as db:
            row = db.execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                             (z, x, (1 << z) - 1 - y)).fetchone()
        return bytes(row[0]) if row else None


class PMTiles:
    """A PMTiles v3 file, memory-mapped (the ``pmtiles`` package reads its directories)."""

    def __init__(self, path: Path):
        from pmtiles.reader import Reader

        self.path = path
        with path.open("rb") as file:
            self._mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self._reader = Reader(lambda offset, length: self._mapping[offset:offset + length])
        header, metadata = self._reader.header(), self._reader.metadata()
        kind = _PMTILES_TYPES.get(header["tile_type"].value)
        if kind is None:
            raise BasemapFileError(f"BASEMAP_FILE {path}: PMTiles tile type {header['tile_type'].name} is not served")
        e7 = 10_000_000
        self.info = TilesetInfo(
            format=kind, bounds=(header["min_lon_e7"] / e7, header["min_lat_e7"] / e7,
                                 header["max_lon_e7"] / e7, header["max_lat_e7"] / e7),
            min_zoom=header["min_zoom"], max_zoom=header["max_zoom"], attribution=metadata.get("attribution", ""),
            name=metadata.get("name", ""), layers=_vector_layers(metadata))

    def tile_data(self, z: int, x: int, y: int) -> bytes | None:
        data = self._reader.get(z, x, y)
        return bytes(data) if data is not None else None


def open_tileset(path: str | Path) -> Tileset:
    """The tileset in ``path``, MBTiles or PMTiles by its first bytes; BasemapFileError otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            magic = file.read(16)
        if magic.startswith(b"PMTiles"):
            return PMTiles(path)
        if magic.startswith(b"SQLite format 3\x00"):
            return MBTiles(path)
    except (OSError, sqlite3.Error, KeyError, ValueError) as error:
        if isinstance(error, BasemapFileError):
            raise
        raise BasemapFileError(f"BASEMAP_FILE {path} cannot be read: {error}") from error
    raise BasemapFileError(f"BASEMAP_FILE {path} is neither an MBTiles nor a PMTiles file")


# (path, modification time, size) -> its tileset: a replaced file is opened anew.
_TILESETS: dict[tuple[str, int, int], Tileset] = {}
_TILESETS_LOCK = threading.Lock()


def tileset_of(path: str | None) -> Tileset | None:
    """The tileset of ``BASEMAP_FILE`` (None when unset), opened once per version of the file."""
    if not path:
        return None
    try:
        stat = Path(path).stat()
    except OSError as error:
        raise BasemapFileError(f"BASEMAP_FILE {path} cannot be read: {error}") from error
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _TILESETS_LOCK:
        if key not in _TILESETS:
            _TILESETS.clear()
            _TILESETS[key] = open_tileset(path)
        return _TILESETS[key]


def parse_tile_address(z: str, x: str, y: str) -> tuple[int, int, int]:
    """A tile's z/x/y from the path; ``Invalid`` unless 0 <= z <= 24 and 0 <= x, y < 2**z.

    >>> parse_tile_address("3", "4", "5"), parse_tile_address("0", "0", "0.png")
    ((3, 4, 5), (0, 0, 0))
    """
    y = y.rsplit(".", 1)[0] if "." in y else y  # a template may name the extension: /basemap/{z}/{x}/{y}.png
    try:
        zoom, column, row = int(z), int(x), int(y)
    except ValueError:
        raise Invalid(_("a tile address is three whole numbers z/x/y; got %(address)r", address=f"{z}/{x}/{y}"),
                      field="z/x/y") from None
    if not 0 <= zoom <= MAX_ZOOM:
        raise Invalid(_("zoom must be between 0 and %(max)s; got %(zoom)s", max=MAX_ZOOM, zoom=zoom), field="z")
    if not (0 <= column < 1 << zoom and 0 <= row < 1 << zoom):
        raise Invalid(_("tile %(address)s is outside the world at zoom %(zoom)s", address=f"{column}/{row}", zoom=zoom),
                      field="x/y")
    return zoom, column, row


def read_tile(tileset: Tileset, z: int, x: int, y: int) -> Tile:
    """Tile z/x/y of ``tileset`` as served; ``NotFound`` when the file has none."""
    data = tileset.tile_data(z, x, y)
    if data is None:
        raise NotFound(_("the base map has no tile %(address)s", address=f"{z}/{x}/{y}"))
    kind = tileset.info.format
    # Vector tiles are usually stored gzipped: the browser unpacks them (Content-Encoding).
    encoding = "gzip" if kind == "pbf" and data[:2] == GZIP_MAGIC else None
    return Tile(data, TILE_MEDIA[kind], encoding)


# -- the light base layer from our own data ----------------------------------------------------------
@dataclass(frozen=True)
class Outline:
    """An outline layer of the light base map: ``query(bbox)`` selects ``id``, ``geom`` (SRID 4326)
    and properties, like the OGC collections; ``min_zoom`` is the zoom it shows from; ``style`` is
    Leaflet path options. With ``version`` (connection -> anything hashable), the layer is the
    whole territory at once, computed once per version (for a hull over many rows)."""

    id: str
    title: str
    query: Callable[[BBox | None], Select]
    min_zoom: int = 0
    style: dict[str, Any] = field(default_factory=dict)
    version: Callable[[Connection], Hashable] | None = None


_OUTLINES: dict[str, Outline] = {}


def register_outline(outline: Outline) -> None:
    """Draw ``outline`` on the light base map (an id registered again is replaced), in
    registration order, the first one lowest."""
    _OUTLINES[outline.id] = outline


def outlines() -> list[Outline]:
    """Every registered outline, lowest first."""
    return list(_OUTLINES.values())


# (database, outline, version) -> its features as GeoJSON text; a few are kept.
_WHOLE: dict[tuple, str] = {}
_WHOLE_KEPT = 8


def outline_json(connection: Connection, outline: Outline, bbox: BBox | None, limit: int) -> str:
    """The outline's features in ``bbox`` as a FeatureCollection's JSON text (the whole layer,
    cached per version, for an outline with a ``version``)."""
    if outline.version is None:
        return feature_collection(connection, outline.query(bbox), limit).to_json()
    key = (str(connection.engine.url), outline.id, outline.version(connection))
    if key not in _WHOLE:
        while len(_WHOLE) >= _WHOLE_KEPT:
            _WHOLE.pop(next(iter(_WHOLE)))
        _WHOLE[key] = feature_collection(connection, outline.query(None), limit).to_json()
    return _WHOLE[key]


@dataclass(frozen=True)
class StreetLabel:
    """Where to write a street's name: a point on it (the centre of its addresses, rounded to
    about 10 m), the angle of its run (degrees counter-clockwise from east), its length in metres,
    and for a straight street the two ends of its axis ((lon, lat) pairs), else None."""

    name: str
    lon: float
    lat: float
    angle: float
    length_m: float
    axis: tuple[tuple[float, float], tuple[float, float]] | None

    def feature(self) -> dict[str, Any]:
        return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [self.lon, self.lat]},
                "properties": {"name": self.name, "angle": self.angle, "length_m": self.length_m,
                               "axis": [list(end) for end in self.axis] if self.axis else None}}


# A street's addresses farther apart than this (degrees, about 330 m north-south) are two stretches
# of it, or two streets of one name in two towns; a stretch needs this many addresses to be
# labelled, so that no label stands for one or two houses.
STREET_GAP_DEG = 0.003
STREET_MIN_ADDRESSES = 3
# A stretch is drawn as a line when its addresses lie along one: across it they spread at most this
# (standard deviation, metres; a row of houses each side of a street spreads about 20 m) and along it
# at least three times as much.
STRAIGHT_SPREAD_M, STRAIGHT_RATIO = 35.0, 3.0
METRES_PER_DEGREE = 111_320.0
# Once per change of the address index (or this long at most: a moved address changes no count).
STREETS_TTL_S = 600.0

# Every stretch of every street, from every indexed address (the SQL function address_street of
# migration 0005 reads the street of an address); a few thousand rows from a million addresses.
_STRETCHES = text("""
WITH stretches AS (
    SELECT address_street(address) AS street, geom,
           ST_ClusterDBSCAN(geom, eps => :gap, minpoints => :least)
               OVER (PARTITION BY address_street(address)) AS stretch
      FROM addresses)
SELECT street, count(*) AS addresses, avg(ST_X(geom)) AS lon, avg(ST_Y(geom)) AS lat,
       var_pop(ST_X(geom)) AS var_lon, var_pop(ST_Y(geom)) AS var_lat,
       covar_pop(ST_X(geom), ST_Y(geom)) AS covar
  FROM stretches
 WHERE street IS NOT NULL AND stretch IS NOT NULL
 GROUP BY street, stretch
HAVING count(*) >= :least
 ORDER BY street, lon""")
# The street names and their address counts, as one digest (a few thousand rows: milliseconds).
_STREETS_VERSION = text("SELECT md5(string_agg(street || ':' || addresses, ',' ORDER BY street)) FROM address_streets")


def _label(street: str, lon: float, lat: float, var_lon: float, var_lat: float, covar: float) -> StreetLabel:
    """A stretch's label from the spread of its addresses: the main axis of their covariance in
    metres gives the angle, the spread along it the length (a uniform run of length L spreads
    L / sqrt(12)).

    >>> label = _label("Hauptstraße", 8.4, 49.0, (200 / 73_034) ** 2, (10 / 111_320) ** 2, 0.0)
    >>> label.angle, round(label.length_m), label.axis is not None
    (0.0, 693, True)
    """
    scale = math.cos(math.radians(lat)) * METRES_PER_DEGREE
    xx, yy, xy = var_lon * scale ** 2, var_lat * METRES_PER_DEGREE ** 2, covar * scale * METRES_PER_DEGREE
    half_gap = math.hypot((xx - yy) / 2, xy)
    along, across = (xx + yy) / 2 + half_gap, max((xx + yy) / 2 - half_gap, 0.0)
    theta = 0.5 * math.atan2(2 * xy, xx - yy)
    spread_along, spread_across = math.sqrt(along), math.sqrt(across)
    axis = None
    if spread_across <= STRAIGHT_SPREAD_M and spread_along >= STRAIGHT_RATIO * spread_across:
        half = math.sqrt(3) * spread_along  # half the length of a uniform run
        dlon, dlat = half * math.cos(theta) / scale, half * math.sin(theta) / METRES_PER_DEGREE
        axis = ((round(lon - dlon, 5), round(lat - dlat, 5)), (round(lon + dlon, 5), round(lat + dlat, 5)))
    return StreetLabel(street, round(lon, 4), round(lat, 4), round(math.degrees(theta), 1) + 0.0,
                       round(math.sqrt(12) * spread_along, 1), axis)


# database -> (version, when computed, labels); one computation at a time in a process.
_STREETS: dict[str, tuple[Hashable, float, list[StreetLabel]]] = {}
_STREETS_LOCK = threading.Lock()


def street_labels(connection: Connection) -> list[StreetLabel]:
    """A label for every stretch of street with at least ``STREET_MIN_ADDRESSES`` addresses;
    computed once per change of the address index and process (0.1 s at 20,000 addresses, about
    12 s at a million: every address's street is parsed; requests meanwhile wait for that one)."""
    database = str(connection.engine.url)
    version = connection.execute(_STREETS_VERSION).scalar_one()

    def cached() -> list[StreetLabel] | None:
        kept = _STREETS.get(database)
        fresh = kept and kept[0] == version and time.monotonic() - kept[1] < STREETS_TTL_S
        return kept[2] if fresh else None

    with _STREETS_LOCK:
        labels = cached()
        if labels is None:
            rows = connection.execute(_STRETCHES, {"gap": STREET_GAP_DEG, "least": STREET_MIN_ADDRESSES}).all()
            labels = [_label(row.street, row.lon, row.lat, row.var_lon, row.var_lat, row.covar) for row in rows]
            _STREETS[database] = (version, time.monotonic(), labels)
        return labels


def streets_in(labels: list[StreetLabel], bbox: BBox | None, limit: int) -> dict[str, Any]:
    """The labels whose point or axis lies in ``bbox`` (all without one), longest first, at most
    ``limit``, as a FeatureCollection."""
    def inside(lon: float, lat: float) -> bool:
        return bbox.west <= lon <= bbox.east and bbox.south <= lat <= bbox.north

    found = [label for label in labels
             if bbox is None or inside(label.lon, label.lat) or any(inside(*end) for end in label.axis or ())]
    found.sort(key=lambda label: -label.length_m)
    return {"type": "FeatureCollection", "features": [label.feature() for label in found[:limit]],
            "numberReturned": min(len(found), limit), "truncated": len(found) > limit}


# -- what a map page gets ---------------------------------------------------------------------------
# Without a tile for this long after the base map was added, a page draws the light base layer
# instead; so it does after this many failed tiles and none loaded.
WATCHDOG_MS = 4000
WATCHDOG_ERRORS = 6


def page_config() -> dict[str, Any]:
    """The base map of a map page, for static/js/basemap.js: the local file's tiles (``file``),
    an XYZ tile server (``url``, falling back to ``own`` when it fails) or our own data (``own``)."""
    config = current_app.config
    tileset = tileset_of(config.get("BASEMAP_FILE"))
    url = config.get("BASEMAP_URL") or "none"
    own = {
        "streets": url_for("basemap.streets"),
        "outlines": [{"id": o.id, "title": translate(o.title), "minZoom": o.min_zoom, "style": o.style,
                      "whole": o.version is not None, "url": url_for("basemap.outline", layer=o.id)}
                     for o in outlines()],
    }
    answer: dict[str, Any] = {"own": own, "watchdogMs": WATCHDOG_MS, "watchdogErrors": WATCHDOG_ERRORS}
    if tileset is not None:
        tiles = url_for("basemap.tile", z="0", x="0", y="0").removesuffix("0/0/0") + "{z}/{x}/{y}"
        return {**answer, "mode": "file", "file": {**tileset.info.as_dict(), "url": tiles}}
    if url.lower() != "none":
        return {**answer, "mode": "url", "url": url, "attribution": config.get("BASEMAP_ATTRIBUTION", "")}
    return {**answer, "mode": "own"}


# -- the routes -------------------------------------------------------------------------------------
bp = Blueprint("basemap", __name__, url_prefix="/basemap")


class TilePath(BaseModel):
    z: str = Field(description=f"zoom, 0 to {MAX_ZOOM}")
    x: str = Field(description="column, 0 to 2^z - 1, from the west")
    y: str = Field(description="row, 0 to 2^z - 1, from the north (XYZ; an extension such as .png is ignored)")


class BasemapMetadata(BaseModel):
    """The local base map: format (png, jpg, webp or pbf), bounds, zoom range, attribution, name
    and, for vector tiles, its layers' ids."""

    format: str
    bounds: list[float] | None
    min_zoom: int
    max_zoom: int
    attribution: str
    name: str
    layers: list[str]


class BboxQuery(BaseModel):
    bbox: str | None = Field(None, description="west,south,east,north in degrees")
    limit: int | None = Field(None, ge=1, description="at most this many features")


class OutlinePath(BaseModel):
    layer: str = Field(description="an outline's id, as the map pages' base-map configuration lists them")


def _configured_tileset() -> Tileset:
    tileset = tileset_of(current_app.config.get("BASEMAP_FILE"))
    if tileset is None:
        raise NotFound(_("no base map file is configured (BASEMAP_FILE)"))
    return tileset


@bp.get("/<z>/<x>/<y>")
@allow(PUBLIC)
@contract(path=TilePath, responses={200: Answer({media: None for media in TILE_MEDIA.values()},
                                                headers={"Cache-Control": "how long a browser may keep the tile"})},
          errors=(400, 404))
def tile(z: str, x: str, y: str):
    """One tile of the local base map (BASEMAP_FILE); 404 where the file has none."""
    address = parse_tile_address(z, x, y)
    found = read_tile(_configured_tileset(), *address)
    response = Response(found.data, mimetype=found.media)
    if found.encoding:
        response.headers["Content-Encoding"] = found.encoding
    response.headers["Cache-Control"] = TILE_CACHE_CONTROL
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/metadata")
@allow(PUBLIC)
@contract(responses={200: BasemapMetadata}, errors=(404,))
def metadata():
    """The local base map's format, bounds, zoom range, attribution and layers; 404 without one."""
    return _configured_tileset().info.as_dict()


@bp.get("/streets")
@allow(PUBLIC)
@contract(query=BboxQuery, responses={200: Answer(GEOJSON, None)}, errors=(400,))
def streets():
    """Street names and where to write them (points, angles, lengths), from the address index:
    never an address, a customer or a house's own point."""
    bbox = parse_bbox(request.args.get("bbox"))
    limit = parse_limit(request.args.get("limit"), current_app.config["API_MAX_FEATURES"])
    labels = street_labels(get_session().connection())
    response = current_app.json.response(streets_in(labels, bbox, limit))
    response.mimetype = GEOJSON
    return response


@bp.get("/outlines/<layer>")
@allow(PUBLIC)
@contract(path=OutlinePath, query=BboxQuery, responses={200: Answer(GEOJSON, None)}, errors=(400, 404))
def outline(layer: str):
    """The features of one outline of the light base map in ``bbox`` (the territory, transformer areas, ...)."""
    found = _OUTLINES.get(layer)
    if found is None:
        raise NotFound(_("there is no base-map outline %(layer)r; there are: %(layers)s", layer=layer,
                         layers=", ".join(_OUTLINES)))
    bbox = parse_bbox(request.args.get("bbox"))
    limit = parse_limit(request.args.get("limit"), current_app.config["API_MAX_FEATURES"])
    return Response(outline_json(get_session().connection(), found, bbox, limit), mimetype=GEOJSON)


def init_app(app: Flask) -> None:
    """Serve the base-map routes; refuse to start with a BASEMAP_FILE that cannot be served."""
    tileset_of(app.config.get("BASEMAP_FILE"))
    app.register_blueprint(bp)
