"""The demo city's outlets: spread over the city at its customers' addresses, varied, deterministic."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from geo.demo import DemoContext, extensions
from outlets.demo import add_demo_outlets
from topology.demo import city_for, generate_city
from topology.loader import load_network

CUSTOMERS = 40_000  # the layout of a city this size; only its first few hundred houses are loaded


@pytest.fixture(scope="module")
def frames():
    """A small demo city (the generator is deterministic, so one build serves every test)."""
    return generate_city(customers=1_000, seed=3)


def _outlets(connection) -> list:
    return connection.execute(text(
        "SELECT o.code, o.name, o.address, o.timezone, o.weekly_hours, o.phone, ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat,"
        " (SELECT count(*) FROM outlet_exceptions e WHERE e.outlet_id = o.id) AS exceptions,"
        " EXISTS (SELECT 1 FROM service_points s WHERE s.address = o.address) AS at_a_customer"
        " FROM outlets o ORDER BY o.code")).all()


def _context(connection, seed: int, customers: int = CUSTOMERS) -> DemoContext:
    city = city_for(1_000)
    return DemoContext(connection=connection, customers=customers, seed=seed, bbox=city.bbox, city=city.name,
                       progress=lambda message: None)


def test_the_demo_registers_the_outlets(app):
    assert "outlets" in [name for name, _ in extensions()]


def test_demo_outlets_stand_at_customers_addresses_with_varied_hours(connection, frames):
    load_network(connection, frames)
    add_demo_outlets(_context(connection, seed=1))
    outlets = _outlets(connection)
    assert len(outlets) == 3  # about one per 15,000 customers
    assert all(o.timezone == "Europe/Berlin" and o.at_a_customer and o.phone.startswith("+49721") for o in outlets)
    assert len({o.name for o in outlets}) == 3 and len({o.address for o in outlets}) == 3
    west, south, east, north = city_for(1_000).bbox
    assert all(west <= o.lon <= east and south <= o.lat <= north for o in outlets)
    hours = [o.weekly_hours for o in outlets]
    assert any(h and any(i > j for d in h.values() for i, j in (iv.split("-") for iv in d)) for h in hours), \
        "no overnight hours"
    assert any(o.exceptions for o in outlets), "no holidays"
    assert connection.execute(text("SELECT count(DISTINCT weekly_hours::text) FROM outlets")).scalar() == 3


def test_demo_outlets_are_deterministic_by_seed(connection, frames):
    load_network(connection, frames)
    add_demo_outlets(_context(connection, seed=7))
    first = _outlets(connection)
    connection.execute(text("DELETE FROM outlets"))
    add_demo_outlets(_context(connection, seed=7))
    assert _outlets(connection) == first
    connection.execute(text("DELETE FROM outlets"))
    add_demo_outlets(_context(connection, seed=8))
    assert _outlets(connection) != first


def test_at_least_two_outlets_in_a_small_city(connection, frames):
    load_network(connection, frames)
    add_demo_outlets(_context(connection, seed=1, customers=1_000))
    assert len(_outlets(connection)) == 2
