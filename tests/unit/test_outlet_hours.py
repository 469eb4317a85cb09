"""Opening hours as pure functions: parsing, overnight intervals, exceptions, DST, slots."""
from __future__ import annotations

import doctest
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

import outlets.demo
import outlets.hours
import outlets.search
from tests.oracles import OpeningOracle
from outlets.hours import (
    DayException, HoursError, Interval, Schedule, format_weekly, parse_day, parse_exceptions, parse_interval,
    parse_intervals, parse_weekly, weekly_from_json, weekly_to_json, zone,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("module", [outlets.hours, outlets.search, outlets.demo])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def schedule(text: str, exceptions: str | None = None, tz: str = "Europe/Berlin") -> Schedule:
    return Schedule(parse_weekly(text), ZoneInfo(tz), parse_exceptions(exceptions))


@pytest.mark.parametrize("text, canonical", [
    ("Mo-Fr 08:00-12:00,13:00-17:00", "Mo-Fr 08:00-12:00,13:00-17:00"),
    ("Mo,Tu,We,Th,Fr 08:00-17:00; Sa 09:00-12:00", "Mo-Fr 08:00-17:00; Sa 09:00-12:00"),
    ("Mo-Sa 08:00-18:00; Sa 09:00-12:00", "Mo-Fr 08:00-18:00; Sa 09:00-12:00"),
    ("Fr-Mo 10:00-14:00", "Mo 10:00-14:00; Fr-Su 10:00-14:00"),
    ("Mo-Su 22:00-02:00", "Mo-Su 22:00-02:00"),
    ("Sa-Su 10:00-14:00", "Sa,Su 10:00-14:00"),
    ("Mo 22:00-00:00", "Mo 22:00-24:00"),
    ("Mo-Su 00:00-24:00", "24/7"),
    ("24/7", "24/7"),
    ("Mo-Fr 9:30-17:00; Su off", "Mo-Fr 09:30-17:00"),
    ("Mo 08:00\u201312:00", "Mo 08:00-12:00"),
    ("off", "off"),
])
def test_parses_and_formats_the_text_form(text, canonical):
    assert format_weekly(parse_weekly(text)) == canonical


@pytest.mark.parametrize("text, message", [
    ("Mo-Fx 08:00-12:00", "'Mo-Fx' is not a day"),
    ("Mo 8-12", "'8' is not a time of day"),
    ("Mo 08:00-25:00", "'25:00' is not a time of day"),
    ("Mo 24:00-02:00", "'24:00' is not a time of day"),
    ("Mo 08:60-09:00", "'08:60' is not a time of day"),
    ("Mo 08:00-08:00", "opens and closes at the same time"),
    ("Mo 08:00-12:00,11:00-13:00", "08:00-12:00 overlaps 11:00-13:00"),
    ("Mo", "names no hours"),
    ("Mo 08:00", "is not an interval"),
    ("Mo-We-Fr 08:00-12:00", "'Mo-We-Fr' is not a day or a range of days"),
])
def test_refuses_bad_hours_saying_why(text, message):
    with pytest.raises(HoursError, match=message):
        parse_weekly(text)


@pytest.mark.parametrize("value", [{"mo": [["08:00-12:00"]]}, {"mo": [8]}, {"mo": ["08:00-12:00", None]}])
def test_a_week_by_day_refuses_intervals_that_are_not_texts(value):
    with pytest.raises(HoursError, match="mo: .* is not an interval"):
        weekly_from_json(value)


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "Mars/Olympus", 7])
def test_only_a_places_iana_zone_is_a_zone(name):
    with pytest.raises(HoursError, match="is not an IANA time zone"):
        zone(name)


def test_the_edges_of_what_parses():
    assert parse_interval("08:59-23:59") == Interval(539, 1439)
    assert parse_intervals("08:00-12:00,12:00-13:00") == (Interval(480, 720), Interval(720, 780))  # adjoining
    assert parse_intervals(["08:00-12:00", "  ", ""]) == (Interval(480, 720),)  # blank entries are ignored
    assert not Interval(1320, 1440).overnight and Interval(1320, 1441).overnight
    assert schedule("Mo 22:00-24:00").day_hours(date(2026, 11, 30))["hours"] == [
        {"opens": "22:00", "closes": "24:00", "overnight": False}]


