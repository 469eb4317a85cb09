"""Grid cells on a real PostGIS: saving checks overlaps, gaps along shared borders and the
territory (each problem with its geometry), versions with author and reason, restore, what a
cell holds (transformer areas split by a border, customers outside every cell), figures, teams
and gaps, import and export (GeoJSON and GeoPackage, all or nothing), and who may do what."""
from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import text

from tests.accounts import client_as
from tests.networks import ORIGIN, STEP, box, two_transformer_areas
from topology.loader import load_network

PROBLEM = "application/problem+json"
X0, Y0 = ORIGIN


# A row of nodes x = 0..10 at y = 0; transformer T1 feeds C1, C2 at (2, -1); T2 feeds C3 at
# (5, -1) and C4 at (7, -1), so that a border at x = 6 splits T2's area.
@pytest.fixture()
def network(connection):
    frames = two_transformer_areas()
    load_network(connection, frames)
    return frames


def planner(app):
    return client_as(app, "planner")


def create(app, code: str, geometry: dict, **extra):
    body = {"code": code, "name": f"Cell {code}", "geometry": geometry, "reason": "drawn", **extra}
    return planner(app).post("/api/cells", json=body)


def test_a_planner_draws_cells_and_each_customer_belongs_to_one(app, network):
    answer = create(app, "W", box(-0.3, -1.3, 6, 1.3), team=[{"name": "Li Wei", "phone": "+86 571 1234", "duty": "manager"}])
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json() == {"code": "W", "version": 1, "deleted": False}
    assert answer.headers["Location"].endswith("/api/cells/W")
    # Before the east cell exists T2's area has C4 outside every cell: the area is W's (rule 2).
    detail = client_as(app, "dispatcher").get("/api/cells/W").get_json()
    assert [a["code"] for a in detail["transformer_areas"]] == ["TA1", "TA2"]
    assert detail["gaps"] == ["TA1", "TA2"] and detail["figures"]["customers"] == 4
    assert create(app, "E", box(6, -1.3, 10.3, 1.3)).status_code == 201
    coverage = planner(app).get("/api/cells/coverage").get_json()
    assert coverage["split_transformer_areas"] == [{"code": "TA2", "cells": {"W": 1, "E": 1}}]
    assert coverage["outside_customers"] == 0 and coverage["source"] == "network"
    layer = planner(app).get("/api/cells").get_json()
    assert {f["id"]: f["properties"]["figures"]["customers"] for f in layer["features"]} == {"W": 3, "E": 1}
    assert {f["key"] for f in layer["figures"]} >= {"customers", "transformer_areas", "outlets", "open_outages",
                                                     "customers_out"}
    # The planner gives the split area to E: its customers follow it.
    answer = planner(app).put("/api/transformer-areas/TA2/cell", json={"cell": "E"})
    assert answer.status_code == 200, answer.get_json()
    layer = planner(app).get("/api/cells").get_json()
    assert {f["id"]: f["properties"]["figures"]["customers"] for f in layer["features"]} == {"W": 2, "E": 2}
    assert planner(app).get("/api/cells/coverage").get_json()["split_transformer_areas"] == []
    # An outage at T1 puts W's two customers of TA1 out; one at B1 all four, in both cells.
    assert client_as(app, "dispatcher").post("/api/outages", json={"device": "T1"}).status_code == 201
    figures = {f["id"]: f["properties"]["figures"] for f in planner(app).get("/api/cells").get_json()["features"]}
    assert (figures["W"]["open_outages"], figures["W"]["customers_out"]) == (1, 2) and "customers_out" not in figures["E"]
    assert client_as(app, "dispatcher").post("/api/outages", json={"device": "B1"}).status_code == 201
    figures = {f["id"]: f["properties"]["figures"] for f in planner(app).get("/api/cells").get_json()["features"]}
    assert (figures["W"]["open_outages"], figures["W"]["customers_out"]) == (2, 2)
    assert (figures["E"]["open_outages"], figures["E"]["customers_out"]) == (1, 2)


