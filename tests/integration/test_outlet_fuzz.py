"""Whatever a client sends, the outlet API answers with a 2xx or a 4xx problem, never a 500."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.accounts import HEADERS
from tests.outlet_data import add_outlet

_texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0001-01-01", "9999-12-31", "0001-01-01T00:00", "9999-12-31T23:59+00:00", "nan", "inf",
                     "-1e309", "2026-02-29", "2026-10-25T02:30", "now", "", "Europe/Berlin", "%00", "1" * 400]),
    st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
)
_fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture()
def outlet(connection):
    return add_outlet(connection)


@_fuzz
@given(lon=_texts, lat=_texts, n=_texts, service=_texts, open_at=_texts, q=_texts)
def test_nearest_never_fails(client, outlet, lon, lat, n, service, open_at, q):
    for query in ({"lon": lon, "lat": lat, "n": n, "service": service, "open": open_at},
                  {"lon": "8.4", "lat": "49", "open": open_at}, {"q": q}):
        answer = client.get("/api/outlets/nearest", query_string=query)
        assert answer.status_code < 500, (query, answer.get_data(as_text=True))


@_fuzz
@given(day=_texts, service=_texts, code=_texts)
def test_slots_and_details_never_fail(client, outlet, day, service, code):
    code = quote(code, safe="")
    for path, query in (("/api/outlets/OUT-T1/slots", {"date": day, "service": service}),
                        (f"/api/outlets/{code}/slots", {}), (f"/api/outlets/{code}", {}),
                        ("/api/outlets", {"bbox": day}), ("/api/outlets/addresses", {"q": code})):
        answer = client.get(path, query_string=query)
        assert answer.status_code < 500, (path, query, answer.get_data(as_text=True))


@_fuzz
@given(start=_texts, name=_texts, phone=_texts, key=_texts, service=_texts,
       extra=st.dictionaries(st.text(max_size=8), _texts, max_size=2))
def test_booking_requests_never_fail(client, outlet, start, name, phone, key, service, extra):
    body = {"outlet": "OUT-T1", "service": service, "start": start, "name": name, "phone": phone,
            "idempotency_key": key, **extra}
    answer = client.post("/api/bookings", json=body)
    assert answer.status_code < 500, (body, answer.get_data(as_text=True))
    key = quote(key, safe="")
    for method, path, payload in (("patch", "/api/bookings/AAAABBBBCCCC", {"start": start}),
                                  ("get", f"/api/bookings/{key}", None), ("delete", f"/api/bookings/{key}", None),
                                  ("get", f"/api/bookings/{key}.ics", None)):
        answer = getattr(client, method)(path, json=payload)
        assert answer.status_code < 500, (method, path, answer.get_data(as_text=True))


@_fuzz
@given(values=st.dictionaries(st.sampled_from(["code", "name", "address", "lon", "lat", "phone", "timezone",
                                               "country", "slot_minutes", "services", "hours", "exceptions",
                                               "active", "other"]),
                              st.one_of(_texts, st.none(), st.lists(_texts, max_size=2)), max_size=14),
       code=_texts, day=_texts, note=_texts)
def test_admin_requests_never_fail(client, outlet, values, code, day, note):
    code, day = quote(code, safe=""), quote(day, safe="")
    auth = HEADERS["admin"]  # as the admin: the requests reach the admin API, not only its guard
    for method, path, body in (("post", "/api/admin/outlets", values), ("put", f"/api/admin/outlets/{code}", values),
                               ("put", f"/api/admin/outlets/OUT-T1/exceptions/{day}", {"hours": code, "note": note}),
                               ("delete", f"/api/admin/outlets/{code}/exceptions/{day}", None),
                               ("delete", f"/api/admin/outlets/{code}", None)):
        answer = getattr(client, method)(path, json=body, headers=auth)
        assert answer.status_code < 500, (method, path, body, answer.get_data(as_text=True))
        assert answer.status_code not in (401, 403), (method, path, answer.get_data(as_text=True))
    rows = "code,name,address,lon,lat,timezone,services,hours,exceptions\n" + ",".join(
        f'"{str(values.get(k, "")).replace(chr(34), "")}"' for k in
        ("code", "name", "address", "lon", "lat", "timezone", "services", "hours", "exceptions")) + "\n"
    answer = client.post("/api/admin/outlets/import?format=csv", data=rows.encode("utf-8", "surrogatepass"),
                         headers=auth)
    assert answer.status_code < 500, (rows, answer.get_data(as_text=True))
