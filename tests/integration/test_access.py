"""Who may use which route: the role matrix over every route of ``app.url_map``, sessions with
CSRF, API tokens (expiry, revocation, disabled accounts), the ``users`` CLI, the audit log,
rate limits, control zones and the pages' controls."""
from __future__ import annotations

import re
from datetime import timedelta

import psycopg
import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from geo import accounts
from geo.auth import ADMIN, CREW, DISPATCHER, INTEGRATION, PLANNER, PUBLIC, ROLES, access_of, allow
from geo.limits import limiter
from geo.users_cli import demo_accounts
from tests.accounts import BEARER, HEADERS, account_name, client_as
from tests.networks import protected_feeder
from topology.loader import load_network

PROBLEM = "application/problem+json"
CALLERS = (None, *ROLES)  # anonymous, then each role's token
# What each route's declaration must be. A new route fails ``test_every_route_is_in_the_table``
# until it is added here: its access is then a decision someone wrote down twice.
NETWORK = {DISPATCHER, PLANNER}
EXPECTED = {
    "static": {PUBLIC}, "index": {PUBLIC}, "healthz": {PUBLIC}, "choose_language": {PUBLIC},
    "openapi.openapi_json": {PUBLIC}, "openapi.docs": {PUBLIC},
    # OGC API - Features: public routes; a collection with customers' data refuses other roles itself.
    **{f"ogc.{name}": {PUBLIC} for name in (
        "landing", "conformance", "collections", "collection", "collection_items", "collection_item")},
    # The base map: a local tileset's tiles, street names and outlines of public data.
    **{f"basemap.{name}": {PUBLIC} for name in ("tile", "metadata", "streets", "outline")},
    # Vector tiles: public routes; a layer with customers' data refuses other roles itself.
    "tiles.index": {PUBLIC}, "tiles.tile": {PUBLIC},
    "accounts.login_page": {PUBLIC}, "accounts.login": {PUBLIC}, "accounts.logout": {PUBLIC},
    "accounts.audit_page": {ADMIN},
    "accounts_api.who_am_i": {PUBLIC}, "accounts_api.api_login": {PUBLIC}, "accounts_api.api_logout": {PUBLIC},
    "accounts_api.audit_api": {ADMIN}, "accounts_api.account_list": {ADMIN}, "accounts_api.account_create": {ADMIN},
    "accounts_api.account_change": {ADMIN}, "accounts_api.token_list": {ADMIN}, "accounts_api.token_issue": {ADMIN},
    "accounts_api.token_revoke": {ADMIN},
    "topology_views.network_map": {PUBLIC},
    "cells_views.cell_map": {PLANNER, DISPATCHER},
    "topology_api.layer_features": {PUBLIC}, "topology_api.extent": {PUBLIC}, "topology_api.feeders": {PUBLIC},
    "topology_api.service_points": NETWORK,
    "topology_trace.affected": NETWORK, "topology_trace.downstream": NETWORK, "topology_trace.upstream": NETWORK,
    "topology_trace.isolation": NETWORK, "topology_trace.connected": NETWORK, "topology_trace.deenergised": NETWORK,
    "topology_trace.supply": NETWORK, "topology_trace.switching_log": NETWORK,
    "topology_trace.restoration_plans": NETWORK, "topology_trace.restoration_simulate": NETWORK,
    "topology_trace.operate": {DISPATCHER, ADMIN},
    "outlets_views.outlet_map": {PUBLIC},
    **{f"outlets_api.{name}": {PUBLIC} for name in (
        "services", "nearest", "address_suggestions", "outlet_collection", "outlet_detail", "slots",
        "create_booking", "booking_detail", "booking_cancel", "booking_reschedule")},
    **{f"outlets_admin.{name}": {ADMIN} for name in (
        "admin_create", "admin_replace", "admin_retire", "admin_set_exception", "admin_delete_exception",
        "admin_import", "admin_export")},
    "outages_api.file_call": {PUBLIC}, "outages_api.call_detail": {PUBLIC},
    **{f"outages_api.{name}": {PUBLIC} for name in (
        "subscription_create", "subscription_detail", "subscription_confirm", "unsubscribe_detail", "unsubscribe")},
    "outages_views.unsubscribe_page": {PUBLIC}, "outages_views.unsubscribe": {PUBLIC},
    "outages_api.meter_events": {INTEGRATION},
    **{f"outages_api.{name}": {DISPATCHER} for name in (
        "calls_layer", "outage_list", "outage_create", "outage_detail", "outage_transition", "outage_move",
        "outage_etr", "outage_crews", "outage_assign", "outage_release", "crews_layer", "dispatch_search")},
    "outages_api.outage_step": {DISPATCHER, CREW}, "outages_api.crew_status": {CREW, DISPATCHER},
    "outages_api.my_crew": {CREW}, "outages_api.crew_positions": {CREW}, "outages_api.crew_note": {CREW},
    "outages_api.live": {DISPATCHER, PLANNER, CREW},
    "outages_views.dispatch_map": {DISPATCHER}, "outages_views.crew_page": {CREW},
    # "Is my power out?", the public outage map and the open feed: nothing personal (docs/open-feed.md).
    **{f"outages_public.{name}": {PUBLIC} for name in (
        "service_status", "current_outages", "cell_totals", "feed_version", "history", "outage_feature")},
    "outages_public_views.status_page": {PUBLIC}, "outages_public_views.outage_map": {PUBLIC},
    **{f"reliability.{name}": {DISPATCHER, PLANNER, ADMIN} for name in (
        "reliability_json", "reliability_csv", "reliability_page")},
    **{f"cells_api.{name}": {PLANNER, DISPATCHER} for name in (
        "cell_layer", "cell_detail", "coverage", "cell_versions", "cell_version", "export")},
    **{f"cells_api.{name}": {PLANNER} for name in (
        "validate", "cell_create", "cell_update", "cell_delete", "cell_restore", "area_cell", "cell_import")},
    "cells_api.territory": {PUBLIC}, "cells_api.territory_import": {ADMIN},
}
# Sample values for a rule's variables: any value reaches the guard, which runs before the view.
SAMPLES = {"layer": "segments", "code": "X1", "reference": "RAAAAAAAAA", "token": "nothing", "day": "2030-01-02", "name": "nobody", "token_id": "1",
           "number": "1", "filename": "css/gridatlas.css", "z": "0", "x": "0", "y": "0"}


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    """``(endpoint, method, path)`` of every route, its variables filled with samples."""
    found = []
    for rule in app.url_map.iter_rules():
        path = rule.rule
        for variable in rule.arguments:
            path = re.sub(rf"<(?:[^:<>]+:)?{variable}>", SAMPLES.get(variable, "x"), path)
        found += [(rule.endpoint, method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def _guard_refusal(response) -> bool:
    """Whether the answer is the access guard's refusal (401/403 naming the roles, or a sign-in redirect)."""
    if response.status_code == 302 and "/login?next=" in response.headers.get("Location", ""):
        return True
    if response.status_code == 403 and response.mimetype == "text/html":
        return 'data-refused-for="' in response.get_data(as_text=True)  # a page, for a signed-in reader
    if response.status_code not in (401, 403) or response.mimetype != PROBLEM:
        return False
    return "roles" in response.get_json()


def test_every_route_is_in_the_table(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints == set(EXPECTED), "add the new route's access to EXPECTED (and to the README's table)"
    assert {endpoint: set(access_of(app, endpoint) or ()) for endpoint in endpoints} == EXPECTED


def test_the_matrix_calls_every_route(app):
    assert len(_routes(app)) >= len(EXPECTED)


@pytest.mark.parametrize("caller", CALLERS, ids=lambda caller: caller or "anonymous")
def test_role_matrix(app, caller):
    """Every route as every caller: the declared roles pass the guard, everyone else is refused
    (anonymous: 401 from the API, the sign-in page for pages; a role not allowed: 403)."""
    # No cookies: a page's session (with its CSRF token) would make the later writes a CSRF question.
    client = app.test_client(use_cookies=False)
    if caller is not None:
        client.environ_base["HTTP_AUTHORIZATION"] = BEARER[caller]
    wrong = []
    for endpoint, method, path in _routes(app):
        allowed = PUBLIC in EXPECTED[endpoint] or caller in EXPECTED[endpoint]
        response = client.open(path, method=method, json={} if method not in ("GET", "DELETE") else None)
        refused = _guard_refusal(response)
        if allowed and refused or not allowed and not refused:
            wrong.append(f"{method} {path}: {response.status_code} {response.data[:120]!r}")
        elif not allowed:
            expected = (401, 302) if caller is None else (403,)
            if response.status_code not in expected:
                wrong.append(f"{method} {path}: {response.status_code}, expected {expected}")
        if response.status_code >= 500:
            wrong.append(f"{method} {path}: {response.status_code}")
    assert wrong == []


def test_a_route_without_a_declaration_is_refused_to_everyone(app):
    app.add_url_rule("/api/undeclared", "undeclared", lambda: "secret")
    for caller in CALLERS:
        answer = client_as(app, caller).get("/api/undeclared")
        assert answer.status_code == 403 and "declares no access" in answer.get_json()["detail"]


def test_allow_refuses_unknown_roles():
    with pytest.raises(ValueError):
        allow("superuser")
    with pytest.raises(ValueError):
        allow()


# -- tokens ----------------------------------------------------------------------------------------
def _session(connection) -> Session:
    return Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer ga_1_" + "x" * 43, BEARER[ADMIN] + "x"])
def test_an_unknown_token_is_401_not_anonymous(client, header):
    answer = client.get("/api/outlets/services", headers={"Authorization": header})
    assert answer.status_code == 401 and answer.mimetype == PROBLEM
    assert "unknown, expired or revoked" in answer.get_json()["detail"]


def test_expired_revoked_and_disabled_tokens_stop_working(app, client, connection):
    with _session(connection) as session:
        accounts.create_account(session, "integration-1", ADMIN, None)
        tokens = [accounts.issue_token(session, "integration-1", 30) for _ in range(3)]
        session.commit()
    headers = [{"Authorization": f"Bearer {issued.token}"} for issued in tokens]
    assert all(client.get("/api/admin/accounts", headers=h).status_code == 200 for h in headers)
    connection.execute(text("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = :id"),
                       {"id": tokens[0].id})
    with _session(connection) as session:
        accounts.revoke_token(session, tokens[1].id)
        session.commit()
    assert client.get("/api/admin/accounts", headers=headers[0]).status_code == 401
    assert client.get("/api/admin/accounts", headers=headers[1]).status_code == 401
    assert client.get("/api/admin/accounts", headers=headers[2]).status_code == 200
    with _session(connection) as session:
        accounts.set_disabled(session, "integration-1")
        session.commit()
    assert client.get("/api/admin/accounts", headers=headers[2]).status_code == 401


def test_tokens_are_stored_hashed_and_shown_once(client, connection):
    answer = client.post("/api/admin/accounts/test-dispatcher/tokens", json={"expires_days": 7, "label": "phone"},
                         headers=HEADERS[ADMIN])
    assert answer.status_code == 201
    issued = answer.get_json()
    stored = connection.execute(text("SELECT secret_sha256 FROM api_tokens WHERE id = :id"), {"id": issued["id"]}).scalar()
    assert issued["token"].split("_", 2)[2] not in stored and len(stored) == 64
    listed = client.get("/api/admin/accounts/test-dispatcher/tokens", headers=HEADERS[ADMIN]).get_json()["tokens"]
    assert any(t["id"] == issued["id"] and t["label"] == "phone" for t in listed)
    assert "token" not in str(listed).replace("tokens", "")
    assert client.get("/api/network/supply", headers={"Authorization": f"Bearer {issued['token']}"}).status_code == 200
    assert client.delete(f"/api/admin/tokens/{issued['id']}", headers=HEADERS[ADMIN]).status_code == 204
    assert client.get("/api/network/supply", headers={"Authorization": f"Bearer {issued['token']}"}).status_code == 401


# -- sessions and CSRF -----------------------------------------------------------------------------
PASSWORD = "correct horse battery"


@pytest.fixture()
def dispatcher_with_password(connection):
    with _session(connection) as session:
        accounts.create_account(session, "d.wang", DISPATCHER, PASSWORD)
        session.commit()
    load_network(connection, protected_feeder())
    return "d.wang"


def _form_token(client, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _sign_in(client, name: str, password: str, **extra):
    return client.post("/login", data={"name": name, "password": password, "csrf_token": _form_token(client),
                                       "next": "/map/network"}, **extra)


def test_sign_in_sets_a_strict_session_cookie_and_shows_who_is_signed_in(client, dispatcher_with_password):
    answer = _sign_in(client, "d.wang", PASSWORD)
    assert answer.status_code == 303 and answer.headers["Location"] == "/map/network"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("gridatlas_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    who = client.get("/api/session").get_json()
    assert who["principal"]["name"] == "d.wang" and who["principal"]["role"] == DISPATCHER
    page = client.get("/map/network").get_data(as_text=True)
    assert "d.wang · dispatcher" in page and "Sign out" in page


def test_over_https_the_session_cookie_is_secure(client, dispatcher_with_password):
    answer = _sign_in(client, "d.wang", PASSWORD, base_url="https://localhost")
    assert "Secure" in answer.headers["Set-Cookie"]


def test_wrong_passwords_and_unknown_names_get_the_same_answer(client, dispatcher_with_password):
    answers = [_sign_in(client, "d.wang", "wrong password!"), _sign_in(client, "nobody-here", PASSWORD)]
    assert [a.status_code for a in answers] == [401, 401]
    assert len({re.search(r'ga-error[^>]*>([^<]+)<', a.get_data(as_text=True)).group(1) for a in answers}) == 1
    assert client.get("/api/session").get_json()["principal"] is None


def test_the_sign_in_form_needs_its_csrf_token(client, dispatcher_with_password):
    answer = client.post("/login", data={"name": "d.wang", "password": PASSWORD})
    assert answer.status_code == 403 and "CSRF" in answer.get_json()["detail"]


def test_a_session_write_needs_the_csrf_token(client, connection, dispatcher_with_password):
    _sign_in(client, "d.wang", PASSWORD)
    body = {"operations": [{"device": "SW2", "action": "open"}], "reason": "work"}
    refused = client.post("/api/switching", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.get_json()["detail"]
    assert client.post("/api/switching", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert connection.execute(text("SELECT count(*) FROM switching_events")).scalar() == 0
    token = client.get("/api/session").get_json()["csrf_token"]
    done = client.post("/api/switching", json=body, headers={"X-CSRF-Token": token})
    assert done.status_code == 201 and done.get_json()["actor"] == "d.wang"


def test_sign_out_ends_the_session(client, dispatcher_with_password):
    _sign_in(client, "d.wang", PASSWORD)
    token = client.get("/api/session").get_json()["csrf_token"]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/api/session").get_json()["principal"] is None
    assert client.get("/api/network/supply").status_code == 401


def test_a_copy_of_a_signed_out_cookie_signs_nobody_in_and_other_sessions_go_on(app, dispatcher_with_password):
    # A request still running at sign-out (the map's long poll of /api/live) answers with the
    # old cookie, and the browser keeps it: the session it names must have ended on the server.
    browser, other_device = app.test_client(), app.test_client()
    _sign_in(browser, "d.wang", PASSWORD)
    _sign_in(other_device, "d.wang", PASSWORD)
    copy = browser.get_cookie("gridatlas_session").value
    token = browser.get("/api/session").get_json()["csrf_token"]
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
    browser.set_cookie("gridatlas_session", copy)
    assert browser.get("/api/session").get_json()["principal"] is None
    assert browser.get("/api/network/supply").status_code == 401
    assert other_device.get("/api/network/supply").status_code == 200  # signed out here only


def test_a_session_ends_twelve_hours_after_its_sign_in_whatever_its_cookie_says(client, connection,
                                                                               dispatcher_with_password):
    _sign_in(client, "d.wang", PASSWORD)
    expires = connection.execute(text("SELECT expires_at - created_at FROM sign_in_sessions")).scalar_one()
    assert abs(expires - timedelta(hours=12)) < timedelta(minutes=1)  # its now() is the test's transaction start
    assert client.get("/api/network/supply").status_code == 200
    connection.execute(text("UPDATE sign_in_sessions SET expires_at = now() - interval '1 second'"))
    assert client.get("/api/network/supply").status_code == 401


def test_disabling_or_a_new_password_signs_every_session_out(client, connection, dispatcher_with_password):
    _sign_in(client, "d.wang", PASSWORD)
    assert client.get("/api/network/supply").status_code == 200
    with _session(connection) as session:
        accounts.set_password(session, "d.wang", "another long password")
        session.commit()
    assert client.get("/api/network/supply").status_code == 401
    _sign_in(client, "d.wang", "another long password")
    with _session(connection) as session:
        accounts.set_disabled(session, "d.wang")
        session.commit()
    assert client.get("/api/network/supply").status_code == 401
    assert _sign_in(client, "d.wang", "another long password").status_code == 401


def test_json_sign_in_and_out(client, dispatcher_with_password):
    answer = client.post("/api/session", json={"name": "d.wang", "password": PASSWORD})
    assert answer.status_code == 201 and answer.get_json()["principal"]["name"] == "d.wang"
    token = answer.get_json()["csrf_token"]
    assert client.delete("/api/session", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get("/api/session").get_json()["principal"] is None


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_sign_in_never_redirects_off_site(client, dispatcher_with_password, target):
    answer = client.post("/login", data={"name": "d.wang", "password": PASSWORD, "next": target,
                                         "csrf_token": _form_token(client)})
    assert answer.status_code == 303 and answer.headers["Location"] == "/"


def test_an_anonymous_visitor_of_an_admin_page_is_sent_to_sign_in(client):
    answer = client.get("/admin/audit")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?next=/admin/audit")


def test_a_reader_without_the_role_gets_a_page_saying_who_may(client, dispatcher_with_password):
    _sign_in(client, "d.wang", PASSWORD)
    answer = client.get("/admin/audit")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 403 and answer.mimetype == "text/html"
    assert "d.wang · dispatcher" in page and "this page is for: admin" in page and "Sign in as someone else" in page


def test_a_sign_out_and_a_sign_in_name_their_account_and_role_in_the_log(client, dispatcher_with_password):
    _sign_in(client, "d.wang", PASSWORD)
    token = client.get("/api/session").get_json()["csrf_token"]
    client.post("/logout", data={"csrf_token": token})
    entries = client.get("/api/admin/audit", headers=HEADERS[ADMIN]).get_json()["entries"]
    assert [(e["action"], e["account"], e["role"]) for e in entries[:2]] == [
        ("accounts.logout", "d.wang", None), ("accounts.login", "d.wang", DISPATCHER)]


# -- CLI -------------------------------------------------------------------------------------------
def test_the_users_cli_creates_lists_issues_revokes_and_disables(app, runner, connection):
    created = runner.invoke(args=["users", "create", "p.li", "--role", "planner", "--password-stdin"],
                            input="a long enough password\n")
    assert created.exit_code == 0, created.output
    assert "created planner account p.li" in created.output
    too_short = runner.invoke(args=["users", "create", "p.short", "--role", "planner", "--password-stdin"], input="x\n")
    assert too_short.exit_code != 0 and "at least 12 characters" in too_short.output
    twice = runner.invoke(args=["users", "create", "p.li", "--role", "planner", "--password-stdin"],
                          input="a long enough password\n")
    assert twice.exit_code != 0 and "exists already" in twice.output
    issued = runner.invoke(args=["users", "token", "p.li", "--expires-days", "2"])
    assert issued.exit_code == 0
    token = issued.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ga_\d+_[A-Za-z0-9_-]+", token)
    client = app.test_client()
    assert client.get("/api/network/supply", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = runner.invoke(args=["users", "list"]).output
    assert re.search(r"p\.li\s+planner\s+enabled", listed)
    assert runner.invoke(args=["users", "revoke", token.split("_")[1]]).exit_code == 0
    assert client.get("/api/network/supply", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert runner.invoke(args=["users", "disable", "p.li"]).exit_code == 0
    assert re.search(r"p\.li\s+planner\s+disabled", runner.invoke(args=["users", "list"]).output)


def test_demo_accounts_are_made_once_with_random_passwords(connection):
    with _session(connection) as session:
        made = demo_accounts(session)
        again = demo_accounts(session)
        assert [role for _, role, _ in made] == [DISPATCHER, PLANNER, ADMIN, CREW] and again == []
        assert len({password for _, _, password in made}) == 4
        name, _, password = made[0]
        principal, _ = accounts.authenticate(session, name, password)
        assert principal.role == DISPATCHER


# -- audit log -------------------------------------------------------------------------------------
def test_writes_by_accounts_and_refusals_are_audited(client, connection):
    load_network(connection, protected_feeder())
    body = {"operations": [{"device": "SW2", "action": "open"}], "reason": "work"}
    assert client.post("/api/switching", json=body, headers=HEADERS[DISPATCHER]).status_code == 201
    assert client.post("/api/switching", json=body, headers=HEADERS[PLANNER]).status_code == 403
    assert client.post("/api/admin/accounts", json={"name": "crew-7", "role": "crew"},
                       headers=HEADERS[ADMIN]).status_code == 201
    entries = client.get("/api/admin/audit", headers=HEADERS[ADMIN]).get_json()["entries"]
    latest = {(e["account"], e["action"], e["status"]) for e in entries}
    assert {(account_name(DISPATCHER), "topology_trace.operate", 201), (account_name(PLANNER), "topology_trace.operate", 403),
            (account_name(ADMIN), "accounts_api.account_create", 201)} <= latest
    switching = next(e for e in entries if e["status"] == 201 and e["action"] == "topology_trace.operate")
    assert switching["address"] == "127.0.0.1" and switching["detail"]["devices"] == ["SW2"]
    assert switching["detail"]["actions"] == ["open"] and switching["detail"]["reason"] == "work"
    assert switching["token_id"] is not None and switching["method"] == "POST"
    assert client.get("/api/admin/audit", headers=HEADERS[DISPATCHER]).status_code == 403
    page = client.get("/admin/audit", headers=HEADERS[ADMIN]).get_data(as_text=True)
    assert "topology_trace.operate" in page and "crew-7" in page


def test_sign_in_attempts_are_audited(client, dispatcher_with_password):
    _sign_in(client, "d.wang", "wrong password!")
    _sign_in(client, "d.wang", PASSWORD)
    entries = client.get("/api/admin/audit?action=accounts.login", headers=HEADERS[ADMIN]).get_json()["entries"]
    assert [(e["account"], e["status"]) for e in entries[:2]] == [("d.wang", 303), ("d.wang", 401)]


def test_anonymous_bookings_are_not_audited_as_accounts(client, connection):
    before = connection.execute(text("SELECT count(*) FROM audit_log")).scalar()
    client.post("/api/bookings", json={})
    assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar() == before


# -- rate limits -----------------------------------------------------------------------------------
@pytest.fixture()
def limited(app):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    app.config["PUBLIC_WRITE_RATE_LIMIT"] = "2 per minute"
    limiter.reset()
    yield app
    limiter.reset()


def test_sign_ins_are_limited_per_address_and_per_account(limited, dispatcher_with_password):
    client = limited.test_client()
    statuses = [_sign_in(client, "d.wang", "wrong password!").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    refused = _sign_in(client, "d.wang", "wrong password!")
    assert refused.mimetype == PROBLEM and int(refused.headers["Retry-After"]) > 0
    # From another address, the same account is still limited; another account is not.
    other = limited.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert _sign_in(other, "d.wang", PASSWORD).status_code == 429
    assert _sign_in(other, "someone-else", PASSWORD).status_code == 401


def test_public_writes_are_limited_per_address_and_per_phone(limited):
    client = limited.test_client()
    body = {"outlet": "NONE", "service": "billing", "start": "2030-01-02T10:00", "name": "A", "phone": "0721 1234567"}
    assert [client.post("/api/bookings", json=body).status_code for _ in range(3)][-1] == 429
    elsewhere = limited.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    assert elsewhere.post("/api/bookings", json=body).status_code == 429  # the same phone
    assert elsewhere.post("/api/bookings", json={**body, "phone": "0721 7654321"}).status_code != 429


# -- control zones and pages -----------------------------------------------------------------------
def test_a_zoned_dispatcher_sees_only_customers_of_its_feeders(client, connection):
    load_network(connection, protected_feeder())
    everyone = client.get("/api/network/service_points", headers=HEADERS[DISPATCHER]).get_json()["features"]
    with _session(connection) as session:
        accounts.create_account(session, "d.zone", DISPATCHER, None, ["ELSEWHERE"])
        issued = accounts.issue_token(session, "d.zone")
        session.commit()
    zoned = client.get("/api/network/service_points", headers={"Authorization": f"Bearer {issued.token}"})
    assert everyone and zoned.status_code == 200 and zoned.get_json()["features"] == []


def test_customers_layer_is_not_public(client):
    assert client.get("/api/network/service_points").status_code == 401
    assert client.get("/api/network/segments").status_code == 200


@pytest.mark.parametrize("caller, trace_tool, switching", [
    (None, False, False), ("crew", False, False), (PLANNER, True, False), (DISPATCHER, True, True), (ADMIN, False, False),
])
def test_the_network_map_offers_what_the_caller_may_do(app, caller, trace_tool, switching):
    page = client_as(app, caller).get("/map/network").get_data(as_text=True)
    assert ("js/trace_tool.js" in page) is trace_tool
    assert ('data-can-switch="true"' in page) is switching
    assert ('"customers": true' in page) is trace_tool
    assert ("Sign in" in page) is (caller is None)


def test_an_audited_request_with_a_nul_in_its_path_or_name_is_recorded_not_a_500(client, connection):
    answer = client.put("/api/admin/outlets/X%00Y", json={}, headers=HEADERS[ADMIN])
    assert 400 <= answer.status_code < 500
    failed = client.post("/login", data={"name": "a\x00b", "password": "x"})
    assert failed.status_code in (401, 403)
    paths = connection.execute(text("SELECT path FROM audit_log ORDER BY id DESC LIMIT 5")).scalars().all()
    assert "/api/admin/outlets/X\\x00Y" in paths


def test_a_write_and_its_audit_row_commit_together(client, connection, monkeypatch):
    """The row is written inside the write's transaction, then completed with the answer's status;
    when the database is lost between the two, the write is still answered as done and its row is
    there (status 0: committed, answer not recorded)."""
    load_network(connection, protected_feeder())
    body = {"operations": [{"device": "SW2", "action": "open"}], "reason": "work"}
    operation = client.post("/api/switching", json=body, headers=HEADERS[DISPATCHER]).get_json()["operation_id"]

    def lost(*args, **kwargs):
        raise OperationalError("UPDATE audit_log", {}, psycopg.OperationalError("server closed the connection"))

    monkeypatch.setattr("geo.audit.update", lost)
    closing = client.post("/api/switching", json={**body, "operations": [{"device": "SW2", "action": "close"}]},
                          headers=HEADERS[DISPATCHER])
    assert closing.status_code == 201
    rows = connection.execute(text("SELECT status, detail FROM audit_log WHERE action = 'topology_trace.operate' "
                                   "ORDER BY id")).all()
    assert [(row.status, (row.detail or {}).get("operation_id")) for row in rows] == [(201, operation), (0, None)]


def test_behind_a_trusted_proxy_the_client_address_and_https_are_believed(engine):
    from app import create_app

    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    for trusted, address in ((True, "203.0.113.9"), (False, "127.0.0.1")):
        app = create_app({"TESTING": True, "DATABASE_URL": engine.url.render_as_string(False), "ENGINE": engine,
                          "BASEMAP_URL": "none", "TRUST_PROXY": trusted})
        app.add_url_rule("/_where", "where", allow(PUBLIC)(lambda: {"address": __import__("flask").request.remote_addr}))
        client = app.test_client()
        assert client.get("/_where", headers=forwarded).get_json()["address"] == address
        cookie = client.get("/login", headers=forwarded).headers["Set-Cookie"]
        assert ("Secure" in cookie) is trusted


def test_two_workers_share_their_counts_through_redis(engine, redis_url):
    """With RATELIMIT_STORAGE_URI on Redis, two workers (two apps) count one sign-in budget."""
    from app import create_app

    workers = [create_app({"TESTING": True, "DATABASE_URL": engine.url.render_as_string(False), "ENGINE": engine,
                           "BASEMAP_URL": "none", "RATELIMIT_STORAGE_URI": redis_url,
                           "LOGIN_RATE_LIMIT": "3 per minute"}) for _ in range(2)]
    limiter.reset()
    statuses = [workers[n % 2].test_client().post("/api/session", json={"name": "nobody", "password": "x" * 12})
                .status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    limiter.reset()


def test_a_zoned_dispatcher_traces_only_inside_its_feeders(client, connection):
    load_network(connection, protected_feeder())  # everything on feeder F1
    with _session(connection) as session:
        for name, zone in (("d.f1", ["F1"]), ("d.other", ["ELSEWHERE"])):
            accounts.create_account(session, name, DISPATCHER, None, zone)
        inside, outside = (accounts.issue_token(session, name) for name in ("d.f1", "d.other"))
        session.commit()
    for token, status in ((inside, 200), (outside, 403)):
        headers = {"Authorization": f"Bearer {token.token}"}
        assert client.get("/api/trace/downstream/SW2", headers=headers).status_code == status
        assert client.post("/api/trace/affected", json={"open": ["SW2"]}, headers=headers).status_code == status
    refused = client.get("/api/trace/upstream/SW2", headers={"Authorization": f"Bearer {outside.token}"}).get_json()
    assert refused["codes"] == ["SW2"] and "ELSEWHERE" in refused["detail"]


def test_a_trace_sent_with_post_changes_nothing_and_is_not_audited(client, connection):
    load_network(connection, protected_feeder())
    before = connection.execute(text("SELECT count(*) FROM audit_log")).scalar()
    assert client.post("/api/trace/affected", json={"open": ["SW2"]}, headers=HEADERS[DISPATCHER]).status_code == 200
    assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar() == before
    assert client.post("/api/trace/affected", json={"open": 7}, headers=HEADERS[DISPATCHER]).status_code == 400
    assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar() == before + 1


def test_a_zoned_dispatcher_sees_only_its_feeders_in_the_log_and_the_de_energised_layer(client, connection):
    load_network(connection, protected_feeder())  # everything on feeder F1
    body = {"operations": [{"device": "SW2", "action": "open"}], "reason": "work"}
    assert client.post("/api/switching", json=body, headers=HEADERS[DISPATCHER]).status_code == 201
    with _session(connection) as session:
        for name, zone in (("d.f1", ["F1"]), ("d.other", ["ELSEWHERE"])):
            accounts.create_account(session, name, DISPATCHER, None, zone)
        inside, outside = (accounts.issue_token(session, name) for name in ("d.f1", "d.other"))
        session.commit()
    for token, seen in ((inside, True), (outside, False)):
        headers = {"Authorization": f"Bearer {token.token}"}
        log = client.get("/api/switching/log", headers=headers).get_json()["operations"]
        dead = client.get("/api/network/deenergised?bbox=-180,-90,180,90", headers=headers).get_json()["features"]
        assert (len(log) == 1, bool(dead)) == (seen, seen)
    assert "C5" in {f["id"] for f in client.get("/api/network/deenergised?bbox=-180,-90,180,90",
                                                 headers={"Authorization": f"Bearer {inside.token}"}).get_json()["features"]}