def test_an_overlap_is_refused_with_where_it_is_and_nothing_is_saved(app, network):
    assert create(app, "W", box(-0.3, -1.3, 6, 1.3)).status_code == 201
    answer = create(app, "E", box(5.5, -1.3, 10.3, 1.3))
    assert answer.status_code == 422 and answer.mimetype == PROBLEM
    problems = answer.get_json()["problems"]
    assert [(p["kind"], p["other"]) for p in problems] == [("overlap", "W")]
    assert problems[0]["geometry"]["type"] == "Polygon" and problems[0]["area_m2"] > 1000
    assert planner(app).get("/api/cells/E").status_code == 404
    # Half a square metre of digitising noise is tolerated, a sliver 7 cm wide along 440 m is not.
    sliver = 1e-6 / STEP
    assert create(app, "E", box(6 - sliver, -1.3, 10.3, 1.3)).status_code == 422


def test_borders_that_do_not_coincide_leave_a_gap_that_is_reported(app, network):
    assert create(app, "W", box(-0.3, -1.3, 6, 1.3)).status_code == 201
    gap = 0.004  # 0.004 steps of 0.001 degrees: about 0.3 m of longitude at this latitude
    answer = create(app, "E", box(6 + gap, -1.3, 10.3, 1.3))
    assert answer.status_code == 422
    [problem] = answer.get_json()["problems"]
    assert problem["kind"] == "border_gap" and problem["other"] == "W" and problem["area_m2"] > 50
    assert create(app, "E", box(6, -1.3, 10.3, 1.3)).status_code == 201


def test_invalid_shapes_and_the_territory(app, network):
    bowtie = {"type": "Polygon", "coordinates": [[[X0, Y0], [X0 + 0.002, Y0 + 0.002], [X0 + 0.002, Y0],
                                                  [X0, Y0 + 0.002], [X0, Y0]]]}
    answer = planner(app).post("/api/cells/validate", json={"geometry": bowtie})
    assert answer.status_code == 200
    [problem] = answer.get_json()["problems"]
    assert problem["kind"] == "invalid" and problem["geometry"]["type"] == "Point"
    open_ring = box(0, 0, 1, 1)
    open_ring["coordinates"][0].pop()
    answer = create(app, "X", open_ring)
    assert answer.status_code == 422 and answer.get_json()["problems"][0]["kind"] == "not_closed"
    answer = create(app, "X", {"type": "Point", "coordinates": [X0, Y0]})
    assert answer.status_code == 400 and answer.get_json()["field"] == "geometry"
    # Far beyond the network's hull (300 m of margin): outside the territory.
    answer = create(app, "X", box(-0.3, -1.3, 40, 1.3))
    assert [p["kind"] for p in answer.get_json()["problems"]] == ["outside"]
    # An imported territory replaces the hull.
    assert client_as(app, "admin").put("/api/territory", json={"geometry": box(-50, -50, 50, 50)}).status_code == 200
    assert create(app, "X", box(-0.3, -1.3, 40, 1.3)).status_code == 201
    assert client_as(app, None).get("/api/territory").get_json()["source"] == "imported"


def test_a_border_on_the_territory_edge_survives_rounding_to_seven_decimals(app, network):
    """The API writes coordinates with 7 decimals (about 1 cm); a cell whose border follows the
    territory's edge comes back from a page that far off, along kilometres: still inside."""
    assert client_as(app, "admin").put("/api/territory", json={"geometry": box(-50, -50, 50, 50)}).status_code == 200
    rounding = 5e-8 / STEP  # half the last decimal, in grid steps: 0.4 cm of longitude along 9 km
    answer = planner(app).post("/api/cells/validate", json={"geometry": box(-50 - rounding, -40, -40, 40)})
    assert answer.get_json() == {"valid": True, "problems": []}
    # 15 cm outside along the same edge is outside.
    answer = planner(app).post("/api/cells/validate", json={"geometry": box(-50 - 2e-6 / STEP, -40, -40, 40)})
    assert [p["kind"] for p in answer.get_json()["problems"]] == ["outside"]


