"""Mapbox vector tiles built by PostGIS (``ST_AsMVT``) under ``/tiles``: the registry the packages
fill with their tile layers, and the routes that serve them.

A package registers each layer once, from its ``init_app``, as it registers its OGC API
collections (geo/features.py)::

    tiles.register(tiles.TileLayer(
        id="segments", title="Line segments", description="...", roles=frozenset({PUBLIC}),
        query=segments_in_tile,        # (Tile) -> Select of geom (SRID 4326) and properties, or None
        version=network_version,       # (connection) -> text that changes whenever the layer's data does
        min_zoom=10))

and this module does the rest: ``/tiles`` (the layers the caller may read, with their zooms),
and ``/tiles/<layer>/<z>/<x>/<y>.mvt``, one tile of one layer in Web Mercator (EPSG:3857, the
XYZ scheme of OpenStreetMap and Leaflet). The query gets the tile with its box in degrees
(widened by the tile's buffer), so it filters with the tables' own GiST indexes on SRID 4326;
here each geometry is transformed to 3857 and clipped to the tile by ``ST_AsMVTGeom``.

Every answer carries an ETag made of the layer's version (a network layer follows the
topology version, which every import and switching operation bumps) and, for a layer with
customers' data, the caller's control zone; ``If-None-Match`` with it answers 304 without
building the tile. ``Cache-Control: no-cache`` makes clients ask again each time, so that a
switching operation shows on the next draw. Each process keeps the tiles it built lately by
that ETag (``TILE_CACHE_MB``): a tile of the whole city far out is asked by every map that
opens, and is built once per version. ``geo`` knows no package: it never names a layer.
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, NamedTuple

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from pydantic import BaseModel, Field
from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from geo.auth import PUBLIC, Principal, allow, control_feeders, current_principal, require_role
from geo.db import get_session
from geo.errors import Invalid, NotFound
from geo.features import may_read
from geo.geojson import interactive_settings
from geo.i18n import _
from geo.openapi import Answer, contract
from geo.spatial import BBox, envelope

__all__ = ["MVT", "EXTENT", "BUFFER", "MAX_ZOOM", "Tile", "TileLayer", "TileCache", "register", "registered",
           "readable", "tile_of", "tile_etag", "tile_bytes", "tile_url_template", "init_app", "bp"]

MVT = "application/vnd.mapbox-vector-tile"
# Tile coordinates run 0..4096 (the MVT default); 64 units of buffer around the tile keep a
# line's stroke and a symbol whole where they cross a tile's edge.
EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 24  # about 2 cm a tile unit at the equator: nothing of ours is finer
WEB_MERCATOR = 3857
MERCATOR_HALF = 20037508.342789244  # half the width of the Web Mercator square, in metres
# The ETag's scheme: bumped when a layer's tiles change shape for the same data (new properties).
SCHEME = "1"


class Tile(NamedTuple):
    """One tile of the XYZ scheme: zoom ``z``, column ``x`` from the west, row ``y`` from the north."""

    z: int
    x: int
    y: int

    def bbox(self, buffer: float = BUFFER / EXTENT) -> BBox:
        """The tile's box in degrees, widened by ``buffer`` (a fraction of the tile) on every side.

        >>> Tile(0, 0, 0).bbox(0)
        BBox(west=-180.0, south=-85.0511287798066, east=180.0, north=85.0511287798066)
        """
        size = 2 ** self.z
        west, east = self.x / size * 360 - 180, (self.x + 1) / size * 360 - 180
        north, south = _latitude(self.y / size), _latitude((self.y + 1) / size)
        margin_x, margin_y = (east - west) * buffer, (north - south) * buffer
        return BBox(max(west - margin_x, -180.0), max(south - margin_y, -90.0), min(east + margin_x, 180.0),
                    min(north + margin_y, 90.0))

    def holds(self, geom: ColumnElement) -> ColumnElement:
        """``geom && box``: the geometry's box meets the tile's box (with its buffer) in degrees.
        The GiST index answers it alone; ``ST_AsMVTGeom`` drops what lies outside, so the exact
        ``ST_Intersects`` would only cost more (about 4 ms a zoom-14 tile of 3,000 segments)."""
        return geom.op("&&")(envelope(self.bbox()))

    def envelope(self, buffer: float = BUFFER / EXTENT) -> ColumnElement:
        """The tile's box in Web Mercator (``ST_TileEnvelope``) widened by ``buffer``, for a
        table kept in SRID 3857."""
        return func.ST_TileEnvelope(self.z, self.x, self.y, func.ST_MakeEnvelope(
            -MERCATOR_HALF, -MERCATOR_HALF, MERCATOR_HALF, MERCATOR_HALF, WEB_MERCATOR), buffer)


def _latitude(fraction: float) -> float:
    """The latitude of a Web Mercator row at ``fraction`` of the map's height from the north."""
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * fraction))))


