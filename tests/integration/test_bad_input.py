"""Bad bodies on every route that reads one: another media type (415), JSON nested too deeply
(400), a body over the limit (413, refused before it is read whole); nothing is written."""
from __future__ import annotations

import io
import json
import socket
import threading

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from geo.requests import MAX_DEPTH
from tests.accounts import HEADERS
from tests.integration.test_outlet_admin import AUTH, _geojson
from tests.networks import protected_feeder
from tests.outlet_data import add_outlet, days_ahead, local, outlet_values
from topology.loader import load_network

PROBLEM = "application/problem+json"
MB = 1024 * 1024
WRITTEN = ("switching_events", "bookings", "slot_bookings", "outlets", "outlet_exceptions")

# Every route that reads a JSON body, with a body it would accept.
JSON_ROUTES = [
    ("POST", "/api/switching", {"operations": [{"device": "SW2", "action": "open"}], "reason": "work"}),
    ("POST", "/api/trace/affected", {"open": ["SW2"]}),
    ("POST", "/api/bookings", {"outlet": "OUT-T1", "service": "billing", "start": local(days_ahead(1), 10).isoformat(),
                               "name": "Erika Mustermann", "phone": "0721 1234567", "idempotency_key": "k-1"}),
    ("PATCH", "/api/bookings/NO-SUCH-CODE", {"start": local(days_ahead(2), 10).isoformat()}),
    ("POST", "/api/admin/outlets", outlet_values("OUT-T2")),
    ("PUT", "/api/admin/outlets/OUT-T1", outlet_values(name="Renamed")),
    ("PUT", f"/api/admin/outlets/OUT-T1/exceptions/{days_ahead(5)}", {"hours": "off", "note": "training"}),
]
ROUTE_IDS = ["switching", "trace", "book", "reschedule", "create outlet", "replace outlet", "exception"]


@pytest.fixture()
def world(app, connection):
    """A feeder and an outlet, and the row counts a refused request must not change."""
    load_network(connection, protected_feeder())
    add_outlet(connection)
    return _counts(connection)


def _counts(connection) -> dict[str, int]:
    return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table in WRITTEN}


def _caller(path: str) -> dict:
    """The headers of someone who may use ``path``, so that only the body is refused: a
    dispatcher's token for switching and traces, the admin's for the admin API, none for the
    public booking routes."""
    if path.startswith(("/api/switching", "/api/trace/")):
        return HEADERS["dispatcher"]
    if path.startswith("/api/admin/"):
        return AUTH
    return {}


def _send(client, method: str, path: str, data, content_type: str | None = "application/json", **environ):
    """The request, as someone allowed to make it; ``environ`` overrides WSGI keys."""
    return client.open(path, method=method, data=data, headers=_caller(path), content_type=content_type,
                       environ_overrides=environ)


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == PROBLEM
    return response.get_json(force=True)


@pytest.mark.parametrize("method, path, body", JSON_ROUTES, ids=ROUTE_IDS)
def test_the_good_body_is_taken(client, connection, world, method, path, body):
    # The control for the refusals below: the same body as application/json is not refused as such.
    assert _send(client, method, path, json.dumps(body)).status_code in (200, 201, 404)


@pytest.mark.parametrize("method, path, body", JSON_ROUTES, ids=ROUTE_IDS)
def test_json_nested_1000_deep_is_400(client, connection, world, method, path, body):
    nested = "[" * 1000 + "]" * 1000
    assert "nested too deeply" in _problem(_send(client, method, path, nested), 400)["detail"]
    wrapped = json.dumps({**body, "extra": json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))})
    assert "nested too deeply" in _problem(_send(client, method, path, wrapped), 400)["detail"]
    assert _counts(connection) == world


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize("method, path, body", JSON_ROUTES, ids=ROUTE_IDS)
def test_a_body_of_another_type_is_415(client, connection, world, method, path, body, content_type):
    problem = _problem(_send(client, method, path, json.dumps(body), content_type), 415)
    assert "send the body as application/json" in problem["detail"]
    assert _counts(connection) == world


