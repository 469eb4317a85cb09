"""The nearest outlets to a point, and addresses resolved against our own address data.

Nearest: PostGIS KNN (``<->`` on the ``(geom::geography)`` GiST index) streams candidates
nearest first; each gets its geodesic distance in metres and its opening state in its own
zone. With an "open at" filter the candidates come in growing batches until enough are open.

Addresses: those that begin with the query first (btree prefix indexes), then pg_trgm word
similarity over outlet and service-point addresses (GIN indexes); a clear best match resolves,
near-equal ones come back as a "did you mean" list.
"""
from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from sqlalchemy import Float, Integer, Select, String, bindparam, exists, func, literal, select, text
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Connection, Dialect

from geo.errors import Invalid, NotFound
from outlets.models import SERVICES, spelled_sql
from outlets.store import (
    OutletView, geodesic_distance_m, knn_order, outlet_columns, outlets, phone_fields,
    point, services_table, view_from_row,
)

__all__ = ["nearest", "nearest_query", "nearest_parameters", "Origin", "resolve_address", "suggest_addresses", "travel_minutes", "directions",
           "MAX_RESULTS", "MAX_SCANNED"]

UTC = timezone.utc
MAX_RESULTS = 50
# An "open at" search looks at no more than this many nearest outlets before it gives up.
MAX_SCANNED = 5000
# Rough travel: straight-line distance times a detour factor, at a typical town speed.
WALK_M_PER_MIN, WALK_DETOUR = 80.0, 1.25      # 4.8 km/h
DRIVE_M_PER_MIN, DRIVE_DETOUR = 400.0, 1.35   # 24 km/h through town
DRIVE_PARKING_MIN = 3


def travel_minutes(distance_m: float) -> dict[str, int]:
    """Rough walking and driving times for a straight-line distance.

    >>> travel_minutes(800)
    {'walking_min': 13, 'driving_min': 6}
    """
    return {
        "walking_min": max(1, math.ceil(distance_m * WALK_DETOUR / WALK_M_PER_MIN)),
        "driving_min": max(1, math.ceil(distance_m * DRIVE_DETOUR / DRIVE_M_PER_MIN) + DRIVE_PARKING_MIN),
    }


def directions(outlet: OutletView, origin: tuple[float, float] | None, walking: bool) -> dict[str, str]:
    """Links that open directions in the user's map app (Google's universal link works on every
    platform; Apple Maps on iPhones; ``geo:`` on Android).

    >>> directions(OutletView(1, "A", "Centre & Co", "", None, "DE", "Europe/Berlin", 15, 8.4, 49.0, True,
    ...                       {}, None), (8.39, 49.01), walking=True)["url"]
    'https://www.google.com/maps/dir/?api=1&destination=49.000000,8.400000&travelmode=walking&origin=49.010000,8.390000'
    """
    destination = f"{outlet.lat:.6f},{outlet.lon:.6f}"
    google = f"https://www.google.com/maps/dir/?api=1&destination={destination}&travelmode={'walking' if walking else 'driving'}"
    apple = f"https://maps.apple.com/?daddr={destination}&dirflg={'w' if walking else 'd'}"
    if origin is not None:
        start = f"{origin[1]:.6f},{origin[0]:.6f}"
        google, apple = f"{google}&origin={start}", f"{apple}&saddr={start}"
    return {"url": google, "apple": apple, "geo": f"geo:{destination}?q={destination}({quote(outlet.name)})"}


def _iso(at: datetime | None, outlet: OutletView) -> str | None:
    """An instant as ISO 8601 on the outlet's clock (None stays None)."""
    return outlet.schedule.local(at).isoformat() if at is not None else None


def opening_state(outlet: OutletView, now: datetime) -> dict[str, Any]:
    """Open now or not, until when, the next opening and today's hours, in the outlet's local time.

    Kept with the schedule (schedules are shared by outlets with equal hours) while it cannot
    change: until the next closing or opening and at most until local midnight. Callers copy it.
    """
    schedule = outlet.schedule
    kept = schedule.memo.get("state")
    if kept is not None and kept[0] <= now < kept[1]:
        return kept[2]
    now = now.astimezone(UTC)
    is_open = schedule.is_open(now)
    closes_at = schedule.closes_at(now) if is_open else None
    next_opening = schedule.next_opening(now) if not is_open else None
    today = schedule.local_date(now)
    state = {
        "hours_known": schedule.known,
        "open_now": is_open,
        "closes_at": _iso(closes_at, outlet),
        "next_opening": _iso(next_opening, outlet),
        "today": schedule.day_hours(today),
        "hours": schedule.hours_text,
    }
    midnight = schedule.local_midnight(today + timedelta(days=1))
    if not schedule.known:
        until = midnight
    elif is_open:
        # Open beyond the week closes_at looks at: that horizon moves with the clock.
        until = min(closes_at, midnight) if closes_at is not None else min(now + timedelta(minutes=1), midnight)
    else:
        # No opening within next_opening's horizon: it moves with the clock; keep nothing.
        until = min(next_opening, midnight) if next_opening is not None else now
    schedule.memo["state"] = (now, until, state)
    return state


