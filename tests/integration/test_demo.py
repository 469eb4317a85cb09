"""The demo city loaded into PostGIS with the bulk loader: counts and invariants in SQL."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from topology.demo import city_for, generate_city
from topology.loader import load_network

CUSTOMERS = 1200


@pytest.fixture(scope="module")
def frames():
    """A small demo city, generated once for the module."""
    return generate_city(CUSTOMERS, seed=3)


@pytest.fixture()
def loaded(connection, frames):
    """The connection with the demo city loaded (rolled back after the test)."""
    counts = load_network(connection, frames)
    return connection, counts


def _scalar(connection, sql: str, **params):
    return connection.execute(text(sql), params).scalar_one()


def test_every_row_is_loaded(loaded, frames):
    connection, counts = loaded
    assert counts == frames.counts()
    for table, rows in counts.items():
        assert _scalar(connection, f"SELECT count(*) FROM {table}") == rows, table
    assert counts["service_points"] == CUSTOMERS


def test_ties_are_open_switches_between_two_feeders(loaded):
    connection, _ = loaded
    ties = connection.execute(text(
        "SELECT d.kind::text AS kind, d.current_state::text AS current, a.feeder_id AS one, b.feeder_id AS other "
        "FROM devices d JOIN nodes a ON a.id = d.from_node_id JOIN nodes b ON b.id = d.to_node_id "
        "WHERE d.normal_state = 'open'")).all()
    assert ties
    assert all(t.kind == "switch" and t.current == "open" and t.one != t.other for t in ties)


def test_segment_lengths_are_plausible_metres(loaded):
    connection, _ = loaded
    row = connection.execute(text(
        "SELECT min(length_m) AS shortest, max(length_m) AS longest, "
        "max(abs(length_m - ST_Length(geom::geography)) / length_m) AS worst FROM segments")).one()
    assert 1 <= row.shortest and row.longest < 2000
    assert row.worst < 0.01, "stored lengths agree with the geodesic length of the geometry"
    lv = _scalar(connection, "SELECT avg(length_m) FROM segments WHERE conductor LIKE 'NAYY%'")
    assert 5 < lv < 100, "house connection spacing along an LV cable"


def test_every_node_is_energised_from_a_source_in_the_normal_state(loaded):
    connection, _ = loaded
    reached = _scalar(connection, """
        WITH RECURSIVE edge AS (
            SELECT from_node_id AS a, to_node_id AS b FROM segments WHERE in_service
            UNION ALL
            SELECT from_node_id, to_node_id FROM devices WHERE in_service AND normal_state = 'closed'
        ), walk(node) AS (
            SELECT node_id FROM sources WHERE in_service
            UNION
            SELECT CASE WHEN e.a = w.node THEN e.b ELSE e.a END
            FROM walk w JOIN edge e ON w.node IN (e.a, e.b)
        )
        SELECT count(*) FROM walk""")
    assert reached == _scalar(connection, "SELECT count(*) FROM nodes")


def test_service_points_hang_on_lv_nodes_inside_their_transformer_area(loaded):
    connection, _ = loaded
    assert _scalar(connection, """
        SELECT count(*) FROM service_points s JOIN nodes n ON n.id = s.node_id
        WHERE n.kind = 'lv' AND n.voltage_kv = 0.4""") == CUSTOMERS
    assert _scalar(connection, """
        SELECT count(*) FROM service_points s JOIN transformer_areas a ON a.id = s.transformer_area_id
        WHERE ST_Contains(a.geom, s.geom)""") == CUSTOMERS
    # The customer's node is fed by the feeder of the area's transformer.
    assert _scalar(connection, """
        SELECT count(*) FROM service_points s JOIN nodes n ON n.id = s.node_id
        JOIN transformer_areas a ON a.id = s.transformer_area_id JOIN devices t ON t.id = a.transformer_id
        WHERE n.feeder_id = t.feeder_id""") == CUSTOMERS
    per_area = connection.execute(text(
        "SELECT min(c), max(c) FROM (SELECT count(*) AS c FROM service_points GROUP BY transformer_area_id) x")).one()
    assert 5 <= per_area[0] and per_area[1] <= 60


def test_feeders_start_with_a_breaker_at_a_substation_busbar(loaded):
    connection, _ = loaded
    rows = connection.execute(text("""
        SELECT f.code, count(d.id) AS breakers, bool_and(n.kind = 'busbar') AS at_busbar,
               bool_and(src.id IS NOT NULL) AS fed, bool_and(src.substation_id = f.substation_id) AS own
        FROM feeders f
        LEFT JOIN devices d ON d.feeder_id = f.id AND d.kind = 'breaker'
        LEFT JOIN nodes n ON n.id = d.from_node_id
        LEFT JOIN sources src ON src.node_id = n.id
        GROUP BY f.code""")).all()
    assert rows and all(r.breakers == 1 and r.at_busbar and r.fed and r.own for r in rows)


def test_everything_lies_in_the_city_bbox(loaded):
    connection, _ = loaded
    west, south, east, north = city_for(CUSTOMERS).bbox
    for table in ("substations", "nodes", "segments", "devices", "transformer_areas", "service_points"):
        outside = _scalar(connection,
                          f"SELECT count(*) FROM {table} WHERE NOT geom @ ST_MakeEnvelope(:w, :s, :e, :n, 4326)",
                          w=west, s=south, e=east, n=north)
        assert outside == 0, table


def test_account_numbers_and_addresses_are_searchable(loaded):
    connection, _ = loaded
    assert _scalar(connection, "SELECT count(DISTINCT account_number) FROM service_points") == CUSTOMERS
    assert _scalar(connection, "SELECT count(*) FROM service_points WHERE address ~ '^[^,]+ [0-9]+, [0-9]{5} Karlsruhe$'") \
        == CUSTOMERS
