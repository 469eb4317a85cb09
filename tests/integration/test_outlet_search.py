"""Nearest outlets (KNN + geodesic metres + opening state) and address search on a real PostGIS."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import time_machine
from pyproj import Geod
from sqlalchemy import text

from geo.addresses import suggest_addresses
from outlets.search import Origin, nearest_parameters, nearest_query
from tests.networks import feeder_with_tie
from tests.outlet_data import CENTRE, add_outlet, days_ahead, local, nearest_answers
from topology.loader import load_network

UTC = timezone.utc
GEOD = Geod(ellps="WGS84")
# (code, metres east, metres north, hours, services)
LAYOUT = [
    ("NEAR", 150, 0, "Mo-Su 08:00-20:00", {"billing": 1}),
    ("NIGHT", 0, 600, "Mo-Su 22:00-06:00", {"billing": 1, "meter": 1}),
    ("UNKNOWN", -900, -900, None, {"meter": 1}),
    ("FAR", 4000, 3000, "Mo-Fr 09:00-17:00", {"complaints": 2}),
]


def _place(east_m: float, north_m: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(CENTRE[0], CENTRE[1], 90, east_m)
    lon, lat, _ = GEOD.fwd(lon, lat, 0, north_m)
    return lon, lat


@pytest.fixture()
def town(connection):
    """Four outlets around the centre; returns {code: (lon, lat)}."""
    places = {}
    for code, east, north, hours, services in LAYOUT:
        places[code] = _place(east, north)
        add_outlet(connection, code, lon=places[code][0], lat=places[code][1], hours=hours, services=services)
    return places


def test_nearest_first_with_geodesic_metres(connection, town):
    found = nearest_answers(connection, Origin(*CENTRE), datetime.now(UTC), n=4)
    assert [o["code"] for o in found] == ["NEAR", "NIGHT", "UNKNOWN", "FAR"]
    for outlet in found:
        _, _, metres = GEOD.inv(CENTRE[0], CENTRE[1], *town[outlet["code"]])
        assert outlet["distance_m"] == pytest.approx(metres, abs=0.2)
    assert found[0]["travel"] == {"walking_min": 3, "driving_min": 4}
    assert "destination=" in found[0]["directions_url"] and "origin=" in found[0]["directions_url"]


def test_the_ranking_holds_at_high_latitude_where_degrees_mislead(connection):
    # At 70 N a degree of longitude is a third of a degree of latitude: planar KNN on degrees
    # would pick WEST (0.010 deg away) over NORTH (0.006 deg), which is three times as far.
    add_outlet(connection, "WEST", lon=20.0 - 0.010, lat=70.0, timezone="Europe/Oslo", phone=None)
    add_outlet(connection, "NORTH", lon=20.0, lat=70.006, timezone="Europe/Oslo", phone=None)
    found = nearest_answers(connection, Origin(20.0, 70.0), datetime.now(UTC), n=1)
    assert found[0]["code"] == "WEST" and found[0]["distance_m"] == pytest.approx(381, abs=2)


def test_filters_by_service(connection, town):
    found = nearest_answers(connection, Origin(*CENTRE), datetime.now(UTC), n=5, service="meter")
    assert [o["code"] for o in found] == ["NIGHT", "UNKNOWN"]


def test_open_filter_keeps_open_and_unknown_outlets(connection, town):
    evening = local(days_ahead(2), 23)  # the night counter is open, the day ones closed
    found = nearest_answers(connection, Origin(*CENTRE), datetime.now(UTC), n=5, open_at=evening)
    assert [(o["code"], o["open_at"]) for o in found] == [("NIGHT", True), ("UNKNOWN", None)]
    unknown = found[1]
    assert unknown["hours_known"] is False and unknown["open_now"] is None and unknown["today"]["known"] is False


def test_a_time_without_offset_is_each_outlets_wall_clock(connection, town):
    add_outlet(connection, "NEWYORK", lon=CENTRE[0] + 0.001, lat=CENTRE[1], timezone="America/New_York",
               hours="Mo-Su 08:00-20:00", phone=None)
    day = days_ahead(2)
    weekday = {"FAR"} if day.weekday() < 5 else set()

    def open_codes(at):
        return {o["code"] for o in nearest_answers(connection, Origin(*CENTRE), datetime.now(UTC), n=10, open_at=at)}

    # Noon on each outlet's own clock: New York's desk is open too.
    assert open_codes(datetime.combine(day, datetime.min.time()).replace(hour=12)) == \
        {"NEAR", "NEWYORK", "UNKNOWN"} | weekday
    # Noon in Berlin is 06:00 in New York.
    assert open_codes(local(day, 12)) == {"NEAR", "UNKNOWN"} | weekday


def test_opening_state_in_local_time(connection, town):
    monday_noon = local(days_ahead(7 - days_ahead(0).weekday()), 12)
    near, night = nearest_answers(connection, Origin(*CENTRE), monday_noon, n=2)
    assert near["open_now"] is True and near["closes_at"] == local(monday_noon.date(), 20).isoformat()
    assert night["open_now"] is False and night["next_opening"] == local(monday_noon.date(), 22).isoformat()
    assert near["today"]["hours"] == [{"opens": "08:00", "closes": "20:00", "overnight": False}]
    assert night["today"]["hours"][0]["overnight"] is True


def test_retired_outlets_are_not_found(client, connection, town):
    connection.execute(text("UPDATE outlets SET active = false WHERE code = 'NEAR'"))
    assert client.get(f"/api/outlets/nearest?lon={CENTRE[0]}&lat={CENTRE[1]}&n=1").json["outlets"][0]["code"] == "NIGHT"


# NEAR opens 08:00-20:00, NIGHT 22:00-06:00; both offer billing, UNKNOWN does not.
@pytest.mark.parametrize("hour, found", [(12, ["NEAR"]), (23, ["NIGHT"]), (3, ["NIGHT"]), (21, []), (7, [])])
def test_nearest_over_http(client, town, hour, found):
    with time_machine.travel(local(days_ahead(0), hour), tick=False):
        answer = client.get(f"/api/outlets/nearest?lon={CENTRE[0]}&lat={CENTRE[1]}&n=2&service=billing&open=now")
    assert answer.status_code == 200
    body = answer.json
    assert body["origin"]["lon"] == CENTRE[0] and [o["code"] for o in body["outlets"]] == found
    assert all("billing" in o["services"] and o["open_at"] is True and o["open_now"] is True for o in body["outlets"])
    assert all({"code", "services", "distance_m", "open_now", "next_opening", "today", "travel",
                "directions_url"} <= set(o) for o in body["outlets"])


@pytest.mark.parametrize("query, detail", [
    ("lon=8.4", "give both lon and lat"),
    ("", "give lon and lat, or an address q"),
    ("lon=8.4&lat=49&q=Kaiserstraße", "not both"),
    ("lon=east&lat=49", "lon must be a number"),
    ("lon=8.4&lat=91", "lat must be between -90 and 90"),
    ("lon=8.4&lat=49&n=0", "n must be 1..50"),
    ("lon=8.4&lat=49&n=500", "n must be 1..50"),
    ("lon=8.4&lat=49&n=two", "n must be a whole number"),
    ("lon=8.4&lat=49&service=plumbing", "unknown service"),
    ("lon=8.4&lat=49&open=soon", "open must be 'now' or an ISO 8601 time"),
    ("q=ab", "q must be 3 to 200 characters"),
])
def test_bad_queries_are_400(client, query, detail):
    answer = client.get(f"/api/outlets/nearest?{query}")
    assert answer.status_code == 400 and detail in answer.json["detail"]
    assert answer.content_type == "application/problem+json"


def test_the_search_query_uses_the_geography_index(connection, town):
    values = {**nearest_parameters(Origin(*CENTRE)), "limit": 5, "offset": 0}
    query = nearest_query().params(values)
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    # A handful of rows would be read sequentially; the point is that the index can serve the order.
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(connection.execute(text("EXPLAIN " + sql)).scalars())
    assert "Index Scan using ix_outlets_geog" in plan and "Sort" not in plan, plan


# -- addresses -------------------------------------------------------------------------------------
ADDRESSES = {"C3": "Kaiserstraße 120, 76133 Karlsruhe", "C4": "Kaiserallee 12, 76185 Karlsruhe",
             "C6": "Karlstraße 7, 76133 Karlsruhe"}


@pytest.fixture()
def addresses(connection, town):
    """Customers' addresses (service points) next to the outlets' own."""
    load_network(connection, feeder_with_tie())
    for code, address in ADDRESSES.items():
        connection.execute(text("UPDATE service_points SET address = :a WHERE code = :c"), {"a": address, "c": code})
    return {code: connection.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM service_points WHERE code = :c"),
                                     {"c": code}).one() for code in ADDRESSES}


@pytest.mark.parametrize("q", ["Karlstraße 7", "karlstr. 7", "KARLSTRASSE 7", "Karlstrasse 7, 76133 Karlsruhe"])
def test_an_address_resolves_to_a_customers_point(client, addresses, q):
    body = client.get("/api/outlets/nearest", query_string={"q": q, "n": 2}).json
    assert body["origin"]["address"] == ADDRESSES["C6"] and body["origin"]["source"] == "service_point"
    assert (body["origin"]["lon"], body["origin"]["lat"]) == pytest.approx(tuple(addresses["C6"]))
    assert len(body["outlets"]) == 2 and body["outlets"][0]["distance_m"] > 0


def test_an_outlets_own_address_resolves(client, addresses):
    body = client.get("/api/outlets/nearest", query_string={"q": "Kaiserstraße 12"}).json
    assert body["origin"]["source"] == "outlet" and body["origin"]["address"] == "Kaiserstraße 12, 76133 Karlsruhe"


def test_an_ambiguous_address_offers_did_you_mean(client, addresses):
    body = client.get("/api/outlets/nearest", query_string={"q": "Kaiser 12"}).json
    assert body["outlets"] == [] and body["origin"] is None
    offered = [m["address"] for m in body["did_you_mean"]]
    assert {"Kaiserstraße 12, 76133 Karlsruhe", ADDRESSES["C3"], ADDRESSES["C4"]} <= set(offered)
    assert len(offered) == len(set(offered))  # one entry per address, though four outlets share one
    assert all({"lon", "lat", "source"} <= set(m) for m in body["did_you_mean"])


def test_an_unknown_address_is_404(client, addresses):
    answer = client.get("/api/outlets/nearest", query_string={"q": "Qwertzuiopgasse 99"})
    assert answer.status_code == 404 and "no address like" in answer.json["detail"]


def test_suggestions(client, addresses):
    answer = client.get("/api/outlets/addresses", query_string={"q": "kaiserstr"})
    assert answer.status_code == 200
    assert [m["address"] for m in answer.json["addresses"]][:2] == [
        "Kaiserstraße 12, 76133 Karlsruhe", ADDRESSES["C3"]]


@pytest.mark.parametrize("condition, index", [
    ("'karlstrasse' <% translate(replace(address, 'ß', 'ss'), 'ÄÖÜäöü', 'AOUaou')", "ix_addresses_trgm"),
    ("lower(translate(replace(address, 'ß', 'ss'), 'ÄÖÜäöü', 'AOUaou')) LIKE 'karlstrasse%'",
     "ix_addresses_prefix"),
])
def test_the_address_search_uses_its_indexes(connection, addresses, condition, index):
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(connection.execute(text(f"EXPLAIN SELECT address FROM addresses WHERE {condition}")).scalars())
    assert index in plan


def test_a_street_prefix_finds_that_streets_houses_first(connection, addresses):
    # Every address of the town shares "kar", "arl", "rls" with "Karlstr"; the street's own
    # houses come from the prefix index, the best spelled ones first.
    add_outlet(connection, "ALTE", address="Alte Karlstraße 1, 76131 Karlsruhe")
    for number in range(10, 20):
        add_outlet(connection, f"K{number}", address=f"Karlstraße {number}, 76133 Karlsruhe")
    found = [m.address for m in suggest_addresses(connection, "Karlstr")]
    assert found[0] == ADDRESSES["C6"] and len(found) == 8
    assert all(a.startswith("Karlstraße ") for a in found)
    assert suggest_addresses(connection, "Alte Karlstr")[0].address == "Alte Karlstraße 1, 76131 Karlsruhe"



# -- the address index (geo.addresses): addresses, places and streets, kept by triggers (0005, 0006) --
# What the index holds: every customer's address and every active outlet's, recomputed here from
# the tables they come from.
_SEARCHABLE = """SELECT 'service_point' AS source, id, address, geom FROM service_points WHERE address IS NOT NULL
                 UNION ALL SELECT 'outlet', id, address, geom FROM outlets WHERE active"""
def _places(connection) -> dict[tuple[str, str], tuple[int, float, float]]:
    """address_places as {(postcode, town): (addresses, centre lon, centre lat)}."""
    return {(p, t): (n, x / n, y / n) for p, t, n, x, y in connection.execute(
        text("SELECT postcode, town, addresses, sum_lon, sum_lat FROM address_places"))}


def _places_recomputed(connection) -> dict[tuple[str, str], tuple[int, float, float]]:
    """The same, aggregated afresh from every address."""
    return {(p, t): (n, x, y) for p, t, n, x, y in connection.execute(text(f"""
        SELECT coalesce(place[1], ''), place[2], count(*), avg(ST_X(geom)), avg(ST_Y(geom)) FROM (
            SELECT address_place(address) AS place, geom FROM ({_SEARCHABLE}) AS s) AS a
         WHERE place IS NOT NULL GROUP BY 1, 2"""))}


def _same_places(connection) -> None:
    """addresses, address_places and address_streets as a fresh count of every address would have them."""
    query = "SELECT source, {id}, address, ST_AsEWKT(geom) FROM {table} ORDER BY 1, 2"
    assert connection.execute(text(query.format(id="source_id", table="addresses"))).all() == \
        connection.execute(text(query.format(id="id", table=f"({_SEARCHABLE}) AS s"))).all()
    kept, fresh = _places(connection), _places_recomputed(connection)
    assert kept.keys() == fresh.keys()
    for key, (count, lon, lat) in fresh.items():
        assert kept[key][0] == count and kept[key][1:] == pytest.approx((lon, lat), abs=1e-9), key
    streets = dict(connection.execute(text("SELECT street, addresses FROM address_streets")).all())
    assert streets == dict(connection.execute(text(f"""
        SELECT street, count(*) FROM (SELECT address_street(address) AS street FROM ({_SEARCHABLE}) AS s) AS a
         WHERE street IS NOT NULL GROUP BY street""")).all())


def test_places_follow_every_write_to_addresses(connection, addresses):
    places = _places(connection)
    assert places[("76133", "Karlsruhe")][0] == len(LAYOUT) + 2 and places[("76185", "Karlsruhe")][0] == 1
    _same_places(connection)
    for sql in ("UPDATE outlets SET address = 'Marktplatz 1, 76227 Karlsruhe-Durlach' WHERE code = 'NEAR'",
                "UPDATE service_points SET geom = ST_Translate(geom, 0.01, 0) WHERE code = 'C4'",
                "UPDATE outlets SET name = 'Renamed' WHERE code = 'FAR'",  # not an address: nothing moves
                "UPDATE outlets SET active = false WHERE code = 'NIGHT'",  # retired: no longer searched
                "UPDATE outlets SET active = true WHERE code = 'NIGHT'",
                "UPDATE service_points SET address = 'Hauptstraße 3, Ettlingen' WHERE code = 'C3'",
                "DELETE FROM outlet_services WHERE outlet_id = (SELECT id FROM outlets WHERE code = 'FAR')",
                "DELETE FROM outlets WHERE code = 'FAR'",
                "UPDATE service_points SET address = NULL WHERE code = 'C6'"):
        connection.execute(text(sql))
        _same_places(connection)
    assert ("", "Ettlingen") in _places(connection) and ("76227", "Karlsruhe-Durlach") in _places(connection)
    assert connection.execute(text("SELECT addresses FROM address_streets WHERE street = 'Hauptstraße'")).scalar() == 1
    connection.execute(text("TRUNCATE service_points CASCADE"))
    _same_places(connection)
    assert ("", "Ettlingen") not in _places(connection)


@pytest.mark.parametrize("address, place", [
    ("Karlstraße 7, 76133 Karlsruhe", ["76133", "Karlsruhe"]),
    ("Kaiserstraße 12, Karlsruhe", [None, "Karlsruhe"]),
    ("Am Markt 1, 1010 Wien", ["1010", "Wien"]),
    ("Rue de la Paix 3, 75002 Paris 2e", None),  # digits in the town: not read as a place
    ("1 Test Street", None),
])
def test_the_place_of_an_address(connection, address, place):
    assert connection.execute(text("SELECT address_place(:a)"), {"a": address}).scalar_one() == place


def test_a_town_resolves_to_its_centre_and_lists_its_postcodes(client, connection, addresses):
    body = client.get("/api/outlets/nearest", query_string={"q": "karlsruhe", "n": 1}).json
    count, lon, lat = connection.execute(text(
        "SELECT sum(addresses), sum(sum_lon) / sum(addresses), sum(sum_lat) / sum(addresses) FROM address_places "
        "WHERE town = 'Karlsruhe'")).one()
    assert body["origin"]["address"] == "Karlsruhe" and body["origin"]["source"] == "place"
    assert (body["origin"]["lon"], body["origin"]["lat"]) == pytest.approx((lon, lat), abs=1e-6)
    suggested = [m["address"] for m in client.get("/api/outlets/addresses", query_string={"q": "Karlsruhe"}).json["addresses"]]
    assert suggested == ["Karlsruhe", "76133 Karlsruhe", "76185 Karlsruhe"]
    # A town's beginning offers the town, then the streets that begin alike.
    add_outlet(connection, "KARLS", address="Karlsruher Allee 1, 76185 Karlsruhe")
    assert [m.address for m in suggest_addresses(connection, "Karlsr")][:2] == ["Karlsruhe", "Karlsruher Allee 1, 76185 Karlsruhe"]
    # A misspelt town, when no other comes close, is taken for the town.
    body = client.get("/api/outlets/nearest", query_string={"q": "Karlsrhue"}).json
    assert body["origin"]["address"] == "Karlsruhe" and body["origin"]["source"] == "place"


def test_a_postcode_resolves_to_its_place(client, addresses):
    body = client.get("/api/outlets/nearest", query_string={"q": "76185", "n": 1}).json
    assert body["origin"]["address"] == "76185 Karlsruhe"
    assert (body["origin"]["lon"], body["origin"]["lat"]) == pytest.approx(tuple(addresses["C4"]))


def test_a_missing_house_number_offers_the_streets_nearest_numbers(client, connection, addresses):
    for number in (10, 12, 20):
        add_outlet(connection, f"K{number}", address=f"Karlstraße {number}, 76133 Karlsruhe")
    body = client.get("/api/outlets/nearest", query_string={"q": "Karlstraße 11"}).json
    assert body["origin"] is None
    assert [m["address"].split(",")[0] for m in body["did_you_mean"]] == [
        "Karlstraße 10", "Karlstraße 12", "Karlstraße 7", "Karlstraße 20"]


@pytest.mark.parametrize("q, code", [("Kaiserstr. 120, Karlsruhe", "C3"), ("Kaiserallee 12, 76185", "C4"),
                                     ("karlstrasse 7, karlsruhe", "C6")])
def test_a_street_number_and_town_resolve(client, addresses, q, code):
    body = client.get("/api/outlets/nearest", query_string={"q": q, "n": 1}).json
    assert body["origin"]["address"] == ADDRESSES[code]


@pytest.mark.parametrize("address, street", [
    ("Karlstraße 7, 76133 Karlsruhe", "Karlstraße"), ("Am Alten Markt 12a, Wien", "Am Alten Markt"),
    ("Straße des 17. Juni 4", "Straße des 17. Juni"), ("1 Test Street", None), ("Karlsruhe", None),
])
def test_the_street_of_an_address(connection, address, street):
    assert connection.execute(text("SELECT address_street(:a)"), {"a": address}).scalar_one() == street


@pytest.mark.parametrize("q, code", [("Karlstarße 7", "C6"), ("Kiaserstrasse 120", "C3"), ("Kaiseralee 12", "C4")])
def test_a_misspelt_street_offers_the_houses_of_the_streets_it_is_close_to(client, addresses, q, code):
    body = client.get("/api/outlets/nearest", query_string={"q": q}).json
    offered = [m["address"] for m in body["did_you_mean"]] if body["origin"] is None else [body["origin"]["address"]]
    assert ADDRESSES[code] in offered[:3], offered


@pytest.mark.parametrize("kaiser_numbers", [(10, 12, 14, 120), (2, 4, 10, 14, 30)])
def test_the_street_typed_ranks_before_a_street_that_only_rhymes(client, connection, addresses, kaiser_numbers):
    """"Kaiserstraße 12" (the demo city's main street) suggests Kaiserstraße first, never Ackerstraße 12."""
    for number in kaiser_numbers:
        add_outlet(connection, f"KS{number}", address=f"Kaiserstraße {number}, 76133 Karlsruhe")
    for number in (11, 12, 13):
        add_outlet(connection, f"AS{number}", address=f"Ackerstraße {number}, 76133 Karlsruhe")
    for q in ("Kaiserstraße 12", "kaiserstr. 12", "Kaiserstrasse 12"):
        found = [m["address"] for m in client.get("/api/outlets/addresses", query_string={"q": q}).json["addresses"]]
        assert found and found[0].startswith("Kaiserstraße "), (q, found)
        assert all(not a.startswith("Ackerstraße") for a in found[:len(kaiser_numbers)]), (q, found)
    if 12 in kaiser_numbers:
        assert found[0] == "Kaiserstraße 12, 76133 Karlsruhe"
        body = client.get("/api/outlets/nearest", query_string={"q": "Kaiserstraße 12"}).json
        assert body["origin"]["address"] == "Kaiserstraße 12, 76133 Karlsruhe"