@dataclass(frozen=True)
class TileLayer:
    """One tile layer: who may read it (``PUBLIC`` or roles); the query of its features in a tile
    (a geometry column ``geom`` in SRID 4326 or 3857, then the properties; None: nothing at this
    zoom), given the request's connection for what it must read first; what its ETag follows;
    the zooms it has features at (outside them its tiles are empty); and what to bring up to
    date before a tile is built (derived data the query reads; committed before the tile)."""

    id: str
    title: str
    description: str
    roles: frozenset[str]
    query: Callable[[Connection, Tile], Select | None]
    version: Callable[[Connection], str]
    min_zoom: int = 0
    max_zoom: int = MAX_ZOOM
    prepare: Callable[[Connection], None] | None = None


_LAYERS: dict[str, TileLayer] = {}


def register(layer: TileLayer) -> None:
    """Serve ``layer`` (registering an id again replaces it: each app's init_app registers)."""
    _LAYERS[layer.id] = layer


def registered() -> list[TileLayer]:
    """Every registered layer, in registration order."""
    return list(_LAYERS.values())


def readable(principal: Principal | None) -> list[TileLayer]:
    """The layers ``principal`` may read: the others are not even listed."""
    return [layer for layer in registered() if may_read(layer, principal)]


def tile_of(z: int, x: int, y: int) -> Tile:
    """The tile ``z/x/y``: Invalid for a zoom past ``MAX_ZOOM``, NotFound for a column or row
    the zoom has not.

    >>> tile_of(2, 3, 1)
    Tile(z=2, x=3, y=1)
    """
    if z > MAX_ZOOM:
        raise Invalid(_("zoom must be at most %(max)s; got %(zoom)s", max=MAX_ZOOM, zoom=z), field="z")
    size = 2 ** z
    if x >= size or y >= size:
        raise NotFound(_("zoom %(zoom)s has tiles 0 to %(last)s in x and y; got %(x)s/%(y)s", zoom=z, last=size - 1,
                         x=x, y=y))
    return Tile(z, x, y)


def tile_etag(connection: Connection, layer: TileLayer, zone: frozenset[str] | None) -> str:
    """The ETag of the layer's tiles for a caller held to ``zone`` (None: everywhere): it
    changes when the layer's data does, and differs between zones (a zone sees less)."""
    key = "|".join((SCHEME, layer.id, layer.version(connection), ",".join(sorted(zone)) if zone is not None else "*"))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def tile_bytes(connection: Connection, layer: TileLayer, tile: Tile) -> bytes:
    """The tile as MVT bytes: one layer named like ``layer``, its features clipped to the tile
    and its buffer in tile units (0..4096, y down); empty outside the layer's zooms.

    Notes
    -----
    ``ST_AsMVTGeom`` drops what collapses below one tile unit and returns NULL outside the
    tile; those rows are left out before ``ST_AsMVT``, which would otherwise count them.
    """
    if not layer.min_zoom <= tile.z <= layer.max_zoom:
        return b""
    interactive_settings(connection)
    query = layer.query(connection, tile)
    if query is None:
        return b""
    features = query.subquery("features")
    envelope = func.ST_TileEnvelope(tile.z, tile.x, tile.y)
    geom = func.ST_AsMVTGeom(func.ST_Transform(features.c.geom, WEB_MERCATOR), envelope, EXTENT, BUFFER, True)
    shaped = (select(geom.label("geom"), *[column for column in features.c if column.key != "geom"])
              .subquery("shaped"))
    rows = select(shaped).where(shaped.c.geom.is_not(None)).subquery("mvt")
    built = connection.execute(
        select(func.ST_AsMVT(literal_column("mvt"), layer.id, EXTENT, "geom")).select_from(rows)).scalar_one()
    return bytes(built or b"")


class TileCache:
    """Tiles built lately, by layer, tile and ETag, up to ``limit`` bytes, the least recently used
    evicted first. A kept tile is never stale: the ETag names one state of the layer's data.

    >>> cache = TileCache(16)
    >>> for key in "abcd":
    ...     cache.put(key, key.encode() * 4)
    >>> _ = cache.get("a"); cache.put("e", b"eeee")  # 20 bytes: b, the least recently used, goes
    >>> cache.get("a"), cache.get("b"), cache.get("e")
    (b'aaaa', None, b'eeee')
    >>> cache.put("f", bytes(5)); cache.get("f") is None  # over a quarter of the cache: not kept
    True
    """

    def __init__(self, limit: int):
        """An empty cache of at most ``limit`` bytes (0: keep nothing)."""
        self.limit = limit
        self._tiles: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        """The tile kept under ``key``, or None."""
        with self._lock:
            found = self._tiles.get(key)
            if found is not None:
                self._tiles.move_to_end(key)
            return found

    def put(self, key: tuple, tile: bytes) -> None:
        """Keep ``tile`` (not one larger than a quarter of the cache: it would push out too many)."""
        if len(tile) * 4 > self.limit:
            return
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self._size += len(tile)
            while self._size > self.limit:
                _, evicted = self._tiles.popitem(last=False)
                self._size -= len(evicted)


