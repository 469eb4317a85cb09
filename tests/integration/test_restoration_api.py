"""Restoration plans over HTTP on PostGIS: the drawn network of tests/networks.py
``feeders_with_ties`` loaded and read back (demand, ampacity and ratings with it), the plans as
computed by hand in tests/unit/test_restoration.py, a simulation, the plan executed as one
switching operation, and who may ask."""
from __future__ import annotations

import sys

import pytest

from tests.accounts import client_as
from tests.networks import feeders_with_ties
from topology.loader import load_network

PROBLEM = "application/problem+json"


@pytest.fixture()
def client(app, connection):
    """A dispatcher's client, with the network loaded in the test's rolled-back transaction."""
    load_network(connection, feeders_with_ties())
    return client_as(app, "dispatcher")


def test_the_plans_of_a_fault(client):
    response = client.get("/api/restoration/s1")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["isolate"] == ["B1", "SW1"] and body["faulted"]["customers"] == ["C2"]
    assert body["healthy"]["customers"] == ["C3", "C4"] and body["unrestorable"]["customer_count"] == 0
    best, overloading = body["plans"]
    assert (best["open"], best["close"], best["feasible"]) == (["B1", "SW1"], ["TIE"], True)
    assert best["steps"][-1] == {"action": "close", "device": "TIE", "customer_count": 2, "customers": ["C3", "C4"]}
    # read back from PostGIS: F2's 100 kVA rating and the customers' demands (hand-computed: 86 kW left)
    assert best["transferred_kw"] == pytest.approx(5.0)
    assert best["headroom"]["element"] == "F2" and best["headroom"]["kw"] == pytest.approx(86.0)
    assert (overloading["close"], overloading["feasible"], overloading["headroom"]["element"]) == (["TIE2"], False, "s4")
    assert overloading["reasons"] == ["segment s4 would carry 6.0 kW, over its 3.3 kW"]


def test_reasons_are_in_the_readers_language(client):
    body = client.get("/api/restoration/s1", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_json()
    assert body["plans"][1]["reasons"] == ["线路段 s4 将承载 6.0 kW，超过其容量 3.3 kW"]


def test_simulate_then_execute_the_best_plan(client):
    plan = client.get("/api/restoration/s1").get_json()["plans"][0]
    simulated = client.post("/api/restoration/s1/simulate", json={"open": plan["open"], "close": plan["close"]})
    assert simulated.status_code == 200, simulated.get_data(as_text=True)
    assert simulated.get_json() == {"element": "s1", "isolates": True, "customers_off": 1,
                                    "lost": {"customer_count": 1, "customers": ["C2"]},
                                    "restored": {"customer_count": 0, "customers": []}}
    # Executing it is one atomic switching operation with a reason.
    operations = [{"device": code, "action": "open"} for code in plan["open"]]
    operations += [{"device": code, "action": "close"} for code in plan["close"]]
    done = client.post("/api/switching", json={"operations": operations, "reason": "restoration after a fault on s1"})
    assert done.status_code == 201, done.get_data(as_text=True)
    assert done.get_json()["lost"]["customers"] == ["C2"]
    assert client.get("/api/network/supply").get_json()["deenergised_customers"] == 1


@pytest.mark.parametrize("role, status", [(None, 401), ("crew", 403), ("planner", 200)])
def test_who_may_ask(app, client, role, status):
    caller = client_as(app, role)
    assert caller.get("/api/restoration/s1").status_code == status
    simulated = caller.post("/api/restoration/s1/simulate", json={"open": ["SW1"]})
    assert simulated.status_code == status
    if status != 200:
        assert simulated.mimetype == PROBLEM


@pytest.mark.parametrize("path, body, status", [
    ("/api/restoration/nowhere", None, 404),
    ("/api/restoration/src1", None, 422),
    ("/api/restoration/nowhere/simulate", {"open": []}, 404),
    ("/api/restoration/s1/simulate", {"open": ["nowhere"]}, 404),
    ("/api/restoration/s1/simulate", {"open": ["s2"]}, 422),
    ("/api/restoration/s1/simulate", {"open": "SW1"}, 400),
    ("/api/restoration/s1/simulate", {"shut": []}, 400),
])
def test_problems(client, path, body, status):
    response = client.get(path) if body is None else client.post(path, json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM


@pytest.mark.pandapower
def test_plans_verified_by_a_power_flow(client):
    """``?verify=powerflow`` on the drawn network read back from PostGIS (lengths from the
    geometry, no conductor: the 20 kV fallback cable): the best plan verifies, the one over s4
    (0.1 A) does not, and says why."""
    response = client.get("/api/restoration/s1?verify=powerflow")
    assert response.status_code == 200, response.get_data(as_text=True)
    best, overloading = response.get_json()["plans"]
    flow = best["powerflow"]
    assert flow["converged"] and flow["ok"] and flow["reasons"] == [] and flow["band"] == [0.95, 1.05]
    # F2 after the plan: src2, e, f, c, d; s3 is the most loaded line, at a few percent of its 10 A
    assert flow["buses"] == 5 and flow["max_line_loading"]["element"] == "s3"
    assert 1.0 < flow["max_line_loading"]["percent"] < 10.0
    assert flow["min_voltage"]["bus"] in ("c", "d") and 0.99 < flow["min_voltage"]["pu"] <= 1.0
    assert flow["max_transformer_loading"] is None
    bad = overloading["powerflow"]
    assert bad["converged"] and not bad["ok"] and bad["max_line_loading"]["element"] == "s4"
    assert bad["reasons"][0].startswith("line s4 would be loaded at ")
    assert "powerflow" not in client.get("/api/restoration/s1").get_json()["plans"][0]


@pytest.mark.pandapower
def test_the_band_is_configured_and_the_reasons_translated(app, client):
    app.config["RESTORATION_VOLTAGE_BAND"] = (0.9, 1.1)
    body = client.get("/api/restoration/s1?verify=powerflow", headers={"Accept-Language": "zh-CN"}).get_json()
    assert body["plans"][0]["powerflow"]["band"] == [0.9, 1.1]
    assert body["plans"][1]["powerflow"]["reasons"][0].startswith("线路 s4")


@pytest.mark.parametrize("query", ["verify=loadflow", "verify=", "verify=POWERFLOW"])
def test_a_bad_verify_is_refused(client, query):
    response = client.get(f"/api/restoration/s1?{query}")
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert response.get_json()["field"] == "verify"


def test_without_pandapower_the_power_flow_is_not_implemented(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandapower", None)  # what "not installed" looks like to import
    response = client.get("/api/restoration/s1?verify=powerflow", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 501 and response.mimetype == PROBLEM
    assert "pandapower" in response.get_json()["detail"]
    assert client.get("/api/restoration/s1").status_code == 200  # the plans themselves need no extra
