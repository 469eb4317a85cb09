"""Reliability indices over PostGIS and HTTP: interruptions read from frozen steps (partial
restoration, a nested outage, planned work, a reclose, an outage still in progress), per
feeder and cell, CSV, bad input, and the demo city's year of history with its major event days."""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import text

from geo.demo import DemoContext
from outages.history_demo import History, add_outage_history, plan_history, write_history
from outages.reliability_data import ReliabilityQuery, read_interruptions, reliability_report
from tests.accounts import client_as
from tests.networks import protected_feeder
from topology.demo import city_for, generate_city
from topology.index import Topology
from topology.loader import load_network
from topology.read import read_network

PROBLEM = "application/problem+json"
JUNE = datetime(2026, 6, 2, 10, 0, tzinfo=timezone.utc)


def _at(hours: float) -> datetime:
    return JUNE + timedelta(hours=hours)


@pytest.fixture()
def june(connection):
    """protected_feeder (six customers) and a June written as the lifecycle writes it:

    1. T1 (C1, C2, C3) at 10:00; C3 back at 10:30, C1 and C2 at 11:30 (partial restoration);
    2. nested in it, C1 out again from 12:00 to 13:00;
    3. R1 (C4, C5) recloses on 10 June: out for 2 minutes (momentary);
    4. planned work at C9 on 15 June, 4 hours.
    """
    load_network(connection, protected_feeder())
    ids = dict(connection.execute(text("SELECT code, id FROM service_points")).all())
    history = History()

    def outage(number, origin, device, kind, customers, start, steps, parent=None):
        end = steps[-1][0]
        history.outages.append((number, None, origin, device, kind, "F1", "planned" if origin == "planned" else "equipment",
                                start, start if origin == "planned" else None, end if origin == "planned" else None,
                                len(customers), parent, (end - start) < timedelta(minutes=5), end))
        history.steps.append((number, 1, "affected", [ids[c] for c in customers], start))
        for k, (at, back) in enumerate(steps, start=2):
            history.steps.append((number, k, "restored", [ids[c] for c in back], at))
        history.events.append((number, "created", None, "confirmed", start, {}))

    outage(1, "manual", "T1", "transformer", ["C1", "C2", "C3"], _at(0), [(_at(0.5), ["C3"]), (_at(1.5), ["C1", "C2"])])
    outage(2, "manual", "C1", "service", ["C1"], _at(2), [(_at(3), ["C1"])], parent=1)
    outage(3, "manual", "R1", "recloser", ["C4", "C5"], _at(8 * 24), [(_at(8 * 24) + timedelta(minutes=2), ["C4", "C5"])])
    outage(4, "planned", "C9", "service", ["C9"], _at(13 * 24 - 1), [(_at(13 * 24 + 3), ["C9"])])
    write_history(connection, history)
    return ids


def _report(client, **query):
    answer = client.get("/api/reliability", query_string=query)
    assert answer.status_code == 200, answer.json
    return answer.json


def test_the_steps_become_interruptions_each_with_its_own_restore_time(connection, june):
    found = read_interruptions(connection, date(2026, 6, 1), date(2026, 6, 30), "UTC")
    minutes = {(int(c), int(o)): m for c, o, m in zip(found.customer, found.outage, found.minutes())}
    assert sorted(minutes.values()) == [2.0, 2.0, 30.0, 60.0, 90.0, 90.0, 240.0]
    c1 = june["C1"]
    assert sorted(m for (c, _), m in minutes.items() if c == c1) == [60.0, 90.0]  # the nested outage apart


def test_indices_over_http_by_hand_with_an_outage_still_in_progress(app, june):
    dispatcher = client_as(app, "dispatcher")
    assert dispatcher.post("/api/outages", json={"device": "T1"}).status_code == 201  # C1, C2, C3 out now
    today = date.today().isoformat()
    report = _report(dispatcher, **{"from": "2026-06-01", "to": today, "cemi_n": "1"})
    [row] = report["rows"]
    found = row["indices"]
    assert (row["key"], row["customers_served"]) == ("system", 6)
    # Sustained: 3 (T1) + 1 (nested) + 1 (planned) + 3 (in progress) = 8 over 6 customers.
    assert found["customer_interruptions"] == 8 and found["saifi"] == pytest.approx(8 / 6)
    # Minutes: 30 + 90 + 90 + 60 + 240 = 510; the outage in progress adds none yet.
    assert found["saidi"] == pytest.approx(85.0) and found["in_progress"] == 3
    assert found["caidi"] == pytest.approx(102.0)
    assert found["customers_interrupted"] == 4 and found["caifi"] == pytest.approx(2.0)
    assert found["maifi"] == pytest.approx(2 / 6) and found["maifi_e"] == pytest.approx(2 / 6)
    assert found["cemi"] == pytest.approx(3 / 6)  # C1 (3), C2 (2), C3 (2) had more than one
    assert report["med"]["available"] is False and row["indices_excluding_med"] is None  # half a year of history
    months = {m["month"]: m for m in report["months"]}
    assert months["2026-06"]["saidi"] == pytest.approx(85.0) and months["2026-07"]["saifi"] == 0.0
    assert months[today[:7]]["saifi"] == pytest.approx(0.5) and months[today[:7]]["saidi"] == 0.0

    planned_out = _report(dispatcher, **{"from": "2026-06-01", "to": today, "exclude_planned": "true"})
    assert planned_out["rows"][0]["indices"]["saidi"] == pytest.approx(270 / 6)
    assert planned_out["rows"][0]["indices"]["saifi"] == pytest.approx(7 / 6)