@pytest.mark.parametrize("text, accepted", [
    ("1899-12-31", False), ("1900-01-01", True), ("2200-12-31", True), ("2201-01-01", False)])
def test_dates_within_the_supported_years(text, accepted):
    if accepted:
        assert parse_day(text) == date.fromisoformat(text)
    else:
        with pytest.raises(ValueError, match="outside the years 1900 to 2200"):
            parse_day(text)


def test_zones_are_iana_names():
    assert outlets.hours.zone("Australia/Lord_Howe") == ZoneInfo("Australia/Lord_Howe")
    for name in ("Mars/Olympus_Mons", 42):
        with pytest.raises(HoursError, match="is not an IANA time zone"):
            outlets.hours.zone(name)


def test_unknown_hours_are_none():
    assert parse_weekly(None) is None and parse_weekly("") is None and parse_weekly("unknown") is None
    assert format_weekly(None) == "unknown"
    assert Schedule(None, BERLIN).is_open(berlin(2026, 12, 1, 10)) is None
    unknown = Schedule(None, BERLIN)
    assert unknown.closes_at(berlin(2026, 12, 1, 10)) is None and unknown.next_opening(berlin(2026, 12, 1, 10)) is None
    assert unknown.day_hours(date(2026, 12, 1)) == {
        "date": "2026-12-01", "known": False, "hours": [], "closed": None, "note": None}


def test_json_form_round_trips_and_accepts_the_text_form():
    week = parse_weekly("Mo-Fr 08:00-12:00,13:00-17:00; Sa 22:00-02:00")
    stored = weekly_to_json(week)
    assert stored["sa"] == ["22:00-02:00"] and "su" not in stored
    assert weekly_from_json(stored) == week
    assert weekly_from_json("Mo-Fr 08:00-12:00,13:00-17:00; Sa 22:00-02:00") == week
    with pytest.raises(HoursError, match="'xx' is not a day"):
        weekly_from_json({"xx": ["08:00-12:00"]})
    assert weekly_from_json({"Monday": "08:00-12:00", "tue": ["08:00-12:00"]}) == parse_weekly("Mo,Tu 08:00-12:00")
    assert weekly_from_json({"mo": {"08:00-12:00"}}) == parse_weekly("Mo 08:00-12:00")  # unhashable: not cached


def test_an_overnight_interval_belongs_to_the_day_it_starts():
    hours = schedule("Mo 22:00-02:00")  # 2026-11-30 is a Monday
    assert hours.is_open(berlin(2026, 11, 30, 21, 59)) is False
    assert hours.is_open(berlin(2026, 11, 30, 22, 0)) is True
    assert hours.is_open(berlin(2026, 12, 1, 1, 59)) is True
    assert hours.is_open(berlin(2026, 12, 1, 2, 0)) is False
    assert hours.closes_at(berlin(2026, 11, 30, 23)) == berlin(2026, 12, 1, 2)
    assert hours.day_hours(date(2026, 11, 30))["hours"] == [{"opens": "22:00", "closes": "02:00", "overnight": True}]
    assert hours.day_hours(date(2026, 12, 1))["closed"] is True


def test_adjoining_intervals_close_at_the_end_of_the_run():
    hours = schedule("Mo 18:00-24:00; Tu 00:00-06:00")
    assert hours.closes_at(berlin(2026, 11, 30, 19)) == berlin(2026, 12, 1, 6)


def test_open_around_the_clock_has_no_closing_time():
    assert schedule("24/7").closes_at(berlin(2026, 11, 30, 19)) is None
    assert schedule("24/7", "2026-12-03 off").closes_at(berlin(2026, 11, 30, 19)) == berlin(2026, 12, 3)
    assert schedule("24/7", "2026-12-08 off").closes_at(berlin(2026, 12, 1)) == berlin(2026, 12, 8)  # a week
    assert schedule("24/7", "2026-12-09 off").closes_at(berlin(2026, 12, 1, 12)) is None  # seven and a half days


