"""/openapi.json: every route has a contract, its path parameters and its security come from the
route itself, and /docs shows it from our own static files under the site's CSP."""
from __future__ import annotations

import re

import pytest
import schemathesis
from flask import Flask

from app import create_app
from geo.auth import PUBLIC, access_of, allow
from geo.openapi import contract_of, openapi_document


@pytest.fixture(scope="module")
def app() -> Flask:
    """The app without a database: neither page below needs one."""
    return create_app({"TESTING": True, "DATABASE_URL": "postgresql://nobody@/no-such-database", "BASEMAP_URL": "none"})


@pytest.fixture(scope="module")
def document(app) -> dict:
    return app.test_client().get("/openapi.json").get_json()


def _routes(app):
    return [(rule, method) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]


def _operation(document: dict, rule, method: str) -> dict:
    path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
    return document["paths"][path][method.lower()]


def test_every_route_declares_its_contract(app):
    assert [rule.endpoint for rule, _ in _routes(app) if contract_of(app, rule.endpoint) is None] == []


def test_a_route_without_a_contract_is_flagged():
    bare = create_app({"TESTING": True, "DATABASE_URL": "postgresql://nobody@/no-such-database"})
    bare.add_url_rule("/bare", "bare", allow(PUBLIC)(lambda: "bare"))
    assert contract_of(bare, "bare") is None
    assert openapi_document(bare)["paths"]["/bare"]["get"]["x-contract-missing"] is True


def test_the_document_is_valid_openapi_3_1(document):
    schemathesis.openapi.from_dict(document).validate()  # raises on a document off the OpenAPI 3.1 schema


def test_the_document_has_every_route_and_nothing_else(app, document):
    expected = {(re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method.lower()) for rule, method in _routes(app)}
    found = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert found == expected
    assert document["openapi"] == "3.1.0"
    assert "/static/{filename}" not in document["paths"]


def test_security_follows_the_declared_roles(app, document):
    for rule, method in _routes(app):
        operation, roles = _operation(document, rule, method), access_of(app, rule.endpoint)
        assert operation["x-roles"] == sorted(roles)
        if PUBLIC in roles:
            assert operation["security"] == [], rule.rule
        else:
            assert operation["security"] == [{"bearerAuth": []}, {"cookieAuth": []}], rule.rule
            assert "403" in operation["responses"] and "401" in operation["responses"]
            assert ", ".join(sorted(roles)) in operation["description"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["cookieAuth"]["in"] == "cookie" and schemes["cookieAuth"]["name"] == "gridatlas_session"


def test_path_parameters_come_from_the_url_rule(document):
    revoke = document["paths"]["/api/admin/tokens/{token_id}"]["delete"]
    assert revoke["parameters"] == [{"name": "token_id", "in": "path", "required": True, "description": "",
                                     "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}]
    layer = document["paths"]["/api/network/{layer}"]["get"]["parameters"][0]
    assert "service_points" not in layer["schema"]["enum"] and "segments" in layer["schema"]["enum"]


def test_errors_are_problems_and_bodies_document_their_refusals(document):
    booking = document["paths"]["/api/bookings"]["post"]
    for status in ("400", "409", "413", "415", "422", "429", "503"):
        assert booking["responses"][status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, status
    assert booking["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BookingBody"}
    assert "Location" in booking["responses"]["201"]["headers"]
    assert {"title", "status", "detail"} <= set(document["components"]["schemas"]["Problem"]["required"])


def test_query_parameters_come_from_the_models(document):
    nearest = {p["name"]: p for p in document["paths"]["/api/outlets/nearest"]["get"]["parameters"]}
    assert set(nearest) == {"lon", "lat", "q", "n", "service", "open"}
    assert nearest["lon"]["schema"] == {"type": "number", "minimum": -180, "maximum": 180}
    assert nearest["n"]["required"] is False


def test_the_docs_page_uses_our_own_swagger_ui_and_a_nonced_script(app):
    response = app.test_client().get("/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    assert '<script src="/static/vendor/swagger-ui-bundle.js">' in page
    assert 'href="/static/vendor/swagger-ui.css"' in page
    inline = re.findall(r"<script(?![^>]*src=)([^>]*)>", page)
    assert inline and all(f'nonce="{nonce}"' in attributes for attributes in inline)
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