def init_app(app: Flask) -> None:
    """Give ``app`` its tile cache (``TILE_CACHE_MB`` megabytes)."""
    app.extensions["tile_cache"] = TileCache(int(app.config.get("TILE_CACHE_MB", 64)) * 2 ** 20)


# -- the routes -----------------------------------------------------------------------------------
bp = Blueprint("tiles", __name__, url_prefix="/tiles")


class TilePath(BaseModel):
    layer: str = Field(description="a tile layer's id, as GET /tiles lists them")
    z: int = Field(ge=0, le=MAX_ZOOM, description="zoom")
    x: int = Field(ge=0, description="column from the west, below 2^z")
    y: int = Field(ge=0, description="row from the north, below 2^z")


class TileLayerEntry(BaseModel):
    id: str
    title: str
    description: str
    tiles: str = Field(description="the URL template of its tiles, {z}/{x}/{y}")
    minzoom: int = Field(description="the lowest zoom whose tiles hold features")
    maxzoom: int = Field(description="the highest zoom whose tiles hold features")
    public: bool = Field(description="whether anyone may read it (else only the roles that see customers' data)")


class TileIndex(BaseModel):
    """The tile layers the caller may read."""

    layers: list[TileLayerEntry]


def tile_url_template(layer_id: str) -> str:
    """The layer's tile URL with ``{z}/{x}/{y}`` in it (url_for would escape the braces)."""
    return url_for("tiles.tile", layer=layer_id, z=0, x=0, y=0).replace("/0/0/0.mvt", "/{z}/{x}/{y}.mvt")


@bp.get("")
@allow(PUBLIC)
@contract(responses={200: TileIndex})
def index():
    """The tile layers the caller may read, each with its URL template and zooms."""
    return jsonify({"layers": [
        {"id": layer.id, "title": layer.title, "description": layer.description, "tiles": tile_url_template(layer.id),
         "minzoom": layer.min_zoom, "maxzoom": layer.max_zoom, "public": PUBLIC in layer.roles}
        for layer in readable(current_principal())]})


TILE_HEADERS = {"ETag": "follows the layer's data (and a control zone): send it back as If-None-Match",
                "Cache-Control": "no-cache: ask again (a 304 costs no tile) so that switching shows at once"}


@bp.get("/<layer>/<int:z>/<int:x>/<int:y>.mvt")
@allow(PUBLIC)
@contract(path=TilePath, responses={200: Answer(MVT, None, headers=TILE_HEADERS), 304: Answer(None, headers=TILE_HEADERS)},
          errors=(400, 403, 404))
def tile(layer: str, z: int, x: int, y: int):
    """One vector tile (Mapbox Vector Tile 2.1) of a layer; customers' layers for dispatchers and planners."""
    found = _LAYERS.get(layer)
    if found is None:
        raise NotFound(_("there is no tile layer %(layer)r", layer=layer))
    require_role(current_principal(), found.roles)
    wanted = tile_of(z, x, y)
    connection = get_session().connection()
    public = PUBLIC in found.roles
    etag = tile_etag(connection, found, None if public else control_feeders())
    headers = {"ETag": f'"{etag}"', "Cache-Control": "public, no-cache" if public else "private, no-cache"}
    if not public:
        headers["Vary"] = "Authorization, Cookie"
    if etag in request.if_none_match:
        return Response(status=304, headers=headers)
    return Response(_built(found, wanted, etag), mimetype=MVT, headers=headers)


def _built(layer: TileLayer, tile: Tile, etag: str) -> bytes:
    """The tile from this process's cache, or built (after the layer's ``prepare``) and kept."""
    cache: TileCache = current_app.extensions["tile_cache"]
    key = (layer.id, tile, etag)
    kept = cache.get(key)
    if kept is not None:
        return kept
    if layer.prepare is not None:
        layer.prepare(get_session().connection())
        get_session().commit()  # done once for every worker, not once per request
    built = tile_bytes(get_session().connection(), layer, tile)
    cache.put(key, built)
    return built
