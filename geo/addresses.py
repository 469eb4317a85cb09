"""The address index and its search: customers' and outlets' addresses, their places and streets.

geo owns the index; the packages that hold addresses feed it without knowing it. Statement-level
triggers on their tables (``service_points`` of topology, ``outlets`` of outlets; migration 0006)
copy each address and point into ``addresses``, and triggers on ``addresses`` keep its postcodes,
towns (``address_places``) and street names (``address_streets``), once per statement, a
million-row COPY included. The outlet finder resolves what a customer typed here; so will the
outage status look-up.

Search: places and addresses that begin with the query first (btree prefix indexes), then
pg_trgm word similarity (GIN indexes); a clear best match resolves, near-equal ones come back
as a "did you mean" list.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import BigInteger, Float, Index, Integer, Text, func, literal, literal_column, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base
from geo.errors import Invalid, NotFound
from geo.i18n import _

__all__ = [
    "AddressEntry", "AddressPlace", "AddressStreet", "AddressMatch", "spelled_sql", "address_query",
    "suggest_addresses", "resolve_address", "nearest_address", "sources_at",
]


# -- how the index spells addresses ------------------------------------------------------------
def _spelled(address):
    """ß as ss, umlauts without their dots: how the address search spells addresses."""
    return func.translate(func.replace(address, "ß", "ss"), "ÄÖÜäöü", "AOUaou")


def spelled_sql(column: str) -> str:
    """``_spelled`` as SQL text over ``column``, for hand-written statements that must match the
    address indexes' expression.

    >>> spelled_sql("address")
    "translate(replace(address, 'ß', 'ss'), 'ÄÖÜäöü', 'AOUaou')"
    """
    return str(_spelled(literal_column(column)).compile(dialect=postgresql.dialect(),
                                                        compile_kwargs={"literal_binds": True}))


def _address_key(address):
    """An address as the trigram search compares it (pg_trgm ignores case itself).
    Immutable, so an index can hold it."""
    return _spelled(address).label("address_key")


def _address_prefix(address):
    """The same in lower case, for the search's prefix match (a ``text_pattern_ops`` btree
    serves ``LIKE 'karlstrasse%'``)."""
    return func.lower(_spelled(address)).label("address_prefix")


# -- tables ---------------------------------------------------------------------------------------
class AddressEntry(Base):
    """One searchable address: a customer's service point or an active outlet, with its point.
    Kept by triggers on the tables it comes from (migration 0006); never written by the application."""

    __tablename__ = "addresses"
    __table_args__ = (
        Index("ix_addresses_trgm", _address_key(text("address")), postgresql_using="gin",
              postgresql_ops={"address_key": "gin_trgm_ops"}),
        Index("ix_addresses_prefix", _address_prefix(text("address")),
              postgresql_ops={"address_prefix": "text_pattern_ops"}),
    )

    # 'outlet' or 'service_point': which table the address comes from, and that row's id.
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))


class AddressPlace(Base):
    """A postcode and town of the indexed addresses: how many, and the sums of their coordinates
    (the centre is sum / count). Kept by triggers on ``addresses``; never written by the application."""

    __tablename__ = "address_places"
    __table_args__ = (
        # The address search's place lookups: postcode-and-town and town prefixes, and typos.
        Index("ix_address_places_key", func.address_place_key(text("postcode"), text("town")).label("key"),
              postgresql_ops={"key": "text_pattern_ops"}),
        Index("ix_address_places_town_key", func.address_spelled(text("town")).label("town_key"),
              postgresql_ops={"town_key": "text_pattern_ops"}),
        Index("ix_address_places_trgm", func.address_place_key(text("postcode"), text("town")).label("trgm"),
              postgresql_using="gin", postgresql_ops={"trgm": "gin_trgm_ops"}),
    )

    postcode: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    town: Mapped[str] = mapped_column(Text, primary_key=True)
    addresses: Mapped[int] = mapped_column(Integer)
    sum_lon: Mapped[float] = mapped_column(Float(precision=53))
    sum_lat: Mapped[float] = mapped_column(Float(precision=53))


class AddressStreet(Base):
    """A street name of the indexed addresses and how many addresses it has, for matching a
    misspelt street. Kept by triggers on ``addresses``."""

    __tablename__ = "address_streets"
    __table_args__ = (
        Index("ix_address_streets_trgm", func.address_spelled(text("street")).label("trgm"),
              postgresql_using="gin", postgresql_ops={"trgm": "gin_trgm_ops"}),
    )

    street: Mapped[str] = mapped_column(Text, primary_key=True)
    addresses: Mapped[int] = mapped_column(Integer)


# -- search -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddressMatch:
    """An address or place like the query, with its point and how close it is (0..1)."""

    address: str
    source: str  # 'outlet', 'service_point' or 'place'
    lon: float
    lat: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A best match this close to the query resolves alone; one this far ahead of the next does too.
RESOLVED_SCORE, RESOLVED_LEAD = 0.95, 0.15
MIN_QUERY, MAX_QUERY = 3, 200
SIMILARITY_THRESHOLDS = ("0.7", "0.45")
# A place this close to the query is offered though the query does not spell it ("Karlsrhue").
PLACE_SIMILARITY = 0.6
# A street this close to the query's street is offered ("Karlstarße 7" -> "Karlstraße 7"); the
# few closest streets are looked at.
STREET_SIMILARITY, CLOSE_STREETS = 0.5, 3
# The same expression as the GIN index (_address_key), so that it serves the search.
_KEY = spelled_sql("address")
# The same expression in lower case as the btree index (_address_prefix).
_PREFIX = f"lower({_KEY})"


def _addresses_sql(match: str, order: str = "score DESC, length(address), address") -> str:
    """Indexed addresses where ``match`` holds for ``{key}`` and ``{prefix}``, one row per
    address (an outlet's before a customer's of the same spelling), in ``order`` (best word
    similarity to ``:q`` first)."""
    match = match.format(key=_KEY, prefix=_PREFIX)
    return f"""
    SELECT address, source, lon, lat, score FROM (
        SELECT DISTINCT ON (lower(address)) address, source, ST_X(geom) AS lon, ST_Y(geom) AS lat,
               word_similarity(:q, {_KEY}) AS score, {_PREFIX} AS key
          FROM addresses WHERE {match}
         ORDER BY lower(address), score DESC, source
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
# Places, each from an index range of address_places: towns the query begins (a town of
# several postcodes as itself, one of a single postcode as that postcode), the postcodes of a
# town it names whole, and postcodes (with their town) it begins.
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


def _found(rows: list[Any]) -> list[AddressMatch]:
    """Address rows as the search reports them."""
    return [AddressMatch(r.address, r.source, round(r.lon, 7), round(r.lat, 7), round(float(r.score), 3))
            for r in rows]


def _checked_query(q: str | None) -> str:
    """``q`` with its spaces collapsed; Invalid (field ``q``) when it is too short, too long or
    holds control characters."""
    q = " ".join((q or "").split())
    if not MIN_QUERY <= len(q) <= MAX_QUERY:
        raise Invalid(_("q must be %(min_query)s to %(max_query)s characters", min_query=MIN_QUERY, max_query=MAX_QUERY), field="q")
    if any(unicodedata.category(c) == "Cc" for c in q):
        raise Invalid(_("q holds control characters"), field="q")
    return q


def suggest_addresses(connection: Connection, q: str, limit: int = 8) -> list[AddressMatch]:
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
    q = address_query(_checked_query(q))
    # The planner cannot estimate how many rows a trigram match keeps and may read a whole table
    # instead of an index; for this search only, it is told not to.
    _set_local(connection, "enable_seqscan", "off")
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
        found = [row for row in rows if _names_place(row.address, tail)]
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


def _close_streets(connection: Connection, street: str, number: int | None, values: dict[str, Any]) -> list[AddressMatch]:
    """The houses of the streets closest to a misspelt ``street``: numbered nearest ``number``,
    or all of them from the lowest number when there is none."""
    _set_local(connection, "pg_trgm.word_similarity_threshold", str(STREET_SIMILARITY))
    found: list[AddressMatch] = []
    for key, _score in connection.execute(_CLOSE_STREETS, {"street": street, "streets": CLOSE_STREETS}).all():
        found += _found(connection.execute(_STREET_NUMBERS, {
            **values, "street": key, "prefix": _like_prefix(key + " "), "number": number or 0}).all())
        if len(found) >= values["limit"]:
            break
    return found


def _spelling(wanted: str, matches: list[AddressMatch]) -> list[AddressMatch]:
    """The matches that spell ``wanted`` (address_query's spelling of the query): whole, as their
    part before the first comma, or as that part and a place they name."""
    head, _, place = (part.strip() for part in wanted.partition(","))
    found = []
    for match in matches:
        first = address_query(match.address.split(",")[0])
        if wanted in (address_query(match.address), first) or (place and head == first and _names_place(match.address, place)):
            found.append(match)
    return found


def resolve_address(connection: Connection, q: str) -> tuple[AddressMatch | None, list[AddressMatch]]:
    """The address or place ``q`` names, or None and a "did you mean" list when it is ambiguous.

    ``q`` resolves when it spells one address (whole, or its part before the first comma), or
    when the best match is near-perfect or well ahead of the next. NotFound when nothing is like it.
    """
    matches = suggest_addresses(connection, q)
    if not matches:
        raise NotFound(_("no address like %(q)r is known; try a street name and number", q=q.strip()))
    exact = _spelling(address_query(q), matches)
    if len(exact) > 1:
        return None, exact
    best, runner_up = matches[0], (matches[1].score if len(matches) > 1 else 0.0)
    if exact or best.score >= RESOLVED_SCORE > runner_up or best.score - runner_up >= RESOLVED_LEAD:
        return (exact[0] if exact else best), []
    return None, matches


_NEAREST = text("""
    SELECT address, source, ST_X(geom) AS lon, ST_Y(geom) AS lat, 1.0 AS score FROM addresses
     WHERE source = :source AND NOT (address = ANY(:excluding))
     ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
     LIMIT 1
""")


def nearest_address(connection: Connection, lon: float, lat: float, source: str = "service_point",
                    excluding: Iterable[str] = ()) -> AddressMatch | None:
    """The indexed address of ``source`` nearest to (``lon``, ``lat``), other than those in
    ``excluding``; None when there is none."""
    row = connection.execute(_NEAREST, {"lon": lon, "lat": lat, "source": source,
                                        "excluding": list(excluding)}).first()
    return _found([row])[0] if row is not None else None


# The prefix index's expression finds the address; the plain comparison keeps its exact spelling.
_AT = text(f"SELECT source_id FROM addresses WHERE {_PREFIX} = lower({spelled_sql(':address')}) "
           "AND lower(address) = lower(:address) AND source = :source ORDER BY source_id LIMIT :limit")


def sources_at(connection: Connection, address: str, source: str = "service_point", limit: int = 1000) -> list[int]:
    """The ids of ``source``'s rows (service points, outlets) at exactly ``address`` (ignoring case):
    the flats of a house share one address."""
    return list(connection.execute(_AT, {"source": source, "address": address, "limit": limit}).scalars())
