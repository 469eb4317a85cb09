"""Grid cells as files: GeoJSON (RFC 7946) and GeoPackage, both ways.

A file holds one feature per cell with the properties ``code``, ``name``, ``notes`` and ``team``
(in a GeoPackage, a column of JSON text, since a GeoPackage column holds no list). What a file
holds is checked as any save (``geo.cell_edits.import_cells``); this module only reads and writes.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import Invalid
from geo.i18n import _

__all__ = ["FORMATS", "MEDIA", "format_of", "read_features", "export_cells"]

FORMATS = ("geojson", "gpkg")
MEDIA = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3"}
_LAYER = "grid_cells"


def format_of(filename: str | None, given: str | None) -> str:
    """The file format: ``given``, else from the file name's extension, else GeoJSON.

    >>> format_of("cells.GPKG", None), format_of(None, None), format_of("a.json", None)
    ('gpkg', 'geojson', 'geojson')
    """
    if given:
        if given not in FORMATS:
            raise Invalid(_("format must be one of %(formats)s", formats=", ".join(FORMATS)), field="format")
        return given
    return "gpkg" if filename and filename.lower().endswith(".gpkg") else "geojson"


def _geojson_features(data: bytes) -> list:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(_("the file is not GeoJSON (JSON text)")) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise Invalid(_("the file must be a GeoJSON FeatureCollection"))
    return document.get("features")


def _gpkg_features(data: bytes) -> list:
    import pyogrio  # GDAL: only for GeoPackage files

    try:
        frame = pyogrio.read_dataframe(io.BytesIO(data))
    except Exception as error:  # GDAL says what is wrong with the file in its own words
        raise Invalid(_("the file is not a GeoPackage GDAL can read: %(reason)s", reason=str(error)[:200])) from None
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    features = json.loads(frame.to_json(drop_id=True))["features"]
    for feature in features:
        team = feature["properties"].get("team")
        if isinstance(team, str) and team.strip():
            try:
                feature["properties"]["team"] = json.loads(team)
            except ValueError:
                raise Invalid(_("the team of %(code)s is not JSON text", code=feature["properties"].get("code"))) from None
        elif team is not None:
            feature["properties"].pop("team")
    return features


def read_features(data: bytes, file_format: str) -> list:
    """The features of a GeoJSON or GeoPackage file (a GeoPackage's first layer)."""
    if not data:
        raise Invalid(_("the file is empty"))
    return _gpkg_features(data) if file_format == "gpkg" else _geojson_features(data)


_EXPORT = text("""
SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(json_build_object(
  'type', 'Feature', 'id', code, 'geometry', CAST(ST_AsGeoJSON(geom, 9) AS json),
  'properties', json_build_object('code', code, 'name', name, 'notes', notes, 'team', team, 'version', version,
                                  'updated_at', updated_at, 'updated_by', updated_by)) ORDER BY code), '[]'))
FROM grid_cells
""")


def export_cells(connection: Connection, file_format: str) -> bytes:
    """Every live cell as a GeoJSON FeatureCollection or a GeoPackage (layer ``grid_cells``)."""
    document = connection.execute(_EXPORT).scalar_one()
    if file_format == "geojson":
        return json.dumps(document, ensure_ascii=False).encode()
    import geopandas

    rows: list[dict[str, Any]] = []
    for feature in document["features"]:
        properties = dict(feature["properties"])
        properties["team"] = json.dumps(properties["team"], ensure_ascii=False)
        rows.append({"type": "Feature", "geometry": feature["geometry"], "properties": properties})
    frame = geopandas.GeoDataFrame.from_features(rows, crs="EPSG:4326", columns=[
        "geometry", "code", "name", "notes", "team", "version", "updated_at", "updated_by"])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "cells.gpkg")
        frame.to_file(path, layer=_LAYER, driver="GPKG", engine="pyogrio")
        with open(path, "rb") as written:
            return written.read()