def _open_at(outlet: OutletView, at: datetime) -> bool | None:
    """``at`` as an instant, or (naive) as a wall-clock time in the outlet's own zone."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=outlet.schedule.tz)
    return outlet.schedule.is_open(at)


@dataclass(frozen=True)
class Origin:
    """Where the customer is: a point, and the address it was found from, if any."""

    lon: float
    lat: float
    address: str | None = None
    source: str | None = None


@functools.cache
def nearest_query(with_service: bool = False) -> Select:
    """Active outlets nearest first from (``:lon``, ``:lat``) (KNN on the geography index), with
    their geodesic distance; ``:service`` keeps those offering it; ``:limit`` and ``:offset``
    page. Built once: a request only binds."""
    here = point(bindparam("lon", type_=Float), bindparam("lat", type_=Float))
    query = (select(*outlet_columns(), geodesic_distance_m(outlets.c.geom, here).label("distance_m"))
             .where(outlets.c.active)
             .order_by(knn_order(outlets.c.geom, here))
             .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))
    if with_service:
        query = query.where(exists().where(services_table.c.outlet_id == outlets.c.id,
                                           services_table.c.service == bindparam("service", type_=String)))
    return query


@functools.lru_cache(maxsize=8)
def _compiled(with_service: bool, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """``nearest_query`` as the driver's SQL text with its constant parameters, compiled once."""
    compiled = nearest_query(with_service).compile(dialect=dialect)
    return str(compiled), {name: value for name, value in compiled.params.items() if value is not None}


def _fetch(connection: Connection, with_service: bool, parameters: dict[str, Any]) -> list[Any]:
    """The rows of ``nearest_query`` straight from the driver's cursor: the search's hot path,
    where SQLAlchemy's statement and result handling cost as much as the database (0.4 ms).
    Everything is still a bind parameter; a dropped connection surfaces as the driver's
    OperationalError (outlets.api.read runs the search again)."""
    sql, constants = _compiled(with_service, connection.dialect)
    with connection.connection.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
        cursor.execute(sql, {**constants, **parameters})
        return cursor.fetchall()


def nearest_parameters(origin: Origin, service: str | None = None) -> dict[str, Any]:
    """The values ``nearest_query`` binds for a search from ``origin``."""
    return {"lon": origin.lon, "lat": origin.lat, "service": service}


def nearest(connection: Connection, origin: Origin, now: datetime, n: int = 5, service: str | None = None,
            open_at: datetime | None = None) -> list[dict[str, Any]]:
    """The ``n`` nearest active outlets to ``origin``, nearest first (geodesic metres).

    ``service`` keeps outlets offering it; ``open_at`` keeps those open then, and those whose
    hours are unknown (shown as such). Complexity: O(log N + k) index work for k candidates.
    """
    if not 1 <= n <= MAX_RESULTS:
        raise Invalid(f"n must be 1..{MAX_RESULTS}")
    if service is not None and service not in SERVICES:
        raise Invalid(f"unknown service {service!r} (known: {', '.join(SERVICES)})")
    parameters = nearest_parameters(origin, service)
    found: list[tuple[OutletView, float]] = []
    batch, seen = (n if open_at is None else max(4 * n, 32)), 0
    while True:
        rows = _fetch(connection, service is not None, {**parameters, "limit": batch, "offset": seen})
        for row in rows:
            outlet = view_from_row(row)
            if open_at is None or _open_at(outlet, open_at) is not False:
                found.append((outlet, row.distance_m))
                if len(found) == n:
                    break
        seen += len(rows)
        if len(found) == n or len(rows) < batch or seen >= MAX_SCANNED:
            break
        batch = min(batch * 4, MAX_SCANNED - seen)
    # KNN ranks by sphere distance; the reported spheroid distances can swap near-ties.
    found.sort(key=lambda item: item[1])
    return [_result(outlet, distance, origin, now, open_at) for outlet, distance in found]


