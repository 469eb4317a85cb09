"""Network files in and out on a real PostGIS: GeoPackage and GeoJSON, export round trip, the CLI.

The CLI commits for real (``engine.begin()``), so its tests run on an app without the rolled-back
test connection and empty the network tables afterwards.
"""
from __future__ import annotations

import json
import math

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, mapping
from sqlalchemy import text

from app import create_app
from geo.errors import ImportFailed
from tests.networks import feeder_with_tie
from topology.importers import export_network, read_network_file, write_network_file
from topology.loader import LAYERS, NetworkFrames, load_network
from topology.models import NETWORK_TABLES

TABLES = [model.__tablename__ for model in NETWORK_TABLES]


def rich_network() -> NetworkFrames:
    """``feeder_with_tie`` plus a transformer with its area, an LV customer and out-of-service elements."""
    frames = feeder_with_tie()
    lv = Point(7.9445, 48.4725)
    frames.nodes = pd.concat([frames.nodes, pd.DataFrame([
        {"code": "lv1", "kind": "lv", "voltage_kv": 0.4, "feeder": "F1", "in_service": True, "geometry": lv},
        {"code": "spare", "kind": "pole", "voltage_kv": 20.0, "feeder": None, "in_service": False,
         "geometry": Point(7.946, 48.4725)}])], ignore_index=True)
    frames.devices = pd.concat([frames.devices, pd.DataFrame([
        {"code": "T1", "kind": "transformer", "name": "Station 1", "from_node": "d", "to_node": "lv1", "feeder": "F1",
         "normal_state": "closed", "current_state": "closed", "rated_kva": 400.0, "geometry": lv},
        {"code": "FU1", "kind": "fuse", "from_node": "d", "to_node": "spare", "feeder": "F1", "normal_state": "closed",
         "current_state": "open", "in_service": False, "geometry": Point(7.946, 48.4725)}])], ignore_index=True)
    frames.transformer_areas = pd.DataFrame([{"code": "TA1", "name": "Area 1", "transformer": "T1",
                                              "geometry": lv.buffer(0.001, quad_segs=2)}])
    frames.service_points = pd.concat([frames.service_points, pd.DataFrame([
        {"code": "C9", "account_number": "000123", "name": "Müller, Anna", "phone": "+49 781 1234",
         "address": "Hauptstraße 1\n77652 Offenburg", "node": "lv1", "transformer_area": "TA1", "in_service": True,
         "geometry": Point(7.9446, 48.4726)}])], ignore_index=True)
    frames.segments.loc[0, "conductor"] = "NA2XS2Y 1x150"
    frames.segments.loc[1, "length_m"] = 123.5
    return frames


def feature_collection(frames: NetworkFrames) -> dict:
    """``frames`` as one GeoJSON FeatureCollection, each feature with its ``layer`` property."""
    features = []
    for name, frame in frames.items():
        for record in frame.to_dict("records"):
            geometry = record.pop("geometry", None)
            properties = {key: None if isinstance(value, float) and math.isnan(value) else value
                          for key, value in record.items()}
            features.append({"type": "Feature", "properties": {"layer": name, **properties},
                             "geometry": mapping(geometry) if geometry is not None else None})
    return {"type": "FeatureCollection", "features": features}


def comparable(frames: NetworkFrames) -> dict[str, pd.DataFrame]:
    """Each layer with geometries as WKB, so that frames can be compared with pandas."""
    out = {}
    for name, frame in frames.items():
        frame = frame.reset_index(drop=True)
        if "geometry" in frame.columns:
            frame = frame.assign(geometry=shapely.to_wkb(frame["geometry"].to_numpy()))
        out[name] = frame
    return out


def assert_same_content(left: NetworkFrames, right: NetworkFrames) -> None:
    for (name, a), b in zip(comparable(left).items(), comparable(right).values()):
        pd.testing.assert_frame_equal(a, b, obj=name)


