"""The base-map file readers (MBTiles, PMTiles), tile addresses and street labels, on tilesets
the tests write (tests/basemap_tiles.py)."""
from __future__ import annotations

import gzip

import pytest

from geo.basemap import (BasemapFileError, MBTiles, PMTiles, _label, open_tileset, parse_tile_address, read_tile,
                         tileset_of)
from geo.errors import Invalid, NotFound
from tests.basemap_tiles import png_tile, vector_tile, write_mbtiles, write_pmtiles

RED, BLUE = png_tile((200, 30, 30)), png_tile((30, 30, 200))
CITY = (8.3, 48.9, 8.5, 49.1)
WRITERS = {"mbtiles": write_mbtiles, "pmtiles": write_pmtiles}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_raster_tileset_serves_each_tile_at_its_xyz_address(tmp_path, kind):
    path = WRITERS[kind](tmp_path / f"city.{kind}", "png", {(3, 4, 2): RED, (3, 4, 5): BLUE, (0, 0, 0): BLUE}, CITY)
    tileset = open_tileset(path)
    assert isinstance(tileset, MBTiles if kind == "mbtiles" else PMTiles)
    # y counts from the north: MBTiles' rows (from the south) are flipped, PMTiles' ids are XYZ.
    assert read_tile(tileset, 3, 4, 2).data == RED and read_tile(tileset, 3, 4, 5).data == BLUE
    found = read_tile(tileset, 0, 0, 0)
    assert (found.media, found.encoding) == ("image/png", None)
    with pytest.raises(NotFound):
        read_tile(tileset, 3, 4, 3)
    info = tileset.info
    assert (info.format, info.min_zoom, info.max_zoom, info.attribution) == ("png", 0, 3, "Test tiles")
    assert info.bounds == pytest.approx(CITY)


@pytest.mark.parametrize("kind", WRITERS)
def test_a_vector_tileset_serves_gzipped_tiles_marked_gzip_with_its_layers(tmp_path, kind):
    packed = gzip.compress(vector_tile("water"))
    path = WRITERS[kind](tmp_path / f"city.{kind}", "pbf", {(1, 1, 0): packed}, CITY, layers=("water", "roads"))
    tileset = open_tileset(path)
    found = read_tile(tileset, 1, 1, 0)
    assert (found.data, found.media, found.encoding) == (packed, "application/vnd.mapbox-vector-tile", "gzip")
    assert gzip.decompress(found.data) == vector_tile("water")
    assert tileset.info.layers == ("water", "roads")


def test_an_uncompressed_vector_tile_is_served_without_an_encoding(tmp_path):
    path = write_mbtiles(tmp_path / "plain.mbtiles", "pbf", {(0, 0, 0): vector_tile("roads")})
    assert read_tile(open_tileset(path), 0, 0, 0).encoding is None


def test_a_pmtiles_file_with_leaf_directories_finds_every_tile(tmp_path, monkeypatch):
    import pmtiles.writer

    # 4,900 tiles, and a root directory held to 60 bytes: the writer puts them in leaf directories
    # (as it does for a real city's tileset, whose directory outgrows the 16 kB root).
    whole = pmtiles.writer.optimize_directories
    monkeypatch.setattr(pmtiles.writer, "optimize_directories", lambda entries, _root: whole(entries, 60))
    tiles = {(12, x, y): f"tile {x} {y}".encode() for x in range(2000, 2070) for y in range(1400, 1470)}
    tileset = open_tileset(write_pmtiles(tmp_path / "big.pmtiles", "png", tiles))
    assert tileset._reader.header()["leaf_directory_length"] > 0
    for key in [(12, 2000, 1400), (12, 2069, 1469), (12, 2035, 1433)]:
        assert tileset.tile_data(*key) == tiles[key]
    assert tileset.tile_data(12, 2070, 1400) is None


def test_a_file_that_is_no_tileset_is_refused_at_start(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("not tiles")
    with pytest.raises(BasemapFileError, match="neither an MBTiles nor a PMTiles"):
        open_tileset(other)
    with pytest.raises(BasemapFileError, match="cannot be read"):
        tileset_of(str(tmp_path / "missing.mbtiles"))
    webp_less = write_mbtiles(tmp_path / "tiff.mbtiles", "tiff", {(0, 0, 0): b"II*"})
    with pytest.raises(BasemapFileError, match="tile format 'tiff'"):
        open_tileset(webp_less)
    assert tileset_of(None) is None


def test_a_replaced_file_is_read_anew(tmp_path):
    path = write_mbtiles(tmp_path / "city.mbtiles", "png", {(0, 0, 0): RED})
    assert read_tile(tileset_of(str(path)), 0, 0, 0).data == RED
    write_mbtiles(path, "png", {(0, 0, 0): BLUE, (1, 0, 0): BLUE})
    assert read_tile(tileset_of(str(path)), 0, 0, 0).data == BLUE


@pytest.mark.parametrize("address", [("a", "0", "0"), ("-1", "0", "0"), ("25", "0", "0"), ("2", "4", "0"),
                                     ("2", "0", "-1"), ("1", "0", "x.png")])
def test_a_bad_tile_address_is_invalid(address):
    with pytest.raises(Invalid):
        parse_tile_address(*address)


def test_a_street_running_north_south_is_labelled_upright():
    label = _label("Nordweg", 8.4, 49.0, (8 / 73_034) ** 2, (150 / 111_320) ** 2, 0.0)
    assert abs(label.angle) == 90.0 and label.axis is not None
    assert label.axis[0][0] == label.axis[1][0]  # one longitude: a north-south line
    # Addresses spread as much across as along: no line, only the name.
    assert _label("Platz", 8.4, 49.0, (60 / 73_034) ** 2, (60 / 111_320) ** 2, 0.0).axis is None
