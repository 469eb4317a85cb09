"""Read-only outlet routes on their own autocommit, unpinged connections, and schedules shared by
equal stored hours: both must stay exact."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app import create_app
from geo.db import read
from outlets.hours import DayException, Schedule, parse_weekly, weekly_to_json
from outlets.search import Origin
from outlets.store import schedule_from_text, set_exception
from tests.outlet_data import CENTRE, add_outlet, days_ahead, local, nearest_answers

APP_NAME = "gridatlas_outlet_read_test"


def _backends(engine) -> list[str]:
    """The states of the app's database connections (named by APP_NAME)."""
    with engine.connect() as connection:
        return connection.execute(text("SELECT state FROM pg_stat_activity WHERE application_name = :a"),
                                  {"a": APP_NAME}).scalars().all()


def _drop_connections(engine) -> int:
    """Terminate the app's database connections, as a restart of the database would."""
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE application_name = :a"), {"a": APP_NAME}).scalar_one()


def test_a_read_survives_its_connection_being_dropped(database_url, engine):
    url = make_url(database_url).update_query_dict({"application_name": APP_NAME}).render_as_string(False)
    application = create_app({"TESTING": True, "DATABASE_URL": url, "BASEMAP_URL": "none"})
    client = application.test_client()
    try:
        assert client.get("/api/outlets/OUT-NONE").status_code == 404
        # Autocommit: the read left no transaction open on its pooled connection.
        assert _backends(engine) and "idle in transaction" not in _backends(engine)
        # Not pinged at checkout: the dropped connection fails the read, which runs again on a new
        # one (through SQLAlchemy, and through the driver's cursor that the nearest search uses).
        for path, status in (("/api/outlets/OUT-NONE", 404), ("/api/outlets/nearest?lon=8.4&lat=49&n=5", 200)):
            assert _drop_connections(engine) >= 1
            response = client.get(path)
            assert response.status_code == status, response.get_data(as_text=True)
    finally:
        application.extensions["reads"].close()
        application.extensions["engine"].dispose()


def test_a_thread_keeps_one_read_connection_and_ended_threads_give_theirs_back(database_url, engine):
    url = make_url(database_url).update_query_dict({"application_name": APP_NAME}).render_as_string(False)
    application = create_app({"TESTING": True, "DATABASE_URL": url, "BASEMAP_URL": "none"})
    client = application.test_client()
    try:
        for _ in range(3):
            assert client.get("/api/outlets/nearest?lon=8.4&lat=49&n=5").status_code == 200
        reads = application.extensions["reads"]
        pool = reads.engine.pool
        assert pool.checkedout() == 1 and _backends(engine) == ["idle"]
        # A request on another thread takes its own connection; once that thread has ended, the
        # next thread to read gives it back before taking its own (the same one: no third connection).
        for _ in range(3):
            worker = threading.Thread(target=lambda: client.get("/api/outlets/OUT-NONE"))
            worker.start()
            worker.join()
            assert reads.held() == 2 and pool.checkedout() == 2
        assert pool.checkedin() + pool.checkedout() == 2
        # A refused read gives the connection back too.
        with application.test_request_context():
            with pytest.raises(DBAPIError):
                read(lambda connection: connection.execute(text("SELECT 1/0")))
        assert reads.held() == 1 and pool.checkedout() == 1
        # Closing gives back every one.
        reads.close()
        assert reads.held() == 0 and pool.checkedout() == 0
    finally:
        application.extensions["reads"].close()
        application.extensions["engine"].dispose()


def test_outlets_with_equal_hours_share_one_schedule_and_a_change_is_seen(connection):
    hours, holiday = '{"mo": ["08:00-12:00"]}', '{"2030-01-01": [[], "Holiday"]}'
    assert schedule_from_text("Europe/Berlin", hours, None) is schedule_from_text("Europe/Berlin", hours, None)
    assert schedule_from_text("Europe/Berlin", hours, holiday) is not schedule_from_text("Europe/Berlin", hours, None)
    assert schedule_from_text("Europe/Berlin", hours, None) is not schedule_from_text("Europe/London", hours, None)

    add_outlet(connection, "OUT-R1", hours="Mo-Su 08:00-20:00")
    add_outlet(connection, "OUT-R2", hours="Mo-Su 08:00-20:00", lon=CENTRE[0] + 0.01)
    tomorrow = days_ahead(1)
    at = local(tomorrow, 10).astimezone(timezone.utc)
    before = {o["code"]: o for o in nearest_answers(connection, Origin(*CENTRE), at, n=2)}
    assert before["OUT-R1"]["open_now"] and before["OUT-R2"]["open_now"]
    set_exception(connection, "OUT-R2", tomorrow, DayException((), "Inventory"))
    after = {o["code"]: o for o in nearest_answers(connection, Origin(*CENTRE), at, n=2)}
    assert after["OUT-R1"]["open_now"] is True
    assert after["OUT-R2"]["open_now"] is False and after["OUT-R2"]["today"]["note"] == "Inventory"
    # Closed all of tomorrow: it opens again the day after, at 08:00; OUT-R1 closes at 20:00 as before.
    assert after["OUT-R2"]["next_opening"] == local(tomorrow + timedelta(days=1), 8).isoformat()
    assert after["OUT-R2"]["closes_at"] is None and after["OUT-R1"]["closes_at"] == local(tomorrow, 20).isoformat()


@pytest.mark.parametrize("hours, exceptions", [
    ("Mo-Fr 08:00-12:00,13:00-17:00; Sa 22:00-02:00", None),
    ("24/7", '{"2026-03-31": [[], "Stocktaking"]}'),
    ("Mo-Su 00:00-24:00", None),
    ("Mo-Sa 09:00-18:00", '{"2026-03-28": [["10:00-11:00"], "Short day"]}'),
    ("off", None),
    (None, None),
])
def test_the_kept_opening_state_equals_a_fresh_one(hours, exceptions):
    # Across the spring-forward night in Berlin (29 March 2026), every 7 minutes for six days.
    weekly = json.dumps(weekly_to_json(parse_weekly(hours))) if hours else None
    shared = schedule_from_text("Europe/Berlin", weekly, exceptions)
    at = datetime(2026, 3, 26, 0, 3, tzinfo=timezone.utc)
    while at < datetime(2026, 4, 1, tzinfo=timezone.utc):
        fresh = Schedule(shared.weekly, shared.tz, shared.exceptions)
        assert shared.opening(at).as_dict() == fresh.opening(at).as_dict(), at
        at += timedelta(minutes=7)