def test_versions_conflicts_restore_and_delete(app, network):
    assert create(app, "W", box(-0.3, -1.3, 6, 1.3)).status_code == 201
    edit = {"version": 1, "geometry": box(-0.3, -1.3, 5, 1.3), "reason": "moved the border west"}
    assert planner(app).put("/api/cells/W", json=edit).get_json()["version"] == 2
    stale = planner(app).put("/api/cells/W", json={**edit, "name": "Old"})
    assert stale.status_code == 409 and stale.get_json()["version"] == 2
    history = planner(app).get("/api/cells/W/versions").get_json()["versions"]
    assert [(v["version"], v["author"], v["reason"]) for v in history] == [
        (2, "test-planner", "moved the border west"), (1, "test-planner", "drawn")]
    first = planner(app).get("/api/cells/W/versions/1").get_json()
    assert first["geometry"]["coordinates"][0][0][1][0] == pytest.approx(X0 + 6 * STEP)
    restored = planner(app).post("/api/cells/W/versions/1/restore", json={"version": 2, "reason": "back"})
    assert restored.get_json()["version"] == 3
    assert planner(app).delete("/api/cells/W", json={"version": 3, "reason": "merged"}).get_json() == {
        "code": "W", "version": 4, "deleted": True}
    assert planner(app).get("/api/cells/W").status_code == 404
    assert planner(app).get("/api/cells/W/versions").get_json()["versions"][0]["deleted"] is True
    answer = planner(app).post("/api/cells/W/versions/2/restore", json={"reason": "undo the merge"})
    assert answer.get_json()["version"] == 5
    assert planner(app).post("/api/cells/W/versions/4/restore", json={"version": 5, "reason": "x"}).status_code == 422


def test_the_team_names_who_answers_for_each_transformer_area(app, network):
    team = [{"name": "Li Wei", "phone": "+86 571 1234", "duty": "manager"},
            {"name": "Wang Fang", "phone": "+86 571 5678", "duty": "transformer_area_manager",
             "transformer_areas": ["TA1", "TA9"]}]
    assert create(app, "W", box(-0.3, -1.3, 10.3, 1.3), team=team).status_code == 201
    detail = planner(app).get("/api/cells/W").get_json()
    assert detail["transformer_areas"][0]["manager"] == {"name": "Wang Fang", "phone": "+86 571 5678"}
    assert detail["gaps"] == ["TA2"] and detail["listed_elsewhere"] == ["TA9"]
    two_managers = [team[0], {**team[0], "name": "Zhang"}]
    answer = create(app, "X", box(20, 20, 21, 21), team=two_managers)
    assert answer.status_code == 400 and answer.get_json()["field"] == "team"


def test_who_may_do_what(app, network):
    assert create(app, "W", box(-0.3, -1.3, 6, 1.3)).status_code == 201
    body = {"code": "E", "name": "E", "geometry": box(6, -1.3, 10.3, 1.3), "reason": "x"}
    assert client_as(app, None).get("/api/cells").status_code == 401
    assert client_as(app, "crew").get("/api/cells").status_code == 403
    assert client_as(app, "dispatcher").get("/api/cells").status_code == 200
    assert client_as(app, "dispatcher").post("/api/cells", json=body).status_code == 403
    assert client_as(app, "admin").post("/api/cells", json=body).status_code == 403
    assert client_as(app, "planner").put("/api/territory", json={"geometry": box(0, 0, 1, 1)}).status_code == 403
    # The author is the signed-in account; the body cannot name one.
    answer = planner(app).post("/api/cells", json={**body, "author": "someone"})
    assert answer.status_code == 400


def test_import_is_all_or_nothing_and_export_reads_back(app, network, connection):
    features = [{"type": "Feature", "geometry": box(-0.3, -1.3, 6, 1.3), "properties": {"code": "W", "name": "West"}},
                {"type": "Feature", "geometry": box(5, -1.3, 10.3, 1.3), "properties": {"code": "E", "name": "East"}}]
    collection = {"type": "FeatureCollection", "features": features}
    answer = planner(app).post("/api/cells/import?reason=first%20draft", json=collection)
    assert answer.status_code == 422 and answer.get_json()["code"] in ("W", "E")
    assert connection.execute(text("SELECT count(*) FROM grid_cells")).scalar_one() == 0
    features[1]["geometry"] = box(6, -1.3, 10.3, 1.3)
    answer = planner(app).post("/api/cells/import?reason=first%20draft", json=collection)
    assert answer.status_code == 200 and answer.get_json() == {"created": ["W", "E"], "updated": [], "deleted": []}
    gpkg = planner(app).get("/api/cells/export?format=gpkg")
    assert gpkg.status_code == 200 and gpkg.data[:16] == b"SQLite format 3\x00"
    # Read back with replace: W is edited (its name), E deleted since the file leaves it out.
    import geopandas

    frame = geopandas.read_file(io.BytesIO(gpkg.data))
    frame = frame[frame["code"] == "W"].assign(name="West again")
    buffer = io.BytesIO()
    frame.to_file(buffer, driver="GPKG", layer="grid_cells", engine="pyogrio")
    answer = planner(app).post("/api/cells/import?mode=replace&reason=second", data=buffer.getvalue(),
                               content_type="application/geopackage+sqlite3")
    assert answer.get_json() == {"created": [], "updated": ["W"], "deleted": ["E"]}, answer.get_json()
    exported = json.loads(planner(app).get("/api/cells/export").data)
    assert [(f["id"], f["properties"]["name"], f["properties"]["version"]) for f in exported["features"]] == [
        ("W", "West again", 2)]