def test_an_exception_closes_a_day_but_not_the_night_before():
    hours = schedule("Mo-Su 20:00-02:00", "2026-12-25 off Christmas Day")
    assert hours.is_open(berlin(2026, 12, 25, 1)) is True   # the 24th's night runs on
    assert hours.is_open(berlin(2026, 12, 25, 21)) is False
    assert hours.day_hours(date(2026, 12, 25)) == {
        "date": "2026-12-25", "known": True, "hours": [], "closed": True, "note": "Christmas Day"}
    assert hours.next_opening(berlin(2026, 12, 25, 3)) == berlin(2026, 12, 26, 20)


def test_special_hours_replace_the_week():
    hours = schedule("Mo-Fr 08:00-17:00", "2026-12-24 08:00-12:00 Christmas Eve")
    assert hours.is_open(berlin(2026, 12, 24, 13)) is False
    assert hours.note(date(2026, 12, 24)) == "Christmas Eve"
    assert [hours.local(s.start).strftime("%H:%M") for s in hours.slots(date(2026, 12, 24), 60)] == \
        ["08:00", "09:00", "10:00", "11:00"]


def test_next_opening_skips_closed_days_and_gives_up_after_the_horizon():
    hours = schedule("Mo 09:00-10:00")
    assert hours.next_opening(berlin(2026, 12, 1, 12)) == berlin(2026, 12, 7, 9)  # Tuesday -> next Monday
    assert schedule("off").next_opening(berlin(2026, 12, 1, 12)) is None


@pytest.mark.parametrize("exceptions", [None, "2026-12-01 off"])
def test_next_opening_is_after_the_given_instant(exceptions):
    hours = schedule("Mo-Fr 08:00-12:00", exceptions)
    assert hours.next_opening(berlin(2026, 11, 30, 8)) == berlin(2026, 12, 1 if not exceptions else 2, 8)


def test_the_next_opening_may_lie_exactly_at_the_horizon():
    hours = schedule("Mo 09:00-10:00", "2026-12-07 off; 2026-12-14 off; 2026-12-21 off; 2026-12-28 off")
    assert hours.next_opening(berlin(2026, 12, 4, 9)) == berlin(2027, 1, 4, 9)  # 31 days on
    assert hours.next_opening(berlin(2026, 12, 4, 8, 59)) is None


def test_hours_that_fall_into_the_spring_gap_are_no_opening():
    hours = schedule("Su 02:30-03:30")  # 2027-03-28: 02:30 is 03:30 CEST, when it closes
    assert hours.next_opening(berlin(2027, 3, 27, 12)) == berlin(2027, 4, 4, 2, 30)
    assert hours.slots(date(2027, 3, 28), 15) == []


def _labels(hours: Schedule, day: date, minutes: int) -> list[str]:
    return [hours.local(s.start).strftime("%H:%M%z") for s in hours.slots(day, minutes)]


def test_slots_on_the_spring_forward_night_skip_the_missing_hour():
    hours = schedule("Mo-Su 01:00-04:00")  # 2027-03-28: 02:00 CET becomes 03:00 CEST
    assert _labels(hours, date(2027, 3, 28), 30) == ["01:00+0100", "01:30+0100", "03:00+0200", "03:30+0200"]


def test_slots_on_the_fall_back_night_repeat_the_hour_with_its_offset():
    hours = schedule("Mo-Su 01:00-04:00")  # 2026-10-25: 03:00 CEST becomes 02:00 CET
    assert _labels(hours, date(2026, 10, 25), 30) == [
        "01:00+0200", "01:30+0200", "02:00+0200", "02:30+0200", "02:00+0100", "02:30+0100", "03:00+0100",
        "03:30+0100"]


def test_an_opening_time_in_the_gap_moves_forward_with_the_clock():
    assert _labels(schedule("Su 02:30-04:00"), date(2027, 3, 28), 30) == ["03:30+0200"]


