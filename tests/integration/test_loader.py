"""The bulk loader on a real PostGIS: valid networks load, bad rows are refused by name."""
from __future__ import annotations

import pytest
from shapely.geometry import LineString
from sqlalchemy import text

from geo.errors import ImportFailed
from tests.networks import feeder_with_tie
from topology.loader import load_network


def _count(connection, table: str) -> int:
    return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_loads_a_drawn_network(connection):
    version = connection.execute(text("SELECT version FROM topology_state")).scalar_one()
    counts = load_network(connection, feeder_with_tie())
    assert counts["nodes"] == 8 and counts["devices"] == 4 and counts["service_points"] == 3
    assert _count(connection, "segments") == 3
    tie = connection.execute(text("SELECT normal_state::text, current_state::text FROM devices WHERE code='TIE'")).one()
    assert tuple(tie) == ("open", "open")
    length = connection.execute(text("SELECT length_m FROM segments WHERE code='s1'")).scalar_one()
    assert 70 < length < 80  # 0.001 degree of longitude at 48.5 N is about 74 m
    assert connection.execute(text("SELECT version FROM topology_state")).scalar_one() == version + 1


@pytest.mark.parametrize(
    "layer, change, reason",
    [
        ("segments", lambda f: f.segments.loc.__setitem__((1, "to_node"), "nowhere"), "not a known nodes code"),
        ("devices", lambda f: f.devices.loc.__setitem__((0, "kind"), "teleporter"), "unknown kind 'teleporter'"),
        ("segments", lambda f: f.segments.loc.__setitem__((2, "geometry"), LineString([(1, 1), (1, 1)])),
         "invalid geometry"),
        ("nodes", lambda f: f.nodes.loc.__setitem__((3, "geometry"), LineString([(1, 1), (2, 2)])),
         "must be a Point"),
        ("service_points", lambda f: f.service_points.loc.__setitem__((1, "code"), "C3"), "appears twice"),
        ("devices", lambda f: f.devices.loc.__setitem__((1, "to_node"), "b"), "same node"),
    ],
)
def test_refuses_bad_rows_by_layer_and_row(engine, layer, change, reason):
    frames = feeder_with_tie()
    change(frames)
    with engine.connect() as connection:
        before = {t: _count(connection, t) for t in ("nodes", "segments", "devices", "service_points")}
    with pytest.raises(ImportFailed) as refused:
        with engine.begin() as connection:
            load_network(connection, frames)
    assert refused.value.layer == layer
    assert reason in refused.value.reason
    assert isinstance(refused.value.row, int) and refused.value.row >= 1
    with engine.connect() as connection:
        after = {t: _count(connection, t) for t in before}
    assert after == before


def test_refuses_codes_already_stored(connection):
    load_network(connection, feeder_with_tie())
    with pytest.raises(ImportFailed, match="already exists"):
        load_network(connection, feeder_with_tie())