def count(connection, table: str) -> int:
    return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_geopackage_has_one_layer_per_table_and_reads_back(tmp_path):
    path = tmp_path / "network.gpkg"
    counts = write_network_file(rich_network(), path)
    assert counts["devices"] == 6 and counts["transformer_areas"] == 1
    import pyogrio

    layers = dict(pyogrio.list_layers(path))
    assert set(layers) == set(LAYERS) and layers["feeders"] is None and layers["segments"] == "LineString"
    frames = read_network_file(path)
    assert frames.counts() == counts
    fuse = frames.devices.set_index("code").loc["FU1"]
    assert (fuse["kind"], fuse["normal_state"], fuse["current_state"], bool(fuse["in_service"])) == \
        ("fuse", "closed", "open", False)
    assert frames.service_points.set_index("code").loc["C9", "account_number"] == "000123"


def test_export_then_import_into_an_empty_database_gives_the_same_file(connection, tmp_path):
    load_network(connection, rich_network())
    first, second = tmp_path / "first.gpkg", tmp_path / "second.gpkg"
    exported = export_network(connection, first)
    assert exported["nodes"] == 10 and exported["service_points"] == 4
    for table in reversed(TABLES):
        connection.execute(text(f"DELETE FROM {table}"))
    load_network(connection, read_network_file(first))
    export_network(connection, second)
    assert_same_content(read_network_file(first), read_network_file(second))
    stored = connection.execute(text(
        "SELECT s.length_m, d.current_state::text FROM segments s, devices d WHERE s.code = 's2' AND d.code = 'FU1'"
    )).one()
    assert tuple(stored) == (123.5, "open")


def test_geojson_reads_like_the_geopackage(tmp_path):
    frames = rich_network()
    write_network_file(frames, tmp_path / "network.gpkg")
    (tmp_path / "network.geojson").write_text(json.dumps(feature_collection(frames)), encoding="utf-8")
    from_geojson = read_network_file(tmp_path / "network.geojson")
    from_geopackage = read_network_file(tmp_path / "network.gpkg")
    write_network_file(from_geojson, tmp_path / "again.gpkg")
    assert_same_content(read_network_file(tmp_path / "again.gpkg"), from_geopackage)


def test_other_coordinate_systems_are_reprojected(tmp_path):
    frames = rich_network()
    path = tmp_path / "mercator.gpkg"
    write_network_file(frames, path)
    for name, layer in LAYERS.items():
        if layer.geometry:
            data = gpd.read_file(path, layer=name).to_crs("EPSG:25832")  # ETRS89 / UTM 32N
            data.to_file(path, layer=name, driver="GPKG")
    back = read_network_file(path)
    expected = frames.nodes.set_index("code").loc["c", "geometry"]
    assert back.nodes.set_index("code").loc["c", "geometry"].distance(expected) < 1e-9
    collection = feature_collection(frames)
    for feature in collection["features"]:
        if feature["geometry"]:
            shape = shapely.geometry.shape(feature["geometry"])
            feature["geometry"] = mapping(gpd.GeoSeries([shape], crs=4326).to_crs(25832).iloc[0])
    collection["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25832"}}
    (tmp_path / "utm.geojson").write_text(json.dumps(collection), encoding="utf-8")
    back = read_network_file(tmp_path / "utm.geojson")
    assert back.nodes.set_index("code").loc["c", "geometry"].distance(expected) < 1e-9


def test_unknown_layers_and_missing_columns_are_refused(tmp_path):
    collection = feature_collection(rich_network())
    collection["features"].append({"type": "Feature", "properties": {"layer": "poles"}, "geometry": None})
    (tmp_path / "extra.geojson").write_text(json.dumps(collection), encoding="utf-8")
    with pytest.raises(ImportFailed) as refused:
        read_network_file(tmp_path / "extra.geojson")
    assert (refused.value.layer, refused.value.row) == ("poles", 0) and "unknown layer" in refused.value.reason
    collection = feature_collection(rich_network())
    for feature in collection["features"]:
        if feature["properties"]["layer"] == "segments":
            del feature["properties"]["to_node"]
    (tmp_path / "missing.geojson").write_text(json.dumps(collection), encoding="utf-8")
    with pytest.raises(ImportFailed, match="required column 'to_node' is missing") as refused:
        read_network_file(tmp_path / "missing.geojson")
    assert refused.value.layer == "segments"