def test_overnight_slots_are_listed_under_the_date_they_start_on():
    hours = schedule("Mo 22:00-02:00")
    assert _labels(hours, date(2026, 11, 30), 60) == ["22:00+0100", "23:00+0100"]
    assert _labels(hours, date(2026, 12, 1), 60) == ["00:00+0100", "01:00+0100"]


def test_a_slot_must_end_before_closing():
    assert _labels(schedule("Mo 08:00-09:10"), date(2026, 11, 30), 20) == ["08:00+0100", "08:20+0100", "08:40+0100"]


def test_slots_in_a_half_hour_dst_zone_follow_real_time():
    # Lord Howe Island moves its clocks by 30 minutes (2026-10-04 02:00 -> 02:30).
    hours = schedule("Mo-Su 01:00-04:00", tz="Australia/Lord_Howe")
    # 2.5 hours of real time: room for two 60-minute slots.
    assert _labels(hours, date(2026, 10, 4), 60) == ["01:00+1030", "02:30+1100"]


@pytest.mark.parametrize("text, message", [
    ("2026-02-30 off", "not a date"),
    ("2026-12-25", "give its hours"),
    ("2026-12-25 off; 2026-12-25 09:00-10:00", "given twice"),
    ("2026-12-25 9-10", "not a time of day"),
])
def test_refuses_bad_exceptions(text, message):
    with pytest.raises(HoursError, match=message):
        parse_exceptions(text)


def test_exceptions_from_objects():
    parsed = parse_exceptions([{"date": "2026-12-24", "hours": ["08:00-12:00"], "note": "Eve"},
                               {"date": "2026-12-25", "hours": "off"}])
    assert parsed[date(2026, 12, 24)] == DayException((Interval(480, 720),), "Eve")
    assert parsed[date(2026, 12, 25)].intervals == ()
    with pytest.raises(HoursError, match="needs a date"):
        parse_exceptions([{"hours": "off"}])
    assert parse_exceptions([{"date": "2026-12-24", "note": "x" * 200}])[date(2026, 12, 24)].note == "x" * 200


@pytest.mark.parametrize("note", ["x" * 201, "line\nbreak", 42])
def test_an_exception_note_is_a_short_plain_text(note):
    with pytest.raises(HoursError, match="the note must be a text of up to 200 characters"):
        parse_exceptions([{"date": "2026-12-24", "hours": "off", "note": note}])


# -- properties ------------------------------------------------------------------------------------
_times = st.integers(0, 47).map(lambda half_hours: half_hours * 30)
_interval = st.tuples(_times, _times).filter(lambda pair: pair[0] != pair[1]).map(
    lambda pair: f"{pair[0] // 60:02d}:{pair[0] % 60:02d}-{pair[1] // 60:02d}:{pair[1] % 60:02d}")
_week = st.lists(st.tuples(st.sampled_from(outlets.hours.DAYS), _interval), min_size=1, max_size=6)
_zones = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"])
_instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC))


def _schedule(rules, zone) -> Schedule | None:
    try:
        return Schedule(parse_weekly("; ".join(f"{d} {i}" for d, i in rules)), ZoneInfo(zone))
    except HoursError:
        return None  # overlapping rules: refused, which other tests cover


@settings(max_examples=150, deadline=None)
@given(_week, _zones, _instants)
def test_the_next_opening_is_open_and_the_moment_before_it_is_not(rules, zone, at):
    hours = _schedule(rules, zone)
    if hours is None:
        return
    opening = hours.next_opening(at)
    if opening is not None:
        assert opening > at
        assert hours.is_open(opening) is True
        assert hours.is_open(opening - timedelta(seconds=1)) is False


@settings(max_examples=150, deadline=None)
@given(_week, _zones, st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
       st.sampled_from([15, 20, 30, 45]))
def test_every_slot_lies_within_opening_hours_and_on_its_date(rules, zone, day, minutes):
    hours = _schedule(rules, zone)
    if hours is None:
        return
    slots = hours.slots(day, minutes)
    assert slots == sorted(set(slots))
    for slot in slots:
        assert hours.local_date(slot.start) == day
        assert slot.end - slot.start == timedelta(minutes=minutes)
        assert hours.is_open(slot.start) and hours.is_open(slot.end - timedelta(seconds=1))


