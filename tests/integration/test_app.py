"""The application shell: health report, problem+json errors, configuration."""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from geo.config import from_environment
from tests.accounts import HEADERS
from tests.networks import feeder_with_tie
from topology.loader import load_network


ADMIN = HEADERS["admin"]


@pytest.mark.parametrize("role", [None, "crew", "dispatcher", "planner"])
def test_healthz_tells_anyone_but_an_admin_only_whether_the_service_is_healthy(client, connection, role):
    load_network(connection, feeder_with_tie())
    response = client.get("/healthz", headers=HEADERS[role] if role else {})
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("token", ["wrong", "ga_900003_" + "x" * 40, "ga_1_" + "x" * 40])
def test_healthz_refuses_a_token_that_is_not_one(client, connection, token):
    # An unknown token (even one naming the admin's token id with another secret) is refused,
    # not taken for anonymous: an integration with a dead token hears so.
    response = client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert "database" not in response.get_json()


def test_healthz_reports_database_postgis_migrations_and_counts_to_an_admin(app, client, connection):
    load_network(connection, feeder_with_tie())
    response = client.get("/healthz", headers=ADMIN)
    assert response.status_code == 200
    report = response.get_json()
    assert report["database"]["reachable"] is True
    assert report["database"]["postgis_version"].startswith("3.")
    assert report["migrations"]["up_to_date"] is True
    assert report["migrations"]["current"] == report["migrations"]["head"]
    assert report["network"]["nodes"] == 8
    assert report["network"]["service_points"] == 3


def test_healthz_says_when_the_database_is_unreachable(engine):
    from app import create_app
    from geo.health import health_answer

    unreachable = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "BASEMAP_URL": "none"})
    response = unreachable.test_client().get("/healthz")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.get_json() == {"status": "unavailable"}
    # The admin's token is checked in the database, so without one it cannot be: unavailable
    # too, a problem with Retry-After (not a 500, and no report to someone unrecognised).
    refused = unreachable.test_client().get("/healthz", headers=ADMIN)
    assert refused.status_code == 503 and refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0 and "database" not in refused.get_json()
    # The admin's report, as /healthz answers one, says why.
    with unreachable.app_context():
        body, status, headers = health_answer(full=True)
    assert status == 503 and headers == {"Retry-After": "5"}
    assert body["database"]["reachable"] is False and body["database"]["error"]


def test_unknown_route_is_problem_json(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 404


def test_wrong_method_is_problem_json(client):
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_configuration_from_environment():
    config = from_environment({"DATABASE_URL": "postgresql://u@h/db", "BASEMAP_URL": "none"})
    assert config["DATABASE_URL"] == "postgresql://u@h/db" and config["BASEMAP_URL"] == "none"
    assert from_environment({})["DATABASE_URL"] is None


@pytest.mark.parametrize("method, path, body, field", [
    ("get", "/api/network/segments?bbox=1,2,3", None, "bbox"),
    ("get", "/api/network/segments?limit=0", None, "limit"),
    ("get", "/api/outlets/nearest?lon=8.4&lat=99", None, "lat"),
    ("get", "/api/outlets/nearest?lon=8.4&lat=49&n=x", None, "n"),
    ("get", "/api/outlets/nearest?lon=8.4&lat=49&open=soon", None, "open"),
    ("get", "/api/outlets/addresses?q=ab", None, "q"),
    ("post", "/api/bookings", {"outlet": "OUT-T1", "service": "billing", "start": "2030-01-01T10:00:00+01:00",
                               "name": " ", "phone": "+49 721 1234567", "idempotency_key": "k-1"}, "name"),
    ("post", "/api/switching", {"operations": [{"device": "B1", "action": "toggle"}], "reason": "x"},
     "operations[0].action"),
    ("post", "/api/trace/affected", {"open": "B1"}, "open"),
])
def test_a_refused_field_is_named_in_the_problem(client, method, path, body, field):
    # As a dispatcher, who may switch and trace; the public routes do not mind the token.
    response = getattr(client, method)(path, json=body, headers=HEADERS["dispatcher"])
    assert response.status_code == 400, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["field"] == field


@pytest.mark.parametrize("path", ["/map/network", "/map/outlets", "/api/outlets/services", "/no/such/page"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-eval'" not in policy and "script-src 'self' 'nonce-" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/map/network", "/map/outlets"])
def test_every_inline_script_of_a_map_page_carries_the_responses_nonce(client, path):
    first, second = client.get(path), client.get(path)
    nonce = re.search(r"'nonce-([^']+)'", first.headers["Content-Security-Policy"])[1]
    assert nonce not in second.headers["Content-Security-Policy"]  # a new one for every response
    scripts = re.findall(r"<script\b[^>]*>", first.get_data(as_text=True))
    inline = [tag for tag in scripts if "src=" not in tag]
    assert inline and all(f'nonce="{nonce}"' in tag for tag in inline), scripts


def test_the_base_maps_tile_server_is_allowed_for_images(app, client):
    app.config["BASEMAP_URL"] = "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    assert "img-src 'self' data: blob: https://*.tiles.example.org" in client.get("/map/network").headers[
        "Content-Security-Policy"]


def test_the_demo_keeps_one_random_secret_key_readable_by_its_owner_only(tmp_path):
    from geo.security import demo_secret_key

    key = demo_secret_key(tmp_path / "var")
    assert len(key) == 64 and demo_secret_key(tmp_path / "var") == key
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert demo_secret_key(tmp_path / "other") != key
    # Workers starting at once on a fresh folder all get the one key.
    with ThreadPoolExecutor(8) as pool:
        assert len(set(pool.map(demo_secret_key, [tmp_path / "fresh"] * 32))) == 1
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["secret_key"]


def test_the_tests_app_gets_a_random_secret_key_and_a_deployment_none(app):
    from app import create_app

    assert len(app.config["SECRET_KEY"]) == 64
    deployed = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "BASEMAP_URL": "none",
                           "SECRET_KEY": None})
    assert deployed.config["SECRET_KEY"] is None


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="the tests run on another database than the embedded cluster")
def test_the_demo_on_the_embedded_cluster_signs_with_its_kept_key(monkeypatch):
    from app import create_app
    from geo.cluster import cluster_root

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    demo = create_app({"BASEMAP_URL": "none"})
    assert demo.config["SECRET_KEY"] == (cluster_root().parent / "secret_key").read_text().strip()
    assert create_app({"BASEMAP_URL": "none"}).config["SECRET_KEY"] == demo.config["SECRET_KEY"]
    demo.extensions["engine"].dispose()