def test_a_large_load_restores_every_index_and_constraint(connection):
    def definitions() -> set[tuple[str, str]]:
        return set(connection.execute(text(
            "SELECT tablename, indexdef FROM pg_indexes WHERE tablename = ANY(:tables) UNION "
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text = ANY(:tables)"), {"tables": TABLES}).all())

    before = definitions()
    count_nodes = 1500
    frames = feeder_with_tie()
    points = [Point(7.9 + i * 1e-5, 48.4) for i in range(count_nodes)]
    frames.nodes = pd.concat([frames.nodes, pd.DataFrame(
        {"code": [f"n{i}" for i in range(count_nodes)], "kind": "pole", "geometry": points})], ignore_index=True)
    frames.segments = pd.concat([frames.segments, pd.DataFrame(
        {"code": [f"l{i}" for i in range(1, count_nodes)], "from_node": [f"n{i - 1}" for i in range(1, count_nodes)],
         "to_node": [f"n{i}" for i in range(1, count_nodes)],
         "geometry": [LineString([points[i - 1], points[i]]) for i in range(1, count_nodes)]})], ignore_index=True)
    load_network(connection, frames)
    assert count(connection, "segments") == count_nodes + 2
    assert definitions() == before
    length = connection.execute(text("SELECT length_m FROM segments WHERE code = 'l1'")).scalar_one()
    assert length == pytest.approx(0.739, abs=0.01)  # 1e-5 degree of longitude at 48.4 N


# -- the CLI -------------------------------------------------------------------------------------
@pytest.fixture()
def cli(engine):
    """A CLI runner on an app that commits for real; the network tables are emptied afterwards."""
    application = create_app({"TESTING": True, "DATABASE_URL": engine.url.render_as_string(False),
                              "ENGINE": engine, "BASEMAP_URL": "none"})
    yield application.test_cli_runner()
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM switching_events"))
        for table in reversed(TABLES):
            connection.execute(text(f"DELETE FROM {table}"))


def stored_counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table: count(connection, table) for table in TABLES}


def _break(layer: str, row: int, **values):
    def change(collection: dict) -> None:
        features = [f for f in collection["features"] if f["properties"]["layer"] == layer]
        for key, value in values.items():
            if key == "geometry":
                features[row - 1]["geometry"] = value
            else:
                features[row - 1]["properties"][key] = value
    return change


@pytest.mark.parametrize("change, where, reason", [
    (_break("segments", 2, to_node="nowhere"), "layer 'segments', row 2", "'nowhere' is not a known nodes code"),
    (_break("devices", 3, kind="teleporter"), "layer 'devices', row 3", "unknown kind 'teleporter'"),
    (_break("segments", 3, geometry={"type": "LineString", "coordinates": [[7.9, 48.4], [7.9, 48.4]]}),
     "layer 'segments', row 3", "invalid geometry"),
    (_break("nodes", 4, geometry={"type": "Point", "coordinates": [797000.0, 5370000.0]}), "layer 'nodes', row 4",
     "outside longitude/latitude"),
])
def test_cli_refuses_a_bad_file_by_layer_and_row_and_imports_nothing(cli, engine, tmp_path, change, where, reason):
    collection = feature_collection(rich_network())
    change(collection)
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(collection), encoding="utf-8")
    before = stored_counts(engine)
    result = cli.invoke(args=["network", "import", str(path)])
    assert result.exit_code != 0
    assert where in result.output and reason in result.output and "nothing was imported" in result.output
    assert stored_counts(engine) == before


def test_cli_imports_and_exports_a_geopackage(cli, engine, tmp_path):
    path, exported = tmp_path / "network.gpkg", tmp_path / "exported.gpkg"
    write_network_file(rich_network(), path)
    result = cli.invoke(args=["network", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "10 nodes" in result.output
    result = cli.invoke(args=["network", "export", str(exported)])
    assert result.exit_code == 0, result.output
    written, imported = read_network_file(exported), read_network_file(path)
    # The database knows every segment's length: computed from its geometry where the file had none.
    assert written.segments["length_m"].notna().all() and imported.segments["length_m"].isna().any()
    written.segments, imported.segments = (frame.segments.drop(columns="length_m") for frame in (written, imported))
    assert_same_content(written, imported)
    again = cli.invoke(args=["network", "import", str(path)])
    assert again.exit_code != 0 and "already exists in the database" in again.output


def test_cli_says_when_pandapower_is_missing(cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandapower", None)  # what "not installed" looks like to an import
    path = tmp_path / "net.json"
    path.write_text("{}", encoding="utf-8")
    result = cli.invoke(args=["network", "import-pandapower", str(path)])
    assert result.exit_code != 0 and "pandapower is not installed" in result.output


@pytest.mark.pandapower
def test_cli_imports_mv_oberrhein_near_offenburg_with_its_six_open_switches(cli, engine, tmp_path):
    import pandapower as pp
    import pandapower.networks as pn

    net = pn.mv_oberrhein()
    path = tmp_path / "mv_oberrhein.json"
    pp.to_json(net, str(path))
    result = cli.invoke(args=["network", "import-pandapower", str(path)])
    assert result.exit_code == 0, result.output
    with engine.connect() as connection:
        extent = connection.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM nodes) x"
        )).one()
        opened = connection.execute(text(
            "SELECT code FROM devices WHERE normal_state = 'open' AND current_state = 'open' ORDER BY id")).scalars().all()
        counts = {table: count(connection, table) for table in ("segments", "service_points", "sources")}
    west, south, east, north = extent
    assert 7.6 < west and east < 8.1 and 48.25 < south and north < 48.6  # around Offenburg (7.94 E, 48.47 N)
    assert opened == [f"pp:switch:{index}" for index in net.switch.index[~net.switch.closed]]
    assert len(opened) == 6
    assert counts == {"segments": len(net.line), "service_points": len(net.load), "sources": len(net.ext_grid)}


@pytest.mark.pandapower
def test_a_pandapower_net_with_every_switch_type_stores_its_states(connection):
    from tests.unit.test_pandapower_mapping import tiny_net
    from topology.pandapower_mapping import frames_from_net

    load_network(connection, frames_from_net(tiny_net()))
    states = dict(connection.execute(text(
        "SELECT code, kind::text || ' ' || normal_state::text || ' ' || current_state::text || ' ' || in_service "
        "FROM devices WHERE code LIKE 'pp:switch:%'")).all())
    assert states == {"pp:switch:20": "breaker closed closed true", "pp:switch:21": "switch open open true",
                      "pp:switch:30": "switch closed closed true", "pp:switch:31": "switch open open true",
                      "pp:switch:40": "switch closed closed true", "pp:switch:41": "switch open open true"}
    out_of_service = connection.execute(text(
        "SELECT code FROM nodes WHERE NOT in_service UNION ALL SELECT code FROM segments WHERE NOT in_service "
        "UNION ALL SELECT code FROM service_points WHERE NOT in_service ORDER BY 1")).scalars().all()
    assert out_of_service == ["pp:bus:9", "pp:line:11", "pp:load:3", "pp:load:5"]


@pytest.mark.pandapower
@pytest.mark.parametrize("language, note", [
    ("en_GB.UTF-8", "tiny.json has coordinates for every bus: imported where they are; --origin was not used."),
    ("zh_CN.UTF-8", "tiny.json 中每条母线都有坐标：已按这些坐标导入；未使用 --origin。"),
])
def test_cli_imports_a_net_with_coordinates_where_they_are_whatever_the_origin(cli, engine, tmp_path, language, note):
    import pandapower as pp

    from tests.unit.test_pandapower_mapping import tiny_net

    path = tmp_path / "tiny.json"
    pp.to_json(tiny_net(), str(path))
    terminal = {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": language}
    result = cli.invoke(args=["network", "import-pandapower", str(path), "--origin", "0,0"], env=terminal)
    assert result.exit_code == 0, result.output
    assert note in result.output
    with engine.connect() as connection:
        bus = connection.execute(text("SELECT ST_X(geom), ST_Y(geom), schematic FROM nodes WHERE code = 'pp:bus:0'"))
        assert tuple(bus.one()) == (7.94, 48.47, False)


@pytest.mark.parametrize("origin, reason", [
    ("7.94", "'7.94' is not LON,LAT"), ("7.94,48.47,0", "is not LON,LAT"), ("east,north", "is not LON,LAT"),
    ("180.5,48", "longitude 180.5 is not between -180 and 180"), ("nan,48", "longitude nan is not between"),
    ("7.94,-90.01", "latitude -90.01 is not between -90 and 90"),
])
def test_cli_refuses_an_origin_that_is_no_place(cli, tmp_path, origin, reason):
    path = tmp_path / "net.json"
    path.write_text("{}", encoding="utf-8")
    result = cli.invoke(args=["network", "import-pandapower", str(path), "--origin", origin])
    assert result.exit_code == 2 and "--origin" in result.output and reason in result.output


@pytest.mark.parametrize("change, layer, reason", [
    (lambda f: f.service_points.loc.__setitem__((3, "account_number"), "A-C3"), "service_points",
     "account_number 'A-C3' appears twice"),
    (lambda f: f.transformer_areas.loc.__setitem__((0, "transformer"), "SW1"), "transformer_areas",
     "transformer 'SW1' is a switch, not a transformer"),
    (lambda f: f.nodes.loc.__setitem__((2, "code"), "x" * 121), "nodes", "code is longer than 120 characters"),
    (lambda f: f.segments.loc.__setitem__((1, "length_m"), -1.0), "segments", "length_m must be at least 0"),
])
def test_loader_refuses_what_the_tables_would_refuse(connection, change, layer, reason):
    frames = rich_network()
    change(frames)
    with pytest.raises(ImportFailed) as refused:
        load_network(connection, frames)
    assert refused.value.layer == layer and reason in refused.value.reason


def test_loader_refuses_an_account_number_already_stored(connection):
    load_network(connection, rich_network())
    frames = feeder_with_tie()
    frames.service_points = frames.service_points.assign(code=["X3", "X4", "X6"], node="a")
    for name in ("substations", "feeders", "nodes", "segments", "devices", "sources"):
        setattr(frames, name, getattr(frames, name).iloc[0:0])
    with pytest.raises(ImportFailed, match="account_number 'A-C3' already exists in the database") as refused:
        load_network(connection, frames)
    assert (refused.value.layer, refused.value.row) == ("service_points", 1)


def test_the_minimal_example_of_the_documentation_imports(connection, tmp_path):
    import re
    from pathlib import Path

    document = (Path(__file__).parents[2] / "docs" / "data-format.md").read_text(encoding="utf-8")
    example = re.search(r"```json\n(.*?)```", document, re.S).group(1)
    (tmp_path / "minimal.geojson").write_text(example, encoding="utf-8")
    counts = load_network(connection, read_network_file(tmp_path / "minimal.geojson"))
    assert counts["service_points"] == 1 and counts["devices"] == 1 and counts["segments"] == 1


@pytest.mark.parametrize("name, content, reason", [
    ("empty.geojson", '{"type": "FeatureCollection", "features": []}', "no network layer found"),
    ("list.geojson", "[1, 2]", "expected a GeoJSON FeatureCollection"),
    ("broken.json", "{", "is not JSON"),
    ("text.gpkg", "not a database", "cannot be read as a GeoPackage"),
    ("network.csv", "code\nN1\n", "neither a GeoPackage"),
])
def test_files_that_are_no_network_are_refused(tmp_path, name, content, reason):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ImportFailed) as refused:
        read_network_file(tmp_path / name)
    assert (refused.value.layer, refused.value.row) == ("file", 0) and reason in refused.value.reason