@settings(max_examples=100, deadline=None)
@given(_week)
def test_the_canonical_text_parses_back_to_the_same_week(rules):
    hours = _schedule(rules, "UTC")
    if hours is None:
        return
    assert parse_weekly(format_weekly(hours.weekly)) == hours.weekly


# -- the minute-by-minute oracle (tests/oracles.py), from the raw rules --------------------------
# Clock changes: (zone, local date of the change). Havana changes at midnight, Lord Howe by 30 minutes.
_CHANGES = [
    ("Europe/Berlin", date(2026, 3, 29)), ("Europe/Berlin", date(2026, 10, 25)),
    ("Europe/Berlin", date(2027, 3, 28)), ("Europe/Berlin", date(2027, 10, 31)),
    ("America/New_York", date(2026, 3, 8)), ("America/New_York", date(2026, 11, 1)),
    ("Australia/Lord_Howe", date(2026, 4, 5)), ("Australia/Lord_Howe", date(2026, 10, 4)),
    ("America/Havana", date(2026, 3, 8)), ("America/Havana", date(2026, 11, 1)),
    ("UTC", date(2026, 6, 1)),
]
# Clock times near the changes are drawn often; the rest of the day on the quarter hour.
_NEAR = [0, 30, 60, 90, 105, 120, 135, 150, 165, 180, 210, 1380, 1410, 1425]
_clock_times = st.one_of(st.sampled_from(_NEAR), st.integers(0, 95).map(lambda quarters: quarters * 15))


@st.composite
def _day_rules(draw) -> list[tuple[int, int]]:
    """One day's intervals as clock minutes (opens, closes); the last may run overnight."""
    points = sorted(set(draw(st.lists(_clock_times, max_size=5))))
    pairs = list(zip(points[0::2], points[1::2]))
    if len(points) % 2:
        end = draw(st.one_of(st.sampled_from(_NEAR + [1440]), _clock_times))
        if end != points[-1]:
            pairs.append((points[-1], end))
    return pairs


def _text(pairs: list[tuple[int, int]]) -> str:
    """Clock-minute pairs in the text form (``off`` for none)."""
    clock = lambda m: f"{m // 60:02d}:{m % 60:02d}"  # noqa: E731
    return ",".join(f"{clock(a)}-{clock(b)}" for a, b in pairs) or "off"


@st.composite
def _schedules(draw):
    """(week, exceptions, zone, date of a clock change): a random week and exceptions near the change."""
    zone, change = draw(st.sampled_from(_CHANGES))
    week = {day: draw(_day_rules()) for day in range(7)}
    dates = draw(st.lists(st.integers(-2, 2), max_size=2, unique=True))
    exceptions = {change + timedelta(days=d): draw(_day_rules()) for d in dates}
    return week, exceptions, zone, change


def _built(week, exceptions, zone) -> Schedule:
    """The schedule under test, from the rules' text forms."""
    text = "; ".join(f"{outlets.hours.DAYS[d]} {_text(p)}" for d, p in week.items() if p) or "off"
    return Schedule(parse_weekly(text), ZoneInfo(zone),
                    parse_exceptions("; ".join(f"{d.isoformat()} {_text(p)}" for d, p in exceptions.items())))


def _oracle(week, exceptions, zone, change) -> OpeningOracle:
    """The oracle over the weeks around the change (every test's window is the same: built once)."""
    return OpeningOracle(week, exceptions, ZoneInfo(zone), change - timedelta(days=8), change + timedelta(days=48))


@settings(max_examples=150, deadline=None)
@given(_schedules(), st.integers(-18 * 60, 42 * 60), st.sampled_from([0, 0, 1, 59]),
       st.sampled_from([15, 20, 30, 45, 60]))