def _result(outlet: OutletView, distance_m: float, origin: Origin, now: datetime,
            open_at: datetime | None) -> dict[str, Any]:
    """One outlet as the nearest search reports it."""
    travel = travel_minutes(distance_m)
    result = {
        "code": outlet.code, "name": outlet.name, "address": outlet.address, **phone_fields(outlet.phone),
        "lon": round(outlet.lon, 7), "lat": round(outlet.lat, 7), "timezone": outlet.timezone,
        "services": list(outlet.services),
        "distance_m": round(distance_m, 1),
        **opening_state(outlet, now),
        "travel": travel,
        "directions": directions(outlet, (origin.lon, origin.lat), walking=travel["walking_min"] <= 25),
    }
    result["directions_url"] = result["directions"]["url"]
    if open_at is not None:
        result["open_at"] = _open_at(outlet, open_at)
    return result


# -- addresses ------------------------------------------------------------------------------------
# A best match this close to the query resolves alone; one this far ahead of the next does too.
RESOLVED_SCORE, RESOLVED_LEAD = 0.95, 0.15
MIN_QUERY, MAX_QUERY = 3, 200
SIMILARITY_THRESHOLDS = ("0.7", "0.45")
# A place this close to the query is offered though the query does not spell it ("Karlsrhue").
PLACE_SIMILARITY = 0.6
# A street this close to the query's street is offered ("Karlstarße 7" -> "Karlstraße 7"); the
# few closest streets are looked at.
STREET_SIMILARITY, CLOSE_STREETS = 0.5, 3
# The same expression as the GIN indexes (outlets.models.address_key), so that they serve it.
_KEY = spelled_sql("address")
# The same expression in lower case as the btree indexes (outlets.models.address_prefix).
_PREFIX = f"lower({_KEY})"


def _addresses_sql(match: str, order: str = "score DESC, length(address), address") -> str:
    """Outlet and service-point addresses where ``match`` holds for ``{key}`` and ``{prefix}``,
    one row per address, in ``order`` (best word similarity to ``:q`` first)."""
    match = match.format(key=_KEY, prefix=_PREFIX)
    return f"""
    SELECT address, source, lon, lat, score FROM (
        SELECT DISTINCT ON (lower(address)) address, source, lon, lat, score, key FROM (
            SELECT address, 'outlet' AS source, ST_X(geom) AS lon, ST_Y(geom) AS lat,
                   word_similarity(:q, {_KEY}) AS score, {_PREFIX} AS key
              FROM outlets WHERE active AND {match}
            UNION ALL
            SELECT address, 'service_point', ST_X(geom), ST_Y(geom), word_similarity(:q, {_KEY}), {_PREFIX}
              FROM service_points WHERE address IS NOT NULL AND {match}
        ) AS candidates
        ORDER BY lower(address), score DESC
    ) AS distinct_addresses
    ORDER BY {order}
    LIMIT :limit
"""


_ADDRESSES = text(_addresses_sql(":q <% {key}"))
# Addresses that begin with the query (a street's houses for "Karlstr"), which are also
# trigram matches at the close threshold: a btree range instead of every address that shares
# the town's trigrams.
_PREFIXED = text(_addresses_sql("{prefix} LIKE :prefix AND :q <% {key}"))
# The houses of one street (``:prefix`` is "street %"), those numbered nearest ``:number`` first.
_STREET_NUMBERS = text(_addresses_sql(
    "{prefix} LIKE :prefix",
    order="abs(substring(substr(key, length(:street) + 2) FROM '^[0-9]{1,9}')::bigint - :number) NULLS LAST, "
          "length(address), address"))
