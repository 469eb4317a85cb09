"""The triggers of migration 0004 keep outlets.service_capacities and outlets.exceptions_ahead in
step with outlet_services and outlet_exceptions, whoever writes them, and reads see every change
at once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from outlets.search import Origin
from outlets.store import load_outlet
from tests.outlet_data import CENTRE, add_outlet, nearest_answers

UTC = timezone.utc


def _kept(connection, code: str = "OUT-T1") -> tuple[dict, dict]:
    """The two kept columns of outlet ``code``."""
    return tuple(connection.execute(text("SELECT service_capacities, exceptions_ahead FROM outlets WHERE code = :c"),
                                    {"c": code}).one())


def _recomputed(connection, code: str = "OUT-T1") -> tuple[dict, dict]:
    """The same, aggregated afresh from the tables they summarise."""
    return tuple(connection.execute(text("""
        SELECT coalesce((SELECT jsonb_object_agg(service, capacity) FROM outlet_services WHERE outlet_id = o.id), '{}'),
               coalesce((SELECT jsonb_object_agg(day, jsonb_build_array(hours, note)) FROM outlet_exceptions
                          WHERE outlet_id = o.id AND day >= (now() AT TIME ZONE 'UTC')::date - 2), '{}')
          FROM outlets o WHERE code = :c"""), {"c": code}).one())


def test_the_store_and_hand_written_sql_both_keep_the_columns(connection):
    add_outlet(connection, services={"billing": 2, "meter": 1})
    assert _kept(connection) == ({"billing": 2, "meter": 1}, {}) == _recomputed(connection)
    outlet_id = connection.execute(text("SELECT id FROM outlets WHERE code = 'OUT-T1'")).scalar_one()
    day = datetime.now(UTC).date() + timedelta(days=3)
    statements = [
        ("INSERT INTO outlet_services VALUES (:o, 'complaints', 4)", {}),
        ("UPDATE outlet_services SET capacity = 7 WHERE outlet_id = :o AND service = 'billing'", {}),
        ("DELETE FROM outlet_services WHERE outlet_id = :o AND service = 'meter'", {}),
        ("INSERT INTO outlet_exceptions VALUES (:o, :d, '[]', 'Holiday')", {"d": day}),
        ("UPDATE outlet_exceptions SET hours = '[\"10:00-12:00\"]', note = 'Short day' WHERE outlet_id = :o", {}),
        # A row moved to another outlet changes both outlets.
        ("UPDATE outlet_services SET outlet_id = :other WHERE outlet_id = :o AND service = 'complaints'", {}),
        ("DELETE FROM outlet_exceptions WHERE outlet_id = :o", {}),
    ]
    add_outlet(connection, "OUT-T2", services={"billing": 1})
    other = connection.execute(text("SELECT id FROM outlets WHERE code = 'OUT-T2'")).scalar_one()
    seen = []
    for sql, values in statements:
        connection.execute(text(sql), {"o": outlet_id, "other": other, **values})
        for code in ("OUT-T1", "OUT-T2"):
            assert _kept(connection, code) == _recomputed(connection, code), sql
        seen.append(_kept(connection))
    assert seen[1][0] == {"billing": 7, "meter": 1, "complaints": 4}
    assert seen[4][1] == {day.isoformat(): [["10:00-12:00"], "Short day"]}
    assert _kept(connection) == ({"billing": 7}, {})
    assert _kept(connection, "OUT-T2")[0] == {"billing": 1, "complaints": 4}


def test_one_statement_over_many_outlets_keeps_each(connection):
    for index in range(30):
        add_outlet(connection, f"OUT-M{index:02d}", services={"billing": 1})
    day = datetime.now(UTC).date() + timedelta(days=5)
    connection.execute(text("INSERT INTO outlet_exceptions SELECT id, :d, '[]', 'Closed' FROM outlets "
                            "WHERE code LIKE 'OUT-M%'"), {"d": day})
    connection.execute(text("UPDATE outlet_services SET capacity = 3 WHERE outlet_id IN "
                            "(SELECT id FROM outlets WHERE code LIKE 'OUT-M%')"))
    kept = connection.execute(text("SELECT DISTINCT service_capacities, exceptions_ahead FROM outlets "
                                   "WHERE code LIKE 'OUT-M%'")).all()
    assert [tuple(row) for row in kept] == [({"billing": 3}, {day.isoformat(): [[], "Closed"]})]


def test_days_long_past_are_not_kept(connection):
    add_outlet(connection)
    today = datetime.now(UTC).date()
    connection.execute(text("INSERT INTO outlet_exceptions SELECT id, d::date, '[]', 'Closed' FROM outlets, "
                            "unnest(CAST(:days AS date[])) AS d WHERE code = 'OUT-T1'"),
                       {"days": [today - timedelta(days=30), today - timedelta(days=2), today + timedelta(days=1)]})
    assert sorted(_kept(connection)[1]) == [(today - timedelta(days=2)).isoformat(), (today + timedelta(days=1)).isoformat()]


def test_a_search_sees_a_holiday_the_moment_it_is_written(connection):
    # Open every day from 08:00 to 20:00; the search at noon tomorrow finds it open, then closed.
    add_outlet(connection, hours="Mo-Su 08:00-20:00")
    tomorrow_noon = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time().replace(hour=12),
                                     tzinfo=timezone(timedelta(hours=1)))
    first = nearest_answers(connection, Origin(*CENTRE), datetime.now(UTC), n=1, open_at=tomorrow_noon)
    assert first and first[0]["open_at"] is True
    connection.execute(text("INSERT INTO outlet_exceptions SELECT id, :d, '[]', 'Holiday' FROM outlets "
                            "WHERE code = 'OUT-T1'"), {"d": tomorrow_noon.date()})
    assert nearest_answers(connection, Origin(*CENTRE), datetime.now(UTC), n=1, open_at=tomorrow_noon) == []
    assert load_outlet(connection, "OUT-T1").schedule.note(tomorrow_noon.date()) == "Holiday"