def test_the_cli_imports_and_exports(app, network, runner, tmp_path):
    path = tmp_path / "cells.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": box(-0.3, -1.3, 10.3, 1.3), "properties": {"code": "ALL", "name": "All"}}]}))
    result = runner.invoke(args=["cells", "import", str(path)])
    assert result.exit_code == 0 and "1 new" in result.output, result.output
    out = tmp_path / "out.gpkg"
    result = runner.invoke(args=["cells", "export", str(out)])
    assert result.exit_code == 0 and out.read_bytes()[:6] == b"SQLite"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": box(-0.3, -1.3, 10.3, 1.3), "properties": {"code": "ALL2", "name": "x"}}]}))
    result = runner.invoke(args=["cells", "import", str(path)])
    assert result.exit_code != 0 and "overlaps cell ALL" in result.output


def test_a_control_zone_given_as_cells_is_the_feeders_of_their_transformers(app, network, connection):
    assert create(app, "W", box(-0.3, -1.3, 6, 1.3)).status_code == 201
    assert create(app, "FAR", box(8, -1.3, 10.3, 1.3)).status_code == 201  # no transformer in it
    admin = client_as(app, "admin")
    answer = admin.patch("/api/admin/accounts/test-dispatcher", json={"control_cells": ["W"]})
    assert answer.status_code == 200 and answer.get_json()["control_cells"] == ["W"]
    me = client_as(app, "dispatcher").get("/api/session").get_json()["principal"]
    assert me["control_feeders"] == ["F1"]
    admin.patch("/api/admin/accounts/test-dispatcher", json={"control_cells": ["FAR"]})
    assert client_as(app, "dispatcher").get("/api/session").get_json()["principal"]["control_feeders"] == []
    # Operating a switch outside the zone is refused, as with a zone of feeders.
    answer = client_as(app, "dispatcher").post("/api/switching", json={"operations": [{"device": "B1", "action": "open"}],
                                                                       "reason": "test"})
    assert answer.status_code == 403


def test_the_demo_citys_cells_tile_the_territory_and_every_area_has_its_manager(connection, app):
    import shapely

    from geo import cell_checks, cells
    from geo.demo import DemoContext
    from topology.cells import add_demo_cells
    from topology.demo import generate_city

    load_network(connection, generate_city(3000, seed=3))
    add_demo_cells(DemoContext(connection, 3000, 3, (0, 0, 0, 0), "demo", lambda message: None))
    held = cells.contents(connection)
    assert len(held.customers) == 4 and sum(held.customers.values()) == 3000 and held.outside == 0
    assert held.split_areas == {}  # each one given to the cell with most of its customers
    for code in held.customers:
        stored = cells.cell(connection, code)
        assert cell_checks.check(connection, code, shapely.geometry.shape(stored.geometry)) == [], code
        with app.test_request_context():
            assert cells.detail(connection, code).gaps == []
    assert cell_checks.coverage(connection)["uncovered"]["features"] == []