# Places (migration 0005), each from an index range of address_places: towns the query begins
# (a town of several postcodes as itself, one of a single postcode as that postcode), the
# postcodes of a town it names whole, and postcodes (with their town) it begins.
_PLACE_COLUMNS = "sum_lon / addresses AS lon, sum_lat / addresses AS lat, addresses"
# A place as it is shown: "76133 Karlsruhe", or the town alone when it has no postcode.
_PLACE_LABEL = "postcode || CASE WHEN postcode = '' THEN '' ELSE ' ' END || town"
_PLACES = text(f"""
    WITH towns AS (
        SELECT town, count(*) AS postcodes, sum(addresses) AS addresses, sum(sum_lon) AS sum_lon,
               sum(sum_lat) AS sum_lat
          FROM address_places WHERE address_spelled(town) LIKE :prefix GROUP BY town
    ), hits AS (
        SELECT town AS address, true AS town_row, {_PLACE_COLUMNS} FROM towns WHERE postcodes > 1
        UNION ALL
        SELECT {_PLACE_LABEL}, false, {_PLACE_COLUMNS}
          FROM address_places WHERE address_spelled(town) = :q
        UNION ALL
        SELECT {_PLACE_LABEL}, false, {_PLACE_COLUMNS}
          FROM address_places WHERE address_place_key(postcode, town) LIKE :prefix
        UNION ALL
        SELECT {_PLACE_LABEL}, false, {_PLACE_COLUMNS}
          FROM address_places
         WHERE address_spelled(town) LIKE :prefix AND town IN (SELECT town FROM towns WHERE postcodes = 1)
    )
    SELECT DISTINCT ON (score, town_row, addresses, address) address, 'place' AS source, lon, lat,
           word_similarity(:q, address_spelled(address)) AS score, town_row, addresses
      FROM hits
     ORDER BY score DESC, town_row DESC, addresses DESC, address
     LIMIT :limit
""")
# Towns close to a query that spells no place ("Karlsrhue"), found at pg_trgm's word similarity
# threshold: a town of several postcodes as itself, one of a single postcode as that postcode.
_CLOSE_PLACES = text(f"""
    WITH towns AS (
        SELECT town, count(*) AS postcodes, min(postcode) AS postcode, sum(addresses) AS addresses,
               sum(sum_lon) AS sum_lon, sum(sum_lat) AS sum_lat
          FROM address_places
         WHERE address_spelled(town) IN (SELECT address_spelled(town) FROM address_places
                                           WHERE :q <% address_place_key(postcode, town))
         GROUP BY town
    )
    SELECT address, 'place' AS source, {_PLACE_COLUMNS}, word_similarity(:q, address_spelled(address)) AS score
      FROM (SELECT CASE WHEN postcodes > 1 THEN town ELSE {_PLACE_LABEL} END AS address,
                   addresses, sum_lon, sum_lat FROM towns) AS places
     ORDER BY score DESC, addresses DESC, address
     LIMIT :limit
""")
# Street names close to a misspelt one ("karlstarsse"), as the prefix indexes spell them, best first.
_CLOSE_STREETS = text("""
    SELECT address_spelled(street) AS key, word_similarity(:street, address_spelled(street)) AS score
      FROM address_streets WHERE :street <% address_spelled(street)
     ORDER BY score DESC, addresses DESC, street
     LIMIT :streets
""")
_STREET_AND_NUMBER = re.compile(r"^(\D*\S)\s+(\d{1,6})\s*[a-z]?$")
_STREET_ABBREVIATION = re.compile(r"(str)\.?(?=\s|,|$)", re.IGNORECASE)


def address_query(q: str) -> str:
    """What a customer typed, spelled as the index spells addresses.

    >>> address_query("  Kaiserstr. 12 ")
    'kaiserstrasse 12'
    >>> address_query("Südendstraße 5")
    'sudendstrasse 5'
    """
    q = " ".join(q.split()).lower().replace("ß", "ss").translate(str.maketrans("äöü", "aou"))
    return _STREET_ABBREVIATION.sub("strasse", q)


def _like_prefix(q: str) -> str:
    """A LIKE pattern for the values that begin with ``q``.

    >>> _like_prefix("100% a_b")
    '100\\\\% a\\\\_b%'
    """
    return re.sub(r"([\\%_])", r"\\\1", q) + "%"


def _names_place(address: str, place: str) -> bool:
    """Whether every word of ``place`` (as address_query spells it) is a word of ``address``'s
    part after its first comma.

    >>> _names_place("Kaiserstraße 12, 76133 Karlsruhe", "karlsruhe")
    True
    >>> _names_place("Kaiserstraße 12, 76133 Karlsruhe", "76131")
    False
    """
    words = address_query(address.partition(",")[2]).replace(",", " ").split()
    return all(word in words for word in place.replace(",", " ").split())


def _set_local(connection: Connection, name: str, value: str) -> None:
    """A setting for the rest of this transaction."""
    connection.execute(select(func.set_config(name, value, literal(True))))


def _found(rows: list[Any]) -> list[dict[str, Any]]:
    """Address rows as the search reports them."""
    return [{"address": r.address, "source": r.source, "lon": round(r.lon, 7), "lat": round(r.lat, 7),
             "score": round(float(r.score), 3)} for r in rows]


