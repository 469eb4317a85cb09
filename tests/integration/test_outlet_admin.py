"""The admin API and the GeoJSON/CSV import: all or nothing, every bad row reported."""
from __future__ import annotations

import io
import json

import pytest
import time_machine
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import accounts
from tests.accounts import HEADERS, TOKENS
from tests.outlet_data import add_outlet, days_ahead, local, outlet_values

TOKEN = TOKENS["admin"]  # the test admin's API token
AUTH = HEADERS["admin"]


@pytest.fixture()
def admin(client):
    """The test client; the admin requests below send the admin's token (``AUTH``) themselves."""
    return client


def _count(connection, table: str = "outlets") -> int:
    return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()


# -- access ----------------------------------------------------------------------------------------
ADMIN_REQUESTS = [
    ("post", "/api/admin/outlets", outlet_values()),
    ("put", "/api/admin/outlets/OUT-T1", outlet_values(name="Renamed")),
    ("delete", "/api/admin/outlets/OUT-T1", None),
    ("put", f"/api/admin/outlets/OUT-T1/exceptions/{days_ahead(5)}", {"hours": "off"}),
    ("delete", f"/api/admin/outlets/OUT-T1/exceptions/{days_ahead(6)}", None),
    ("post", "/api/admin/outlets/import?format=geojson", None),
    ("get", "/api/admin/outlets/export?format=csv", None),
]


def _outlet_rows(connection) -> list:
    """Everything an admin request could change, to compare before and after a refused one."""
    return connection.execute(text(
        "SELECT o.code, o.name, o.active, o.weekly_hours::text, "
        "(SELECT count(*) FROM outlet_exceptions e WHERE e.outlet_id = o.id) AS exceptions "
        "FROM outlets o ORDER BY o.code")).all()


def _admin_request(client, method: str, path: str, body, headers: dict):
    if path.startswith("/api/admin/outlets/import"):
        return client.post(path, data=_geojson(outlet_values("NEW-1")), headers=headers)
    return getattr(client, method)(path, json=body, headers=headers)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic czNjcmV0", f"bearer {TOKEN}", f"Bearer {TOKEN}x",
                                    f"Bearer {TOKEN[:-1]}1"])
def test_the_admin_api_refuses_an_anonymous_caller_or_an_unknown_token_with_401(client, connection, header):
    add_outlet(connection)
    # An exception for the refused DELETE of one to leave standing.
    exception = f"/api/admin/outlets/OUT-T1/exceptions/{days_ahead(6)}"
    assert client.put(exception, json={"hours": "off"}, headers=AUTH).status_code == 200
    before = _outlet_rows(connection)
    for method, path, body in ADMIN_REQUESTS:
        answer = _admin_request(client, method, path, body, {"Authorization": header} if header else {})
        assert answer.status_code == 401 and answer.content_type == "application/problem+json", (path, answer.json)
    assert _outlet_rows(connection) == before


@pytest.mark.parametrize("role", ["crew", "dispatcher", "planner"])
def test_the_admin_api_refuses_every_other_role_with_403(client, connection, role):
    add_outlet(connection)
    before = _outlet_rows(connection)
    for method, path, body in ADMIN_REQUESTS:
        answer = _admin_request(client, method, path, body, HEADERS[role])
        assert answer.status_code == 403 and answer.content_type == "application/problem+json", (path, answer.json)
        assert f"a {role} account may not do this" in answer.json["detail"]
    assert _outlet_rows(connection) == before


