"""GeoJSON out of PostGIS: bbox and limit parameters, the bbox filter, FeatureCollections built in SQL.

Every package's layer endpoints share these pieces::

    bbox = parse_bbox(request.args.get("bbox"))            # Invalid on a bad value
    limit = parse_limit(request.args.get("limit"), app.config["API_MAX_FEATURES"])
    query = select(t.c.code.label("id"), t.c.geom, t.c.code, t.c.name).where(in_bbox(t.c.geom, bbox))  # geo.spatial
    return geojson_response(feature_collection(connection, query, limit))

``feature_collection`` has PostgreSQL write each feature (``ST_AsGeoJSON`` and
``row_to_json``) and join them into one string, so Python never sees a row: a layer of
20,000 features costs one query and no per-row object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Response
from sqlalchemy import Text, cast, func, literal, select, text, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from geo.errors import Invalid
from geo.i18n import _
from geo.spatial import BBox

__all__ = [
    "GEOJSON", "COORDINATE_DECIMALS", "parse_bbox", "parse_limit", "FeatureCollection", "interactive_settings", "feature_collection", "geojson_response",
]

GEOJSON = "application/geo+json"
# 6 decimals of a degree is about 0.1 m: finer digits only make the responses bigger.
COORDINATE_DECIMALS = 6


def parse_bbox(value: str | None) -> BBox | None:
    """``"west,south,east,north"`` as a ``BBox``; ``None`` for a missing or empty value.

    Raises ``Invalid`` saying what is wrong: not four numbers, a longitude outside
    [-180, 180] or a latitude outside [-90, 90], west greater than east or south greater
    than north (boxes across the antimeridian are not supported).

    >>> parse_bbox("7.9,48.4,8.0,48.5")
    BBox(west=7.9, south=48.4, east=8.0, north=48.5)
    >>> parse_bbox(None) is None
    True
    """
    if value is None or not value.strip():
        return None
    parts = value.split(",")
    if len(parts) != 4:
        raise Invalid(_("bbox must be four numbers west,south,east,north; got %(count)s value(s)", count=len(parts)),
                         field="bbox")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise Invalid(_("bbox must be four numbers west,south,east,north; got %(value)r", value=value),
                         field="bbox") from None
    if not all(math.isfinite(number) for number in numbers):
        raise Invalid(_("bbox values must be finite numbers"), field="bbox")
    bbox = BBox(*numbers)
    if not (-180 <= bbox.west <= 180 and -180 <= bbox.east <= 180):
        raise Invalid(_("bbox longitudes must lie within [-180, 180]"), field="bbox")
    if not (-90 <= bbox.south <= 90 and -90 <= bbox.north <= 90):
        raise Invalid(_("bbox latitudes must lie within [-90, 90]"), field="bbox")
    if bbox.west > bbox.east:
        raise Invalid(_("bbox west is greater than east (boxes across the antimeridian are not supported)"),
                         field="bbox")
    if bbox.south > bbox.north:
        raise Invalid(_("bbox south is greater than north"), field="bbox")
    return bbox


def parse_limit(value: str | None, maximum: int) -> int:
    """The ``limit`` parameter: ``maximum`` when missing, at most ``maximum``, at least 1.

    >>> parse_limit(None, 500), parse_limit("20", 500), parse_limit("9999", 500)
    (500, 20, 500)
    """
    if value is None or not value.strip():
        return maximum
    try:
        limit = int(value)
    except ValueError:
        raise Invalid(_("limit must be a whole number; got %(value)r", value=value), field="limit") from None
    if limit < 1:
        raise Invalid(_("limit must be at least 1; got %(limit)s", limit=limit), field="limit")
    return min(limit, maximum)


@dataclass(frozen=True)
class FeatureCollection:
    """A FeatureCollection whose features are already JSON text, ready to send.

    ``truncated`` says the limit cut the result short; ``number_matched`` is then unknown
    (None: counting every match would cost as much again), and equals ``number_returned``
    otherwise.
    """

    features_json: str
    number_returned: int
    number_matched: int | None
    truncated: bool

    def to_json(self) -> str:
        """The RFC 7946 document, with OGC API's numberMatched (when known), numberReturned and ``truncated``."""
        matched = "" if self.number_matched is None else f'"numberMatched":{self.number_matched},'
        return (
            '{"type":"FeatureCollection",'
            f'{matched}"numberReturned":{self.number_returned},'
            f'"truncated":{"true" if self.truncated else "false"},'
            f'"features":[{self.features_json}]}}'
        )


def interactive_settings(connection: Connection) -> None:
    """Turn off JIT and parallel workers for the rest of the transaction.

    PostGIS prices ``ST_Intersects`` so high that a few thousand rows pass ``jit_above_cost``
    and the parallel thresholds; compiling (~150 ms) and starting workers (~50 ms) cost more
    than a map request's whole query, which reads a few thousand rows from the GiST index.
    """
    connection.execute(text("SELECT set_config('jit', 'off', true), "
                            "set_config('max_parallel_workers_per_gather', '0', true)"))


def feature_collection(connection: Connection, query: Select, limit: int) -> FeatureCollection:
    """Run ``query`` and return at most ``limit`` of its rows as GeoJSON features.

    ``query`` selects a column labelled ``id`` (the feature's id), a geometry column labelled
    ``geom`` (SRID 4326), and any further columns, which become the feature's properties in
    their order. Rows come in the query's order (no order: whatever the index scan yields).

    Notes
    -----
    One query fetches ``limit + 1`` rows to learn whether the result is truncated, and stops
    there: the matches beyond are not counted.
    Each feature is concatenated text around ``ST_AsGeoJSON`` and ``row_to_json`` of its
    properties, about twice as fast as nesting ``json_build_object`` (which re-parses the
    geometry). ``interactive_settings`` runs first.
    """
    interactive_settings(connection)
    rows = query.limit(limit + 1).cte("rows")  # read twice below, so PostgreSQL materialises it once
    kept = select(rows).limit(limit).subquery("kept")
    properties = (select(*[column for column in kept.c if column.key not in ("id", "geom")])
                  .correlate(kept).lateral("properties"))
    feature = (
        literal('{"type":"Feature","id":') + cast(func.to_json(kept.c.id), Text)
        + literal(',"geometry":') + func.coalesce(func.ST_AsGeoJSON(kept.c.geom, COORDINATE_DECIMALS), "null")
        + literal(',"properties":') + cast(func.row_to_json(properties.table_valued()), Text) + literal("}")
    )
    features = select(func.string_agg(feature, literal(","))).select_from(kept.join(properties, true()))
    count, features_json = connection.execute(
        select(select(func.count()).select_from(rows).scalar_subquery(), features.scalar_subquery())
    ).one()
    if count <= limit:
        return FeatureCollection(features_json or "", count, count, truncated=False)
    return FeatureCollection(features_json or "", limit, None, truncated=True)


def geojson_response(collection: FeatureCollection) -> Response:
    """An ``application/geo+json`` response of ``collection``."""
    return Response(collection.to_json(), mimetype=GEOJSON)