def suggest_addresses(connection: Connection, q: str, limit: int = 8) -> list[dict[str, Any]]:
    """Places and addresses like ``q`` (outlets' and customers' own), best first, with a point each.

    Each step runs only when the ones before it found nothing; all but the last read index ranges:
    1. places (towns, postcodes) that ``q`` begins or names, then addresses that begin with ``q``
       (btree prefix indexes): "Karlsruhe", "761", "Karlstr", "Karlstraße 7";
    2. with a comma, addresses that begin with its first part in the town after it
       ("Kaiserstraße 12, Karlsruhe");
    3. for a street and a house number, that street's houses numbered nearest it ("Karlstraße 71");
    4. places close to ``q`` ("Karlsrhue", trigram index);
    5. the houses of the streets close to ``q``'s street ("Karlstarße 7", trigram index over
       the street names);
    6. pg_trgm word similarity over every address, close, then looser, for what is left.
    """
    q = " ".join((q or "").split())
    if not MIN_QUERY <= len(q) <= MAX_QUERY:
        raise Invalid(f"q must be {MIN_QUERY} to {MAX_QUERY} characters")
    if any(unicodedata.category(c) == "Cc" for c in q):
        raise Invalid("q holds control characters")
    # The planner cannot estimate how many rows a trigram match keeps and may read a whole table
    # instead of an index; for this search only, it is told not to.
    _set_local(connection, "enable_seqscan", "off")
    q = address_query(q)
    values = {"q": q, "prefix": _like_prefix(q), "limit": limit}
    # word_similarity: how well q matches some run of words in the address (0..1). A close
    # threshold keeps the index's candidates few (a street's houses, not every "...strasse").
    _set_local(connection, "pg_trgm.word_similarity_threshold", SIMILARITY_THRESHOLDS[0])
    found = _found(connection.execute(_PLACES, values).all())
    found += _found(connection.execute(_PREFIXED, values).all())
    head, _, tail = (part.strip() for part in q.partition(","))
    if not found and head and tail:  # "Kaiserstraße 12, Karlsruhe": the street's houses in that town
        rows = _found(connection.execute(_PREFIXED, {**values, "q": head, "prefix": _like_prefix(head),
                                                     "limit": 4 * limit}).all())
        found = [row for row in rows if _names_place(row["address"], tail)]
    street = _STREET_AND_NUMBER.match(head)
    if not found and street:
        found = _found(connection.execute(_STREET_NUMBERS, {
            **values, "street": street[1], "prefix": _like_prefix(street[1] + " "), "number": int(street[2])}).all())
    if not found:
        _set_local(connection, "pg_trgm.word_similarity_threshold", str(PLACE_SIMILARITY))
        found = _found(connection.execute(_CLOSE_PLACES, values).all())
    if not found:
        found = _close_streets(connection, street[1] if street else head, int(street[2]) if street else None, values)
    for threshold in () if found else SIMILARITY_THRESHOLDS:
        _set_local(connection, "pg_trgm.word_similarity_threshold", threshold)
        found = _found(connection.execute(_ADDRESSES, values).all())
        if found:
            break
    _set_local(connection, "enable_seqscan", "on")
    return found[:limit]


def _close_streets(connection: Connection, street: str, number: int | None, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The houses of the streets closest to a misspelt ``street``: numbered nearest ``number``,
    or all of them from the lowest number when there is none."""
    _set_local(connection, "pg_trgm.word_similarity_threshold", str(STREET_SIMILARITY))
    found: list[dict[str, Any]] = []
    for key, _ in connection.execute(_CLOSE_STREETS, {"street": street, "streets": CLOSE_STREETS}).all():
        found += _found(connection.execute(_STREET_NUMBERS, {
            **values, "street": key, "prefix": _like_prefix(key + " "), "number": number or 0}).all())
        if len(found) >= values["limit"]:
            break
    return found


def resolve_address(connection: Connection, q: str) -> tuple[Origin | None, list[dict[str, Any]]]:
    """The point ``q`` names, or None and a "did you mean" list when it is ambiguous.

    ``q`` resolves when it spells one address (whole, or its part before the first comma), or
    when the best match is near-perfect or well ahead of the next. NotFound when nothing is like it.
    """
    wanted = address_query(q)

    def spelled(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The matches that spell ``q`` (they begin with it, so the prefix match finds them all)."""
        head, _, place = (part.strip() for part in wanted.partition(","))
        found = []
        for m in matches:
            first = address_query(m["address"].split(",")[0])
            if wanted in (address_query(m["address"]), first) or (place and head == first and _names_place(m["address"], place)):
                found.append(m)
        return found

    matches = suggest_addresses(connection, q)
    if not matches:
        raise NotFound(f"no address like {q.strip()!r} is known; try a street name and number")
    exact = spelled(matches)
    if len(exact) > 1:
        return None, exact
    best, runner_up = matches[0], (matches[1]["score"] if len(matches) > 1 else 0.0)
    if exact or best["score"] >= RESOLVED_SCORE > runner_up or best["score"] - runner_up >= RESOLVED_LEAD:
        chosen = exact[0] if exact else best
        return Origin(chosen["lon"], chosen["lat"], chosen["address"], chosen["source"]), []
    return None, matches