def test_parallel_saves_of_overlapping_cells_have_one_winner(committed_app, committed_engine):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    with committed_engine.begin() as connection:
        load_network(connection, two_transformer_areas())
    barrier = threading.Barrier(4)

    def save(index: int):
        client = client_as(committed_app, "planner")
        barrier.wait()
        return client.post("/api/cells", json={"code": f"P{index}", "name": "p", "reason": "race",
                                               "geometry": box(-0.3 + index * 0.2, -1.3, 6 + index * 0.2, 1.3)})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(save, range(4)))
    assert sorted(a.status_code for a in answers) == [201, 422, 422, 422], [a.get_json() for a in answers]
    winner = next(a.get_json()["code"] for a in answers if a.status_code == 201)
    assert all(a.get_json()["problems"][0]["other"] == winner for a in answers if a.status_code == 422)

    def edit(index: int):
        client = client_as(committed_app, "planner")
        barrier.wait()
        return client.put(f"/api/cells/{winner}", json={"version": 1, "name": f"edit {index}", "reason": "race"})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(edit, range(4)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    with committed_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM grid_cell_versions")).scalar_one() == 2


def test_gis_clients_read_the_cells_without_the_teams_phones(app, network):
    team = [{"name": "Li Wei", "phone": "+86 571 1234", "duty": "manager"}]
    assert create(app, "W", box(-0.3, -1.3, 6, 1.3), team=team).status_code == 201
    answer = client_as(app, None).get("/ogc/collections/grid_cells/items")
    assert answer.status_code == 200
    [feature] = answer.get_json()["features"]
    assert feature["id"] == "W" and feature["properties"]["manager"] == "Li Wei"
    assert "571" not in answer.get_data(as_text=True)
    assert client_as(app, None).get("/ogc/collections/grid_cells").get_json()["extent"]["spatial"]["bbox"][0][0] == \
        pytest.approx(X0 - 0.3 * STEP)


def test_the_cells_as_vector_tiles_follow_every_change(app, network):
    import mapbox_vector_tile

    from tests.integration.test_tiles import tile_around

    assert create(app, "W", box(-0.3, -1.3, 6, 1.3)).status_code == 201
    tile = tile_around(X0 + 3 * STEP, Y0, 14)
    url = f"/tiles/grid_cells/{tile.z}/{tile.x}/{tile.y}.mvt"
    answer = client_as(app, None).get(url)
    assert answer.status_code == 200
    [feature] = mapbox_vector_tile.decode(answer.data)["grid_cells"]["features"]
    assert feature["properties"]["code"] == "W" and feature["properties"]["version"] == 1
    etag = answer.headers["ETag"]
    assert client_as(app, None).get(url, headers={"If-None-Match": etag}).status_code == 304
    planner(app).put("/api/cells/W", json={"version": 1, "name": "West", "reason": "renamed"})
    again = client_as(app, None).get(url, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag


def test_customers_outside_every_cell_are_counted_and_placed(app, network):
    assert create(app, "E", box(6, -1.3, 10.3, 1.3)).status_code == 201
    coverage = planner(app).get("/api/cells/coverage").get_json()
    # TA2 lies partly in E, so C3 belongs to E with its area; TA1's two customers lie in no cell.
    assert coverage["outside_customers"] == 2
    assert coverage["outside_points"]["coordinates"] == [[pytest.approx(X0 + 2 * STEP), pytest.approx(Y0 - STEP)]] * 2
    assert planner(app).get("/api/cells/E").get_json()["figures"]["customers"] == 2
    assert coverage["uncovered_m2"] > 100_000 and coverage["uncovered"]["features"]


def test_what_the_cells_hold_is_kept_across_switching_and_read_again_after_a_save(app, network, connection,
                                                                                    monkeypatch):
    from geo import cells
    from topology import cells as held_in

    assert create(app, "W", box(-0.3, -1.3, 6, 1.3)).status_code == 201
    first = cells.contents(connection)
    answer = client_as(app, "dispatcher").post("/api/switching", json={
        "operations": [{"device": "B1", "action": "open"}], "reason": "test"})
    assert answer.status_code == 201, answer.get_json()
    assert cells.contents(connection) is first  # switching moves no customer
    calls = []
    original = held_in._contents
    monkeypatch.setattr(held_in, "_contents", lambda c: calls.append(1) or original(c))
    assert create(app, "E", box(6, -1.3, 10.3, 1.3)).status_code == 201
    assert cells.contents(connection).customers == {"W": 3, "E": 1} and calls == [1]
