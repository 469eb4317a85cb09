"""Small tilesets the base-map tests build: MBTiles and PMTiles files of PNG or gzipped vector
tiles, written with the standard library (and the ``pmtiles`` package's writer).

    path = write_mbtiles(tmp_path / "city.mbtiles", "png", {(3, 4, 2): png_tile((200, 30, 30))})
    path = write_pmtiles(tmp_path / "city.pmtiles", "pbf", {(0, 0, 0): gzip.compress(vector_tile("water"))})

Tile keys are (z, x, y) in XYZ numbering (rows from the north); MBTiles stores the TMS row.
"""
from __future__ import annotations

import json
import math
import sqlite3
import struct
import zlib
from pathlib import Path

TileSet = dict[tuple[int, int, int], bytes]


def png_tile(colour: tuple[int, int, int], size: int = 256, grid: tuple[int, int, int] | None = None) -> bytes:
    """A ``size``-pixel square PNG of one colour, with a one-pixel border in ``grid`` if given."""
    def row(y: int) -> bytes:
        if grid and y in (0, size - 1):
            return b"\x00" + bytes(grid) * size
        body = bytes(colour) * (size - 2)
        edge = bytes(grid or colour)
        return b"\x00" + edge + body + edge

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(row(y) for y in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(payload) if wire == 0 else _varint(len(payload)) + payload)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 31)


def vector_tile(layer: str, extent: int = 4096) -> bytes:
    """A Mapbox Vector Tile (spec 2.1) with one layer ``layer`` holding one square polygon."""
    square = [(512, 512), (3584, 512), (3584, 3584), (512, 3584)]
    commands = [1 | 1 << 3, _zigzag(square[0][0]), _zigzag(square[0][1]), 2 | 3 << 3]
    for (x0, y0), (x1, y1) in zip(square, square[1:]):
        commands += [_zigzag(x1 - x0), _zigzag(y1 - y0)]
    commands.append(7 | 1 << 3)  # ClosePath
    geometry = b"".join(_varint(command) for command in commands)
    feature = _field(1, 0, 1) + _field(3, 0, 3) + _field(4, 2, geometry)  # id, type POLYGON, geometry
    body = _field(15, 0, 2) + _field(1, 2, layer.encode()) + _field(2, 2, feature) + _field(5, 0, extent)
    return _field(3, 2, body)


def tiles_over(bbox: tuple[float, float, float, float], zooms: range, data: bytes) -> TileSet:
    """``data`` as every tile (XYZ) that covers ``bbox`` (west, south, east, north) at ``zooms``."""
    def column(lon: float, z: int) -> int:
        return int((lon + 180) / 360 * 2 ** z)

    def row(lat: float, z: int) -> int:
        rad = math.radians(lat)
        return int((1 - math.asinh(math.tan(rad)) / math.pi) / 2 * 2 ** z)

    west, south, east, north = bbox
    return {(z, x, y): data for z in zooms for x in range(column(west, z), column(east, z) + 1)
            for y in range(row(north, z), row(south, z) + 1)}


def write_mbtiles(path: Path, tile_format: str, tiles: TileSet, bounds=(-180.0, -85.0, 180.0, 85.0),
                  layers: tuple[str, ...] = ()) -> Path:
    """An MBTiles 1.3 file of ``tiles`` (rows flipped to TMS) with its metadata."""
    path.unlink(missing_ok=True)
    zooms = [z for z, _x, _y in tiles]
    metadata = {"name": "test tiles", "format": tile_format, "bounds": ",".join(map(str, bounds)),
                "minzoom": str(min(zooms)), "maxzoom": str(max(zooms)), "attribution": "Test tiles"}
    if layers:
        metadata["json"] = json.dumps({"vector_layers": [{"id": layer, "fields": {}} for layer in layers]})
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name text, value text)")
        db.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)", metadata.items())
        db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                       [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()])
    return path


def write_pmtiles(path: Path, tile_format: str, tiles: TileSet, bounds=(-180.0, -85.0, 180.0, 85.0),
                  layers: tuple[str, ...] = ()) -> Path:
    """A PMTiles v3 file of ``tiles`` (gzipped vector tiles stay as given, marked gzip)."""
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import write

    kinds = {"png": TileType.PNG, "jpg": TileType.JPEG, "webp": TileType.WEBP, "pbf": TileType.MVT}
    zooms = [z for z, _x, _y in tiles]
    e7 = 10_000_000
    with write(path) as writer:
        for tile_id, data in sorted((zxy_to_tileid(*key), data) for key, data in tiles.items()):
            writer.write_tile(tile_id, data)
        writer.finalize({
            "tile_type": kinds[tile_format],
            "tile_compression": Compression.GZIP if tile_format == "pbf" else Compression.NONE,
            "min_zoom": min(zooms), "max_zoom": max(zooms),
            "min_lon_e7": int(bounds[0] * e7), "min_lat_e7": int(bounds[1] * e7),
            "max_lon_e7": int(bounds[2] * e7), "max_lat_e7": int(bounds[3] * e7),
            "center_zoom": min(zooms), "center_lon_e7": 0, "center_lat_e7": 0,
        }, {"name": "test tiles", "attribution": "Test tiles",
            "vector_layers": [{"id": layer, "fields": {}} for layer in layers]})
    return path
