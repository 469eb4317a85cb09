"""A pandapower net without coordinates imported through ``network import-pandapower --origin``:
refused without the option, stored flagged and said to be schematic with it, and traced and
switched on exactly as pandapower's ``unsupplied_buses`` says.

The import commits, so the tests run on the committed database (emptied before each test).
"""
from __future__ import annotations

from pathlib import Path

import pandapower
import pandapower.networks
import pytest
from sqlalchemy import text

from tests.accounts import client_as
from tests.integration.test_trace_pandapower import _gridatlas_affected, _pandapower_affected
from topology.importers import read_network_file

pytestmark = pytest.mark.pandapower

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "7.94,48.47"
FLAGGED = ("substations", "nodes", "segments", "devices", "service_points")


@pytest.fixture(scope="module")
def multivoltage(tmp_path_factory):
    """(net, path): pandapower's example_multivoltage, which has no coordinates, saved with to_json."""
    net = pandapower.networks.example_multivoltage()
    path = tmp_path_factory.mktemp("pandapower") / "multivoltage.json"
    pandapower.to_json(net, str(path))
    return net, path


def import_net(app, path: Path, *options: str, language: str = "en_US.UTF-8"):
    """``network import-pandapower`` in a terminal whose locale is ``language``."""
    terminal = {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": language}
    return app.test_cli_runner().invoke(args=["network", "import-pandapower", str(path), *options], env=terminal)


def rows(engine, table: str) -> tuple[int, int]:
    """(rows, schematic rows) of ``table``."""
    with engine.connect() as connection:
        return tuple(connection.execute(text(f"SELECT count(*), count(*) FILTER (WHERE schematic) FROM {table}")).one())


def test_without_origin_the_net_is_refused_naming_the_option(committed_app, committed_engine, multivoltage):
    _net, path = multivoltage
    result = import_net(committed_app, path)
    assert result.exit_code != 0
    assert "layer 'bus', row 0: has no coordinates" in result.output and "--origin LON,LAT" in result.output
    assert "nothing was imported" in result.output
    assert rows(committed_engine, "nodes") == (0, 0)


def test_with_origin_every_element_is_stored_flagged_and_the_cli_says_so(committed_app, committed_engine,
                                                                       multivoltage, tmp_path):
    net, path = multivoltage
    result = import_net(committed_app, path, "--origin", ORIGIN)
    assert result.exit_code == 0, result.output
    assert "The geometry is schematic, not geographic: multivoltage.json has buses without coordinates" \
        in result.output and "around 7.94, 48.47" in result.output
    for table in FLAGGED:
        stored, schematic = rows(committed_engine, table)
        assert stored and schematic == stored, table
    assert rows(committed_engine, "service_points")[0] == len(net.load)
    with committed_engine.connect() as connection:
        west, south, east, north = connection.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM nodes) x")).one()
        lengths = dict(connection.execute(text("SELECT code, length_m FROM segments")).all())
    assert 7.9 < west < east < 7.98 and 48.44 < south < north <= 48.47
    assert lengths["pp:line:0"] == 30_000.0  # pandapower's length_km
    assert 50 < lengths["pp:impedance:0"] < 5_000  # no length of its own: the schematic one

    # The map shows it, and the export keeps it.
    segments = client_as(committed_app, "dispatcher").get("/api/network/segments").get_json()["features"]
    assert len(segments) == len(net.line) + len(net.impedance)
    assert all(feature["properties"]["schematic"] is True for feature in segments)
    exported = tmp_path / "exported.gpkg"
    assert committed_app.test_cli_runner().invoke(args=["network", "export", str(exported)]).exit_code == 0
    frames = read_network_file(exported)
    assert all(getattr(frames, table)["schematic"].all() for table in FLAGGED)


def test_the_note_is_in_the_terminals_language(committed_app, multivoltage):
    if not (ROOT / "translations/zh/LC_MESSAGES/messages.mo").exists():
        pytest.fail("the catalogs are not compiled: run `make install` (pybabel compile -d translations)")
    _net, path = multivoltage
    result = import_net(committed_app, path, "--origin", ORIGIN, language="zh_CN.UTF-8")
    assert result.exit_code == 0, result.output
    assert "几何为示意布局，而非地理位置：multivoltage.json" in result.output


def test_traces_on_the_schematic_net_agree_with_pandapower(committed_app, multivoltage):
    """Every closed switch opened, every line and transformer out of service, one at a time."""
    net, path = multivoltage
    assert import_net(committed_app, path, "--origin", ORIGIN).exit_code == 0
    client = client_as(committed_app, "dispatcher")
    changes = [([switch], [], []) for switch in net.switch.index[net.switch.closed]]
    changes += [([], [line], []) for line in net.line.index] + [([], [], [trafo]) for trafo in net.trafo.index]
    disagreements = [(change, found, expected) for change in changes
                     if (found := _gridatlas_affected(client, *change)) != (expected := _pandapower_affected(net, *change))]
    assert not disagreements
    # Some of them cut customers off: the comparison is not between empty sets only.
    assert sum(bool(_pandapower_affected(net, *change)) for change in changes) >= 10


def test_switching_on_the_schematic_net_restores_what_it_cut(committed_app, multivoltage):
    net, path = multivoltage
    assert import_net(committed_app, path, "--origin", ORIGIN).exit_code == 0
    client = client_as(committed_app, "dispatcher")
    # The line switch whose opening cuts the most loads off (the lowest index among equals).
    closed = net.switch.index[net.switch.closed & (net.switch.et == "l")]
    switch = max(closed, key=lambda index: (len(_pandapower_affected(net, [index], [], [])), -index))
    expected = _pandapower_affected(net, [switch], [], [])
    assert expected
    for action, side in (("open", "lost"), ("close", "regained")):
        response = client.post("/api/switching", json={
            "operations": [{"device": f"pp:switch:{switch}", "action": action}], "reason": "schematic drill"})
        assert response.status_code == 201, response.get_json()
        assert {int(code.split(":")[2]) for code in response.get_json()[side]["customers"]} == expected