def test_the_schedule_agrees_with_the_minute_by_minute_oracle_across_clock_changes(rules, minute, second, length):
    week, exceptions, zone, change = rules
    hours = _built(week, exceptions, zone)
    oracle = _oracle(*rules)
    midnight = datetime.combine(change, datetime.min.time(), UTC)
    # open or closed every quarter hour, when it closes every hour, from the day before to the day after
    for quarter in range(-24 * 4, 48 * 4):
        at = midnight + timedelta(minutes=15 * quarter)
        assert hours.is_open(at) is oracle.is_open(at), at.astimezone(hours.tz)
        if quarter % 4 == 0:
            assert hours.closes_at(at) == oracle.closes_at(at), at.astimezone(hours.tz)
    at = midnight + timedelta(minutes=minute, seconds=second)
    assert hours.is_open(at) is oracle.is_open(at)
    assert hours.closes_at(at) == oracle.closes_at(at)
    assert hours.next_opening(at) == oracle.next_opening(at)
    for day in (change - timedelta(days=1), change, change + timedelta(days=1)):
        assert [(s.start, s.end) for s in hours.slots(day, length)] == oracle.slots(day, length), day


@settings(max_examples=100, deadline=None)
@given(_schedules(), st.integers(-7 * 24, 14 * 24))
def test_closing_and_next_opening_agree_with_the_oracle_on_the_hour(rules, hour):
    week, exceptions, zone, change = rules
    hours = _built(week, exceptions, zone)
    at = datetime.combine(change, datetime.min.time(), UTC) + timedelta(hours=hour)
    oracle = _oracle(*rules)
    assert hours.closes_at(at) == oracle.closes_at(at)
    assert hours.next_opening(at) == oracle.next_opening(at)


@settings(max_examples=40, deadline=None)
@given(_schedules(), st.integers(7, 180))
def test_the_kept_opening_state_agrees_with_the_oracle_as_time_goes_by(rules, step):
    week, exceptions, zone, change = rules
    hours, oracle = _built(week, exceptions, zone), _oracle(*rules)
    at = datetime.combine(change, datetime.min.time(), UTC) - timedelta(days=1)
    while at < datetime.combine(change, datetime.min.time(), UTC) + timedelta(days=2):
        state = hours.opening(at)
        expected_open = oracle.is_open(at)
        assert (state.hours_known, state.open_now) == (True, expected_open), at
        assert state.closes_at == (oracle.closes_at(at) if expected_open else None)
        assert state.next_opening == (None if expected_open else oracle.next_opening(at))
        assert state.today["date"] == at.astimezone(ZoneInfo(zone)).date().isoformat()
        assert state.hours == hours.hours_text == format_weekly(hours.weekly)
        at += timedelta(minutes=step)


@pytest.mark.parametrize("text, zone, at, expected", [
    # the fall-back night: a closing in the repeated hour is its second showing
    ("Sa 22:00-02:30", "Europe/Berlin", datetime(2026, 10, 25, 0, 45, tzinfo=UTC), True),     # 02:45 CEST
    ("Sa 22:00-02:30", "Europe/Berlin", datetime(2026, 10, 25, 1, 15, tzinfo=UTC), True),     # 02:15 CET
    ("Sa 22:00-02:30", "Europe/Berlin", datetime(2026, 10, 25, 1, 30, tzinfo=UTC), False),    # 02:30 CET
    ("Su 02:15-02:45", "Europe/Berlin", datetime(2026, 10, 25, 0, 15, tzinfo=UTC), True),     # 02:15 CEST
    ("Su 02:15-02:45", "Europe/Berlin", datetime(2026, 10, 25, 1, 44, tzinfo=UTC), True),     # 02:44 CET
    ("Sa 23:00-00:30", "America/Havana", datetime(2026, 11, 1, 5, 15, tzinfo=UTC), True),     # 00:15 CST
    ("Su 01:00-01:45", "Australia/Lord_Howe", datetime(2026, 4, 4, 14, 50, tzinfo=UTC), True),  # 01:20 +10:30
])
def test_a_closing_in_the_repeated_hour_is_its_second_showing(text, zone, at, expected):
    assert schedule(text, tz=zone).is_open(at) is expected