def test_per_feeder_and_per_cell(app, june):
    dispatcher = client_as(app, "planner")
    [feeder] = _report(dispatcher, **{"from": "2026-06-01", "to": "2026-06-30", "by": "feeder"})["rows"]
    assert (feeder["key"], feeder["customers_served"]) == ("F1", 6)
    assert feeder["indices"]["saidi"] == pytest.approx(85.0)
    [outside] = _report(dispatcher, **{"from": "2026-06-01", "to": "2026-06-30", "by": "cell"})["rows"]
    assert outside["key"] is None and outside["customers_served"] == 6  # no cell drawn: all outside
    assert outside["indices"]["saifi"] == pytest.approx(5 / 6)


def test_csv_has_a_row_per_feeder_with_and_without_major_event_days(app, june):
    admin = client_as(app, "admin")
    for path, query in (("/api/reliability.csv", {}), ("/api/reliability", {"format": "csv"})):
        answer = admin.get(path, query_string={"from": "2026-06-01", "to": "2026-06-30", "by": "feeder", **query})
        assert answer.status_code == 200 and answer.mimetype == "text/csv"
        assert "attachment" in answer.headers["Content-Disposition"]
        header, row = answer.get_data(as_text=True).splitlines()
        assert header.startswith("key,customers_served,saidi,saifi,caidi,caifi,maifi,maifi_e,cemi3,")
        assert "saidi_xmed" in header and row.startswith("F1,6,85,0.833333,102,")


@pytest.mark.parametrize("query, field", [
    ({"from": "2026-13-01"}, "from"), ({"to": "yesterday"}, "to"), ({"from": "2026-06-30", "to": "2026-06-01"}, "from"),
    ({"by": "substation"}, "by"), ({"exclude_med": "perhaps"}, "exclude_med"), ({"cemi_n": "-1"}, "cemi_n"),
    ({"format": "xlsx"}, "format"), ({"from": "2000-01-01", "to": "2026-01-01"}, "from"),
])
def test_bad_input_is_a_problem_in_both_languages(app, query, field):
    dispatcher = client_as(app, "dispatcher")
    english = dispatcher.get("/api/reliability", query_string=query)
    assert english.status_code == 400 and english.content_type == PROBLEM and english.json["field"] == field
    chinese = dispatcher.get("/api/reliability", query_string=query, headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 400 and chinese.json["detail"] != english.json["detail"]


def test_the_demo_citys_year_of_history_has_storms_as_major_event_days(app, connection):
    customers = 2000
    load_network(connection, generate_city(customers, seed=3))
    started = time.perf_counter()
    add_outage_history(DemoContext(connection, customers, 3, city_for(customers).bbox, "demo", lambda _: None))
    assert time.perf_counter() - started < 5.0
    counts = connection.execute(text(
        "SELECT count(*) FILTER (WHERE state = 'restored'), count(*), min(started_at), max(restored_at) FROM outages")).one()
    assert counts[0] == counts[1] > 100
    assert counts[3] < datetime.now(timezone.utc) and counts[2] > datetime.now(timezone.utc) - timedelta(days=366)
    # Every affected customer is given back exactly once, by the outage's restored steps.
    unbalanced = connection.execute(text(
        "SELECT count(*) FROM (SELECT outage_id, sum(customer_count) FILTER (WHERE kind = 'affected') AS a, "
        "sum(customer_count) FILTER (WHERE kind = 'restored') AS r FROM outage_steps GROUP BY outage_id) s "
        "WHERE a IS DISTINCT FROM r")).scalar_one()
    assert unbalanced == 0
    report = _report(client_as(app, "dispatcher"))
    med = report["med"]
    assert med["available"] and med["basis"] == "including_period" and 1 <= len(med["days"]) <= 12
    [row] = report["rows"]
    assert row["indices_excluding_med"]["saidi"] < row["indices"]["saidi"]
    assert len(report["months"]) in (12, 13) and row["indices"]["maifi"] > 0


def test_the_history_is_the_same_for_the_same_seed(connection):
    load_network(connection, generate_city(1200, seed=5))
    data, version = read_network(connection)
    data.warm_lookups()
    topology = Topology(data, version=version)
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    first, again = plan_history(topology, 1200, 5, now), plan_history(topology, 1200, 5, now)
    assert first.outages == again.outages and len(first.steps) == len(again.steps)
    assert first.outages != plan_history(topology, 1200, 6, now).outages
    assert np.all([row[-1] < now for row in first.outages])