@pytest.fixture()
def other_admin(connection):
    """(session, issue): tokens of a second admin account, ``other-admin``, made in the test's transaction."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    accounts.create_account(session, "other-admin", "admin", None)

    def issue():
        issued = accounts.issue_token(session, "other-admin")
        session.flush()
        return issued

    return session, issue


def test_a_revoked_token_is_refused_with_401(client, connection, other_admin):
    session, issue = other_admin
    issued = issue()
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert client.post("/api/admin/outlets", json=outlet_values("BEFORE"), headers=headers).status_code == 201
    accounts.revoke_token(session, issued.id)
    session.flush()
    answer = client.post("/api/admin/outlets", json=outlet_values("AFTER"), headers=headers)
    assert answer.status_code == 401 and "revoked" in answer.json["detail"]
    assert [row.code for row in _outlet_rows(connection)] == ["BEFORE"]
    # The admin's other tokens are not touched.
    assert client.post("/api/admin/outlets", json=outlet_values("AFTER"), headers=AUTH).status_code == 201


def test_an_expired_token_is_refused_with_401(client, connection, other_admin):
    _, issue = other_admin
    issued = issue()
    connection.execute(text("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = :id"),
                       {"id": issued.id})
    answer = client.post("/api/admin/outlets", json=outlet_values(), headers={"Authorization": f"Bearer {issued.token}"})
    assert answer.status_code == 401 and "expired" in answer.json["detail"]
    assert _count(connection) == 0


def test_a_disabled_accounts_token_is_refused_with_401(client, connection, other_admin):
    session, issue = other_admin
    issued = issue()
    accounts.set_disabled(session, "other-admin")
    session.flush()
    answer = client.post("/api/admin/outlets", json=outlet_values(), headers={"Authorization": f"Bearer {issued.token}"})
    assert answer.status_code == 401
    assert _count(connection) == 0


def test_another_admins_token_works_too(client, connection, other_admin):
    _, issue = other_admin
    answer = client.post("/api/admin/outlets", json=outlet_values(),
                         headers={"Authorization": f"Bearer {issue().token}"})
    assert answer.status_code == 201 and _count(connection) == 1


def test_the_health_details_are_for_an_admin_only(client, connection, other_admin):
    _, issue = other_admin
    assert "database" in client.get("/healthz", headers={"Authorization": f"Bearer {issue().token}"}).json
    for role in ("crew", "dispatcher", "planner"):
        assert client.get("/healthz", headers=HEADERS[role]).json == {"status": "ok"}


# -- one outlet ------------------------------------------------------------------------------------
def _stored(connection, code: str):
    return connection.execute(text(
        "SELECT name, address, active, slot_minutes, "
        "(SELECT string_agg(service || ':' || capacity, ',' ORDER BY service) FROM outlet_services s "
        " WHERE s.outlet_id = o.id) AS services FROM outlets o WHERE code = :code"), {"code": code}).one_or_none()


@time_machine.travel(local(days_ahead(0), 12), tick=False)
def test_create_read_replace_retire(admin, connection):
    created = admin.post("/api/admin/outlets", json=outlet_values(), headers=AUTH)
    assert created.status_code == 201, created.json
    assert created.json["code"] == "OUT-T1" and created.json["name"] == "Centre OUT-T1"
    assert created.json["phone"] == "+497211334455" and created.json["phone_display"] == "+49 721 1334455"
    assert created.json["hours"] == "Mo-Su 08:00-20:00" and created.json["capacity"] == {"billing": 2, "meter": 1}
    stored = _stored(connection, "OUT-T1")
    assert (stored.name, stored.active, stored.slot_minutes, stored.services) == \
        ("Centre OUT-T1", True, 30, "billing:2,meter:1")
    duplicate = admin.post("/api/admin/outlets", json=outlet_values(name="Other"), headers=AUTH)
    assert duplicate.status_code == 409 and "OUT-T1" in duplicate.json["detail"]
    assert _stored(connection, "OUT-T1").name == "Centre OUT-T1"
    public = admin.get("/api/outlets/OUT-T1")
    assert public.status_code == 200 and public.json["code"] == "OUT-T1"
    # At noon on its hours of 08:00-20:00.
    assert public.json["open_now"] is True and public.json["closes_at"] == local(days_ahead(0), 20).isoformat()
    replaced = admin.put("/api/admin/outlets/OUT-T1", headers=AUTH,
                         json=outlet_values(hours="Mo-Fr 09:00-12:00", services="complaints:3"))
    assert replaced.status_code == 200 and replaced.json["services"] == ["complaints"]
    assert _count(connection, "outlet_services") == 1
    assert admin.delete("/api/admin/outlets/OUT-T1", headers=AUTH).status_code == 204
    assert admin.get("/api/outlets/OUT-T1").status_code == 404
    assert admin.delete("/api/admin/outlets/OUT-T1", headers=AUTH).status_code == 404
    back = admin.put("/api/admin/outlets/OUT-T1", headers=AUTH, json=outlet_values())
    assert back.status_code == 200 and admin.get("/api/outlets/OUT-T1").status_code == 200


def test_put_creates_and_refuses_a_different_code(admin, connection):
    created = admin.put("/api/admin/outlets/NEW-1", json=outlet_values("NEW-1"), headers=AUTH)
    assert created.status_code == 201 and created.json["code"] == "NEW-1" and created.json["name"] == "Centre NEW-1"
    assert created.json["services"] == ["billing", "meter"] and created.json["exceptions"] == []
    assert _stored(connection, "NEW-1").address == "Kaiserstraße 12, 76133 Karlsruhe"
    answer = admin.put("/api/admin/outlets/NEW-1", json=outlet_values("OTHER"), headers=AUTH)
    assert answer.status_code == 400 and "differs" in answer.json["detail"]
    assert _stored(connection, "OTHER") is None and _count(connection) == 1


def test_an_invalid_outlet_lists_every_bad_field(admin, connection):
    body = outlet_values(lon="east", timezone="Mars/Olympus", services={"plumbing": 1}, hours="Mo 9-17",
                         slot_minutes=2)
    answer = admin.post("/api/admin/outlets", json=body, headers=AUTH)
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json["errors"]} == {"lon", "timezone", "services", "hours", "slot_minutes"}
    assert _count(connection) == 0


@pytest.mark.parametrize("changes, field", [
    ({"hours": {"mo": [["08:00-12:00"]]}}, "hours"),   # a list where a text belongs: was a 500
    ({"hours": {"mo": [8]}}, "hours"),
    ({"hours": {"mo": [None]}}, "hours"),               # not a closed day: a mistake
    ({"timezone": "localtime"}, "timezone"),            # the server's own zone, no place's
])
def test_odd_hours_and_zones_are_refused_by_field(admin, connection, changes, field):
    answer = admin.post("/api/admin/outlets", json=outlet_values(**changes), headers=AUTH)
    assert answer.status_code == 422, answer.json
    assert [e["field"] for e in answer.json["errors"]] == [field]
    assert _count(connection) == 0


def test_an_outlet_with_visits_to_come_cannot_be_retired(admin, connection):
    add_outlet(connection)
    day = days_ahead(2)
    admin.post("/api/bookings", json={"outlet": "OUT-T1", "service": "billing", "start": local(day, 10).isoformat(),
                                      "name": "A B", "phone": "0721 1234567", "idempotency_key": "r1"})
    answer = admin.delete("/api/admin/outlets/OUT-T1", headers=AUTH)
    assert answer.status_code == 409 and answer.json["bookings"] == 1


def test_dated_exceptions(admin, connection):
    add_outlet(connection)
    day = days_ahead(5)
    answer = admin.put(f"/api/admin/outlets/OUT-T1/exceptions/{day}", headers=AUTH,
                       json={"hours": "off", "note": "Staff training"})
    assert answer.status_code == 200
    assert answer.json["exceptions"] == [{"date": str(day), "hours": "off", "note": "Staff training"}]
    slots = admin.get(f"/api/outlets/OUT-T1/slots?date={day}").json
    assert slots["slots"] == [] and slots["hours"]["note"] == "Staff training"
    admin.put(f"/api/admin/outlets/OUT-T1/exceptions/{day}", headers=AUTH, json={"hours": "10:00-11:00"})
    assert len(admin.get(f"/api/outlets/OUT-T1/slots?date={day}&service=meter").json["slots"]) == 2
    assert admin.delete(f"/api/admin/outlets/OUT-T1/exceptions/{day}", headers=AUTH).status_code == 204
    assert admin.delete(f"/api/admin/outlets/OUT-T1/exceptions/{day}", headers=AUTH).status_code == 404
    bad = admin.put(f"/api/admin/outlets/OUT-T1/exceptions/{day}", headers=AUTH, json={"hours": "10-11"})
    assert bad.status_code == 400 and "not a time of day" in bad.json["detail"]
    not_a_day = admin.put("/api/admin/outlets/OUT-T1/exceptions/someday", headers=AUTH, json={"hours": "off"})
    assert not_a_day.status_code == 400 and "'someday' is not a date" in not_a_day.json["detail"]
    no_outlet = admin.put(f"/api/admin/outlets/NOPE/exceptions/{day}", headers=AUTH, json={"hours": "off"})
    assert no_outlet.status_code == 404 and "no outlet 'NOPE'" in no_outlet.json["detail"]
    # None of the refused requests stored anything.
    assert _count(connection, "outlet_exceptions") == 0


# -- files -----------------------------------------------------------------------------------------
def _feature(values: dict) -> dict:
    properties = {k: v for k, v in values.items() if k not in ("lon", "lat")}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [values["lon"], values["lat"]]},
            "properties": properties}


def _geojson(*records: dict) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": [_feature(r) for r in records]}).encode()


CSV = (
    "code,name,address,lon,lat,phone,timezone,slot_minutes,services,hours,exceptions\n"
    'C-1,Centre Süd,"Ettlinger Straße 5, 76137 Karlsruhe",8.401,49.0,0721 1334455,Europe/Berlin,20,'
    '"billing:2; meter:1","Mo-Fr 08:00-12:00,13:00-17:00; Sa 22:00-02:00","2026-12-25 off Christmas Day"\n'
    'C-2,Centre Nord,"Kaiserstraße 1, 76133 Karlsruhe",8.41,49.01,,Europe/Berlin,,complaints,unknown,\n'
)


def test_imports_geojson(admin, connection):
    data = _geojson(outlet_values("G-1"), outlet_values("G-2", services=["meter"], hours="24/7"))
    answer = admin.post("/api/admin/outlets/import?format=geojson", data=data, headers=AUTH)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"rows": 2, "created": 2, "updated": 0}
    again = admin.post("/api/admin/outlets/import", headers=AUTH,
                       data={"file": (io.BytesIO(data), "outlets.geojson")}, content_type="multipart/form-data")
    assert again.json == {"rows": 2, "created": 0, "updated": 2}
    assert admin.get("/api/outlets/G-2").json["hours"] == "24/7"


def test_imports_csv_with_overnight_hours_and_holidays(admin, connection):
    answer = admin.post("/api/admin/outlets/import?format=csv", data=CSV.encode(), headers=AUTH)
    assert answer.status_code == 200, answer.json
    centre = admin.get("/api/outlets/C-1").json
    assert centre["week"]["sa"] == ["22:00-02:00"] and centre["slot_minutes"] == 20
    nord = admin.get("/api/outlets/C-2").json
    assert nord["hours_known"] is False and nord["phone"] is None


def test_imports_semicolon_separated_csv_from_a_spreadsheet(admin, connection):
    rows = 'code;name;address;lon;lat;timezone;services\nS-1;Centre;"Karlstraße 7, Karlsruhe";8.4;49.0;Europe/Berlin;billing\n'
    answer = admin.post("/api/admin/outlets/import?format=csv", data=("\ufeff" + rows).encode(), headers=AUTH)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"rows": 1, "created": 1, "updated": 0}
    # The byte-order mark is not part of the first column's name, and the quoted address kept its comma.
    stored = _stored(connection, "S-1")
    assert (stored.name, stored.address, stored.services) == ("Centre", "Karlstraße 7, Karlsruhe", "billing:1")
    public = admin.get("/api/outlets/S-1").json
    assert (public["lon"], public["lat"], public["timezone"], public["hours_known"]) == (8.4, 49.0, "Europe/Berlin", False)


def test_a_bad_file_is_refused_row_by_row_and_changes_nothing(admin, connection):
    add_outlet(connection, "KEEP", name="Unchanged")
    before = connection.execute(text("SELECT code, name, weekly_hours FROM outlets ORDER BY code")).all()
    data = _geojson(
        outlet_values("KEEP", name="Changed"),                     # 1: valid (would replace KEEP)
        outlet_values("B-2", timezone="Europe/Karlsruhe"),         # 2: bad zone
        outlet_values("B-3", hours="Mo-Fr 08:00-12:00,11:00-13:00", phone="12"),  # 3: two bad fields
        outlet_values("KEEP"),                                     # 4: the same code again
    )
    answer = admin.post("/api/admin/outlets/import?format=geojson", data=data, headers=AUTH)
    assert answer.status_code == 422
    errors = answer.json["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(2, "timezone"), (3, "phone"), (3, "hours"), (4, "code")]
    assert errors[0]["code"] == "B-2" and "not an IANA time zone" in errors[0]["reason"]
    assert "appears again (first at row 1)" in errors[3]["reason"]
    assert "nothing was imported" in answer.json["detail"]
    assert connection.execute(text("SELECT code, name, weekly_hours FROM outlets ORDER BY code")).all() == before


def test_a_bad_csv_row_names_its_row(admin, connection):
    rows = CSV + "C-3,No place,Somewhere,,49.0,,Europe/Berlin,,billing,,\n"
    answer = admin.post("/api/admin/outlets/import?format=csv", data=rows.encode(), headers=AUTH)
    assert answer.status_code == 422
    assert [(e["row"], e["field"], e["reason"]) for e in answer.json["errors"]] == [(3, "lon", "is required")]
    assert _count(connection) == 0


def test_create_mode_refuses_existing_codes(admin, connection):
    add_outlet(connection, "G-1")
    answer = admin.post("/api/admin/outlets/import?format=geojson&mode=create", headers=AUTH,
                        data=_geojson(outlet_values("G-0"), outlet_values("G-1")))
    assert answer.status_code == 422 and answer.json["errors"][0]["reason"] == "outlet 'G-1' already exists"
    assert _count(connection) == 1


@pytest.mark.parametrize("query, data, detail", [
    ("format=geojson", b"{not json", "not JSON"),
    ("format=geojson", b'{"type": "Feature"}', "FeatureCollection"),
    ("format=geojson", b'{"type": "FeatureCollection", "features": []}', "holds no outlets"),
    ("format=csv", b"name,lon\nx,1\n", "header row"),
    ("format=csv", b"code,name\n\xff\xfe,x\n", "not UTF-8"),
    ("format=shp", b"x", "format 'shp'"),
    ("", b"x", "say which format"),
    ("format=csv&mode=merge", b"code\nx\n", "mode must be"),
    ("format=csv", b"", "send the file"),
])
def test_unreadable_files_are_400(admin, query, data, detail):
    answer = admin.post(f"/api/admin/outlets/import?{query}", data=data, headers=AUTH)
    assert answer.status_code == 400 and detail in answer.json["detail"], answer.json


def test_a_feature_that_is_not_a_point_is_a_row_error(admin):
    feature = _feature(outlet_values("L-1"))
    feature["geometry"] = {"type": "LineString", "coordinates": [[8.4, 49.0], [8.5, 49.1]]}
    answer = admin.post("/api/admin/outlets/import?format=geojson", headers=AUTH,
                        data=json.dumps({"type": "FeatureCollection", "features": [feature]}).encode())
    assert answer.status_code == 422 and answer.json["errors"][0]["field"] == "geometry"


@pytest.mark.parametrize("file_format", ["geojson", "csv"])
def test_export_round_trips_through_import(admin, connection, file_format):
    admin.post("/api/admin/outlets/import?format=csv", data=CSV.encode(), headers=AUTH)
    exported = admin.get(f"/api/admin/outlets/export?format={file_format}", headers=AUTH)
    assert exported.status_code == 200
    before = admin.get("/api/outlets").json["features"]
    answer = admin.post(f"/api/admin/outlets/import?format={file_format}", data=exported.data, headers=AUTH)
    assert answer.json == {"rows": 2, "created": 0, "updated": 2}
    assert admin.get("/api/outlets").json["features"] == before


def test_the_outlet_collection_is_geojson_by_bbox(client, connection):
    add_outlet(connection, "IN", lon=8.40, lat=49.00)
    add_outlet(connection, "OUT", lon=9.40, lat=49.00)
    body = client.get("/api/outlets?bbox=8.3,48.9,8.5,49.1").json
    assert body["type"] == "FeatureCollection" and [f["id"] for f in body["features"]] == ["IN"]
    assert body["features"][0]["geometry"] == {"type": "Point", "coordinates": [8.4, 49.0]}
    assert client.get("/api/outlets?bbox=1,2,3").status_code == 400


def test_cli_import_and_export(runner, connection, tmp_path):
    path = tmp_path / "outlets.csv"
    path.write_text(CSV + "C-3,Bad,Somewhere,8.4,49.0,,Mars/Base,,billing,,\n", encoding="utf-8")
    refused = runner.invoke(args=["outlets", "import", str(path)])
    assert refused.exit_code != 0
    assert "nothing was imported" in refused.output and "row 3 (C-3), timezone" in refused.output
    assert _count(connection) == 0
    path.write_text(CSV, encoding="utf-8")
    imported = runner.invoke(args=["outlets", "import", str(path)])
    assert imported.exit_code == 0 and "2 new, 0 replaced" in imported.output
    exported = tmp_path / "copy.geojson"
    assert runner.invoke(args=["outlets", "export", str(exported)]).exit_code == 0
    assert [f["properties"]["code"] for f in json.loads(exported.read_text())["features"]] == ["C-1", "C-2"]
    assert runner.invoke(args=["outlets", "export", str(tmp_path / "x.shp")]).exit_code != 0