@pytest.mark.parametrize("method, path, body", JSON_ROUTES, ids=ROUTE_IDS)
def test_a_body_over_the_limit_is_413(client, connection, world, method, path, body):
    padded = json.dumps({**body, "padding": "x" * (2 * MB)})
    assert "larger than 1,048,576 bytes" in _problem(_send(client, method, path, padded), 413)["detail"]
    # A Content-Length over the limit is refused on its word, without reading the (short) body.
    lying = _send(client, method, path, json.dumps(body), CONTENT_LENGTH=str(2 * MB))
    _problem(lying, 413)
    assert _counts(connection) == world


def test_a_chunked_body_is_refused_before_it_ends(app, world):
    # No Content-Length, and a body that never ends: the server can only answer by stopping at the limit.
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=20) as sock:
            sock.sendall(b"POST /api/trace/affected HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: " + HEADERS["dispatcher"]["Authorization"].encode() + b"\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
            threading.Thread(target=_send_quietly, args=(sock, chunk * 20), daemon=True).start()
            head = sock.recv(4096)
    finally:
        server.shutdown()
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"application/problem+json" in head


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server may no longer read; it may close the connection first."""
    try:
        sock.sendall(data)
    except OSError:
        pass


def test_the_import_takes_5_mb_and_refuses_more_than_its_limit(client, connection, world):
    data = _geojson(outlet_values("BIG-1")) + b" " * (5 * MB)
    answer = client.post("/api/admin/outlets/import?format=geojson", data=data, headers=AUTH)
    assert answer.status_code == 200 and answer.json["created"] == 1, answer.data[:300]
    counts = _counts(connection)
    too_big = _geojson(outlet_values("BIG-2")) + b" " * (20 * MB)
    problem = _problem(client.post("/api/admin/outlets/import?format=geojson", data=too_big, headers=AUTH), 413)
    assert "larger than 20,971,520 bytes" in problem["detail"]
    upload = {"file": (io.BytesIO(too_big), "outlets.geojson")}
    _problem(client.post("/api/admin/outlets/import", data=upload, headers=AUTH, content_type="multipart/form-data"), 413)
    assert _counts(connection) == counts


def test_a_chunked_upload_over_the_import_limit_is_413_not_a_cut_file(client, connection, world):
    """A multipart upload without a Content-Length is refused at 20 MB, never imported cut short."""
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="o.geojson"\r\n'
            b"Content-Type: application/geo+json\r\n\r\n" + _geojson(outlet_values("CUT-1")) + b" " * (21 * MB)
            + b"\r\n--B--\r\n")
    answer = client.post("/api/admin/outlets/import", input_stream=io.BytesIO(body), headers={
        **AUTH, "Content-Type": "multipart/form-data; boundary=B", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})
    assert "larger than 20,971,520 bytes" in _problem(answer, 413)["detail"]
    assert _counts(connection) == world


def test_a_session_import_reads_its_upload_under_the_import_limit(client, connection, world):
    """The CSRF check reads no multipart form (it would under the 1 MB API limit): a signed-in
    admin sends the token as X-CSRF-Token and a 5 MB upload goes through."""
    from sqlalchemy.orm import Session

    from geo import accounts

    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        accounts.create_account(session, "admin.web", "admin", "a long admin password")
        session.commit()
    token = client.post("/api/session", json={"name": "admin.web", "password": "a long admin password"}).json["csrf_token"]

    def upload():
        return {"file": (io.BytesIO(_geojson(outlet_values("WEB-1")) + b" " * (5 * MB)), "outlets.geojson")}

    as_field = client.post("/api/admin/outlets/import", data={**upload(), "csrf_token": token},
                           content_type="multipart/form-data")
    assert "X-CSRF-Token" in _problem(as_field, 403)["detail"]  # not a 413 from reading it too early
    answer = client.post("/api/admin/outlets/import", data=upload(), content_type="multipart/form-data",
                         headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and answer.json["created"] == 1, answer.data[:300]
