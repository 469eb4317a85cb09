"""OGC API - Features, Part 1 (Core, GeoJSON), read-only, under ``/ogc``: the registry the packages
fill with their collections, and the routes that serve them.

A package registers each collection once, from its ``init_app``::

    features.register(features.Collection(
        id="segments", title="Line segments", description="...", roles=frozenset({PUBLIC}),
        query=segments_query,          # (bbox | None) -> Select of id, geom and properties
        extent=network_extent))        # (connection) -> BBox | None

and this module does the rest: the landing page, ``/conformance``, ``/collections`` (only those
the caller may read), one collection, its items by ``bbox``, ``limit`` and ``offset`` with
``next``/``prev`` links, and one item by id. The query is the same shape ``geo.geojson`` turns
into GeoJSON in SQL, so a package reuses its map layer's query as it is. ``geo`` knows no
package: it never names a collection.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from flask import Blueprint, Response, request, url_for
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from geo.auth import PUBLIC, Principal, allow, current_principal, require_role
from geo.db import get_session
from geo.errors import Invalid, NotFound
from geo.geojson import GEOJSON, feature_collection, parse_bbox, parse_limit
from geo.i18n import _, translate
from geo.openapi import JSON, Answer, contract
from geo.spatial import BBox

__all__ = ["Collection", "Page", "register", "registered", "readable", "items", "item", "parse_offset", "bp",
           "DEFAULT_LIMIT", "MAX_LIMIT", "CONFORMANCE", "CRS84"]

# OGC API - Features' defaults: a page of 100 unless asked, never more than 10,000 (a larger
# limit is cut to this, as Part 1 requires, rather than refused).
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# Not oas30: /openapi.json is OpenAPI 3.1, and claiming the 3.0 class would be untrue.
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
)
OPENAPI_MEDIA = "application/vnd.oai.openapi+json;version=3.1"


@dataclass(frozen=True)
class Collection:
    """One feature collection: who may read it (``PUBLIC`` or roles), the query of its features
    in a bbox (columns ``id``, ``geom`` in SRID 4326, then the properties), and its extent."""

    id: str
    title: str
    description: str
    roles: frozenset[str]
    query: Callable[[BBox | None], Select]
    extent: Callable[[Connection], BBox | None]


_COLLECTIONS: dict[str, Collection] = {}


def register(collection: Collection) -> None:
    """Serve ``collection`` (registering an id again replaces it: each app's init_app registers)."""
    _COLLECTIONS[collection.id] = collection


def registered() -> list[Collection]:
    """Every registered collection, in registration order."""
    return list(_COLLECTIONS.values())


def may_read(collection: Collection, principal: Principal | None) -> bool:
    """Whether ``principal`` (None: anonymous) may read ``collection``."""
    return PUBLIC in collection.roles or (principal is not None and principal.role in collection.roles)


def readable(principal: Principal | None) -> list[Collection]:
    """The collections ``principal`` may read: the others are not even listed."""
    return [collection for collection in registered() if may_read(collection, principal)]


def parse_offset(value: str | None) -> int:
    """The ``offset`` parameter: 0 when missing, else a whole number of at least 0.

    >>> parse_offset(None), parse_offset("250")
    (0, 250)
    """
    if value is None or not value.strip():
        return 0
    try:
        offset = int(value)
    except ValueError:
        raise Invalid(_("offset must be a whole number; got %(value)r", value=value), field="offset") from None
    if offset < 0:
        raise Invalid(_("offset must be at least 0; got %(offset)s", offset=offset), field="offset")
    return offset


@dataclass(frozen=True)
class Page:
    """A page of items: the features as JSON text, how many match in all and whether more follow."""

    features_json: str
    number_matched: int
    number_returned: int
    more: bool


def items(connection: Connection, collection: Collection, bbox: BBox | None, limit: int, offset: int) -> Page:
    """The features of ``collection`` in ``bbox``, ordered by id (so that offsets page stably),
    ``limit`` of them from ``offset`` on; and the number of all matches (numberMatched), counted
    by a second query because paging clients (GDAL, QGIS) use it to size their requests."""
    layer = collection.query(bbox).subquery("layer")
    page = feature_collection(connection, select(layer).order_by(layer.c.id).offset(offset), limit)
    matched = connection.execute(select(func.count()).select_from(layer)).scalar_one()
    return Page(page.features_json, matched, page.number_returned, page.truncated)


def item(connection: Connection, collection: Collection, fid: str) -> dict[str, Any]:
    """The feature ``fid`` of ``collection`` as a dict; NotFound when there is none."""
    layer = collection.query(None).subquery("layer")
    found = feature_collection(connection, select(layer).where(layer.c.id == fid), 1)
    if not found.number_returned:
        raise NotFound(_("collection %(collection)r has no feature %(fid)r", collection=collection.id, fid=fid))
    return json.loads(found.features_json)


# -- the routes -----------------------------------------------------------------------------------
bp = Blueprint("ogc", __name__, url_prefix="/ogc")


class OgcDocument(BaseModel):
    """A JSON document of OGC API - Features (landing page, conformance, collections, collection)."""

    model_config = ConfigDict(extra="allow")


class OgcPath(BaseModel):
    collection_id: str = Field(description="a collection's id, as GET /ogc/collections lists them")


class OgcItemPath(OgcPath):
    fid: str = Field(description="a feature's id (the element's code)")


class OgcItemsQuery(BaseModel):
    bbox: str | None = Field(None, description="west,south,east,north in degrees (CRS84)")
    limit: int | None = Field(None, ge=1, description=f"features per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})")
    offset: int | None = Field(None, ge=0, description="features to skip (the next link carries it)")


def _link(href: str, rel: str, media: str, title: str | None = None) -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": media}
    return {**link, "title": title} if title else link


def _json(document: dict, media: str = JSON) -> Response:
    return Response(json.dumps(document, ensure_ascii=False), mimetype=media)


def _readable_collection(collection_id: str) -> Collection:
    """The collection, for a caller allowed to read it: 404 if unknown, 401/403 otherwise."""
    collection = _COLLECTIONS.get(collection_id)
    if collection is None:
        raise NotFound(_("there is no collection %(collection)r", collection=collection_id))
    require_role(current_principal(), collection.roles)
    return collection


def _collection_document(connection: Connection, collection: Collection) -> dict:
    """A collection's description: its links, its extent in CRS84 and its item type."""
    self_url = url_for("ogc.collection", collection_id=collection.id, _external=True)
    items_url = url_for("ogc.collection_items", collection_id=collection.id, _external=True)
    box = collection.extent(connection)
    document = {
        "id": collection.id, "title": collection.title, "description": collection.description,
        "links": [_link(self_url, "self", JSON, collection.title),
                  _link(items_url, "items", GEOJSON, collection.title)],
        "itemType": "feature", "crs": [CRS84],
    }
    if box is not None:
        document["extent"] = {"spatial": {"bbox": [list(box)], "crs": CRS84}}
    return document


@bp.get("/")
@allow(PUBLIC)
@contract(responses={200: OgcDocument})
def landing():
    """The OGC API - Features landing page: links to the API, its conformance and its collections."""
    return _json({
        "title": "GridAtlas", "description": translate(_("The distribution network and service outlets as OGC API - Features")),
        "links": [
            _link(url_for("ogc.landing", _external=True), "self", JSON, "this document"),
            _link(url_for("openapi.openapi_json", _external=True), "service-desc", OPENAPI_MEDIA, "the API definition"),
            _link(url_for("openapi.docs", _external=True), "service-doc", "text/html", "the API documentation"),
            _link(url_for("ogc.conformance", _external=True), "conformance", JSON, "conformance classes"),
            _link(url_for("ogc.collections", _external=True), "data", JSON, "the feature collections"),
        ],
    })


@bp.get("/conformance")
@allow(PUBLIC)
@contract(responses={200: OgcDocument})
def conformance():
    """The conformance classes implemented: Core and GeoJSON."""
    return _json({"conformsTo": list(CONFORMANCE)})


@bp.get("/collections")
@allow(PUBLIC)
@contract(responses={200: OgcDocument})
def collections():
    """The collections the caller may read (those with customers' data only for their roles)."""
    connection = get_session().connection()
    return _json({
        "links": [_link(url_for("ogc.collections", _external=True), "self", JSON, "this document")],
        "collections": [_collection_document(connection, found) for found in readable(current_principal())],
    })


@bp.get("/collections/<collection_id>")
@allow(PUBLIC)
@contract(path=OgcPath, responses={200: OgcDocument}, errors=(403, 404))
def collection(collection_id: str):
    """One collection: title, description, extent and the link to its items."""
    return _json(_collection_document(get_session().connection(), _readable_collection(collection_id)))


def _page_links(collection: Collection, bbox: str | None, limit: int, offset: int, page: Page) -> list[dict]:
    """self, collection, and next/prev links of a page (absolute, keeping bbox and limit)."""
    def page_url(at: int) -> str:
        return url_for("ogc.collection_items", collection_id=collection.id, bbox=bbox or None, limit=limit,
                       offset=at, _external=True)

    links = [_link(page_url(offset), "self", GEOJSON, "this page"),
             _link(url_for("ogc.collection", collection_id=collection.id, _external=True), "collection", JSON,
                   collection.title)]
    if page.more:
        links.append(_link(page_url(offset + limit), "next", GEOJSON, "the next page"))
    if offset > 0:
        links.append(_link(page_url(max(offset - limit, 0)), "prev", GEOJSON, "the previous page"))
    return links


@bp.get("/collections/<collection_id>/items")
@allow(PUBLIC)
@contract(path=OgcPath, query=OgcItemsQuery, responses={200: Answer(GEOJSON, None)}, errors=(400, 403, 404))
def collection_items(collection_id: str):
    """A page of the collection's features in ``bbox``, ``limit`` from ``offset`` on, with next/prev links."""
    found = _readable_collection(collection_id)
    text = request.args.get("bbox")
    bbox = parse_bbox(text)
    limit = parse_limit(request.args.get("limit") or str(DEFAULT_LIMIT), MAX_LIMIT)
    offset = parse_offset(request.args.get("offset"))
    page = items(get_session().connection(), found, bbox, limit, offset)
    head = {"type": "FeatureCollection", "numberMatched": page.number_matched, "numberReturned": page.number_returned,
            "timeStamp": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": _page_links(found, text, limit, offset, page)}
    # The features are already JSON text written by PostgreSQL: spliced in, never parsed here.
    body = json.dumps(head, ensure_ascii=False)[:-1] + f',"features":[{page.features_json}]}}'
    return Response(body, mimetype=GEOJSON)


@bp.get("/collections/<collection_id>/items/<fid>")
@allow(PUBLIC)
@contract(path=OgcItemPath, responses={200: Answer(GEOJSON, None)}, errors=(403, 404))
def collection_item(collection_id: str, fid: str):
    """One feature of the collection by its id."""
    found = _readable_collection(collection_id)
    feature = item(get_session().connection(), found, fid)
    feature["links"] = [
        _link(url_for("ogc.collection_item", collection_id=found.id, fid=fid, _external=True), "self", GEOJSON),
        _link(url_for("ogc.collection", collection_id=found.id, _external=True), "collection", JSON, found.title),
    ]
    return _json(feature, GEOJSON)
