"""What the contract's fuzzers found (tests/contract.py, make fuzz), each a 500 or an answer breaking
the contract before its fix, kept as a test of its own."""
from __future__ import annotations

import pytest

from tests.accounts import HEADERS
from tests.networks import protected_feeder
from tests.outlet_data import outlet_values
from topology.loader import load_network

HUGE = str(2**80)  # past PostgreSQL's bigint


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.get_json(force=True)


@pytest.mark.parametrize("path", [f"/api/admin/audit?before={HUGE}", "/api/admin/audit?before=²",
                                  "/api/admin/audit?limit=²", f"/admin/audit?before={HUGE}"])
def test_audit_pages_refuse_numbers_the_database_cannot_take(client, path):
    assert _problem(client.get(path, headers=HEADERS["admin"]), 400)["field"] in ("before", "limit")


@pytest.mark.parametrize("before", [HUGE, "²"])
def test_the_switching_log_refuses_numbers_the_database_cannot_take(client, before):
    problem = _problem(client.get(f"/api/switching/log?before={before}", headers=HEADERS["dispatcher"]), 400)
    assert problem["field"] == "before"


def test_nearest_refuses_a_digit_that_is_no_number(client):
    assert _problem(client.get("/api/outlets/nearest?lon=8.4&lat=49&n=²"), 400)["field"] == "n"


def test_an_outlet_whose_exceptions_are_a_number_is_refused_naming_them(client):
    answer = client.post("/api/admin/outlets", json=outlet_values("OUT-X", exceptions=-6.9e80), headers=HEADERS["admin"])
    assert "exceptions must be text" in _problem(answer, 422)["detail"]


@pytest.mark.parametrize("path, body, role", [
    ("/api/switching", r'{"operations": [{"device": "SW\u00002", "action": "open"}], "reason": "r"}', "dispatcher"),
    ("/api/admin/accounts", r'{"name": "someone", "role": "dispatcher", "control_feeders": ["F\u00001"]}', "admin"),
    ("/api/admin/accounts/test-crew/tokens", r'{"label": "\ud800"}', "admin"),
    ("/api/trace/affected", r'{"open": ["\udfff"]}', "planner"),
])
def test_text_postgresql_cannot_store_is_a_400_not_a_500(client, path, body, role):
    answer = client.post(path, data=body, content_type="application/json", headers=HEADERS[role])
    assert "NUL character" in _problem(answer, 400)["detail"]


def test_counts_only_isolation_keeps_the_devices_to_open(client, connection):
    load_network(connection, protected_feeder())
    isolation = client.get("/api/trace/isolation/s2?lists=false", headers=HEADERS["dispatcher"]).get_json()
    assert isolation["devices"] and {"code", "kind", "side"} <= set(isolation["devices"][0])
    assert "customers" not in isolation and "nodes" not in isolation["zone"]


@pytest.mark.parametrize("method, path, role", [
    ("put", "/api/admin/outlets/OUT%00", "admin"), ("delete", "/api/admin/outlets/OUT%00/exceptions/2026-12-01", "admin"),
    ("get", "/api/admin/accounts/a%00b/tokens", "admin"), ("patch", "/api/admin/accounts/a%00b", "admin"),
    ("get", "/api/switching/log?device=SW%002", "dispatcher"), ("get", "/api/admin/audit?account=a%00b", "admin"),
    ("get", "/admin/audit?action=x%00", "admin"),
])
def test_a_nul_in_the_url_is_a_400_not_a_500(client, method, path, role):
    answer = getattr(client, method)(path, json={}, headers=HEADERS[role])
    assert "NUL character" in _problem(answer, 400)["detail"]


def test_a_nul_in_the_sign_in_form_is_a_400_not_a_500(client):
    token = client.get("/api/session").get_json()["csrf_token"]
    answer = client.post("/login", data={"name": "a\x00b", "password": "p" * 12, "csrf_token": token})
    assert _problem(answer, 400)


def test_a_sign_in_naming_a_long_account_is_refused_and_audited(client, connection):
    answer = client.post("/api/session", json={"name": "x" * 100, "password": "p" * 12})
    assert _problem(answer, 401)
    assert connection.exec_driver_sql("SELECT account FROM audit_log ORDER BY id DESC LIMIT 1").scalar() == "x" * 64


def test_a_token_id_past_bigint_is_no_route(client):
    assert _problem(client.delete(f"/api/admin/tokens/{HUGE}", headers=HEADERS["admin"]), 404)
