"""Opening hours: a weekly schedule in the outlet's wall-clock time, dated exceptions, slots.

An interval belongs to the day it *starts* on and is kept as minutes after that day's local
midnight; an interval that closes at or before it opens runs overnight (``22:00-02:00`` is
``(1320, 1560)``). An exception replaces the intervals that start on its date (an empty one
closes the day); the tail of the previous night still runs into it.

Wall-clock times become instants in the outlet's IANA zone: a start inside a spring-forward
gap moves forward with the clock (02:30 becomes 03:30), a start in the repeated hour of a
fall-back night takes its first occurrence and an end its second, so an overnight interval on
that night lasts an hour longer, as the staff's shift does. Slots step through real time, so
their local labels follow the offset change.

The text form is a subset of OpenStreetMap's ``opening_hours``:

>>> hours = parse_weekly("Mo-Fr 08:00-12:00,13:00-17:00; Sa 22:00-02:00")
>>> format_weekly(hours)
'Mo-Fr 08:00-12:00,13:00-17:00; Sa 22:00-02:00'
>>> hours[5]
(Interval(start=1320, end=1560),)
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from geo.i18n import _

__all__ = [
    "DAYS", "FIRST_YEAR", "LAST_YEAR", "in_range", "parse_day", "HoursError", "Interval", "DayException", "Schedule", "Slot",
    "Opening",
    "parse_interval", "parse_intervals", "parse_weekly", "format_weekly", "weekly_to_json",
    "weekly_from_json", "parse_exceptions", "format_intervals", "zone",
]

DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
DAY_MINUTES = 24 * 60
UTC = timezone.utc
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_CLOSED_WORDS = {"off", "closed"}

WeeklyHours = tuple[tuple["Interval", ...], ...]


# Dates a schedule can be asked about; arithmetic a day beyond year 1 or 9999 would overflow.
FIRST_YEAR, LAST_YEAR = 1900, 2200


def parse_day(text: str) -> date:
    """A YYYY-MM-DD date within the supported years; ValueError says what is wrong.

    >>> parse_day("2026-12-25")
    datetime.date(2026, 12, 25)
    """
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(_("is not a date (YYYY-MM-DD)")) from None
    if not in_range(day):
        raise ValueError(_("is outside the years %(first)s to %(last)s", first=FIRST_YEAR, last=LAST_YEAR))
    return day


def in_range(value: date) -> bool:
    """Whether ``value`` (a date or datetime) lies in the years a schedule can handle."""
    return FIRST_YEAR <= value.year <= LAST_YEAR


class HoursError(ValueError):
    """Opening hours that cannot be understood; the message says which part and why."""


@dataclass(frozen=True, order=True)
class Interval:
    """Minutes after the local midnight of the day it starts on; ``end`` > 1440 runs overnight."""

    start: int
    end: int

    @property
    def overnight(self) -> bool:
        """Whether it closes on the next day."""
        return self.end > DAY_MINUTES

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end % DAY_MINUTES if self.end != DAY_MINUTES else self.end)}"


@dataclass(frozen=True)
class DayException:
    """A dated change: the intervals that start on that date (empty: closed) and why."""

    intervals: tuple[Interval, ...]
    note: str | None = None


@dataclass(frozen=True, order=True)
class Slot:
    """A bookable visit from ``start`` to ``end``, both in UTC (``Schedule.local`` shows them)."""

    start: datetime
    end: datetime


def _clock(minutes: int) -> str:
    """Minutes after midnight as HH:MM."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(text: str, *, allow_24: bool) -> int:
    """HH:MM as minutes after midnight (24:00 only where ``allow_24``)."""
    match = _TIME.match(text.strip())
    if not match:
        raise HoursError(_("%(text)r is not a time of day (write HH:MM, e.g. 08:30)", text=text.strip()))
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise HoursError(_("%(text)r is not a time of day (00:00 to 23:59, or 24:00 as a closing time)", text=text.strip()))
    return hours * 60 + minutes


def parse_interval(text: str) -> Interval:
    """``"08:00-12:00"`` -> Interval; a closing time at or before the opening runs overnight.

    >>> parse_interval("22:00-02:00")
    Interval(start=1320, end=1560)
    >>> parse_interval("00:00-24:00")
    Interval(start=0, end=1440)
    """
    parts = text.strip().replace("\u2013", "-").split("-")
    if len(parts) != 2:
        raise HoursError(_("%(text)r is not an interval (write HH:MM-HH:MM, e.g. 08:00-12:00)", text=text.strip()))
    start, end = _minutes(parts[0], allow_24=False), _minutes(parts[1], allow_24=True)
    if end == start:
        raise HoursError(_("%(text)r opens and closes at the same time", text=text.strip()))
    if end < start:
        end += DAY_MINUTES
    return Interval(start, end)


def _checked_day(intervals: Iterable[Interval], where: str) -> tuple[Interval, ...]:
    """One day's intervals in order; HoursError when two overlap."""
    ordered = tuple(sorted(intervals))
    for before, after in zip(ordered, ordered[1:]):
        if after.start < before.end:
            raise HoursError(_("%(where)s: %(before)s overlaps %(after)s", where=where, before=before, after=after))
    return ordered


def parse_intervals(text: str | Iterable[str], where: str = "hours") -> tuple[Interval, ...]:
    """``"08:00-12:00,13:00-17:00"`` (or a list of such strings; ``off`` or empty: closed)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    odd = [item for item in items if not isinstance(item, str)]
    if odd:
        raise HoursError(_("%(where)s: %(value)r is not an interval (write HH:MM-HH:MM, e.g. 08:00-12:00)", where=where, value=odd[0]))
    items = [item.strip() for item in items if item.strip()]
    if len(items) == 1 and items[0].lower() in _CLOSED_WORDS:
        return ()
    try:
        return _checked_day((parse_interval(item) for item in items), where)
    except HoursError as error:
        raise HoursError(error.args[0] if str(error).startswith(where)
                         else _("%(where)s: %(error)s", where=where, error=error)) from None


def _days(selector: str) -> list[int]:
    """``"Mo-Fr"``, ``"Sa,Su"``, ``"Fr-Mo"`` (wrapping) -> weekday numbers (Monday = 0)."""
    days: list[int] = []
    for part in selector.split(","):
        ends = part.strip().split("-")
        if len(ends) > 2 or not all(end in DAYS for end in ends):
            raise HoursError(_("%(part)r is not a day or a range of days (use %(days)s, e.g. Mo-Fr)", part=part.strip(), days=' '.join(DAYS)))
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        days.extend((first + step) % 7 for step in range((last - first) % 7 + 1))
    return days


def parse_weekly(text: str | None) -> WeeklyHours | None:
    """The OSM-style text form -> seven tuples of intervals; None or ``unknown`` -> None.

    Later rules replace earlier ones for the days they name (``Mo-Sa 08:00-18:00; Sa 09:00-12:00``).

    >>> parse_weekly("24/7")[6]
    (Interval(start=0, end=1440),)
    >>> parse_weekly("Mo-Fx 08:00-12:00")
    Traceback (most recent call last):
    ...
    outlets.hours.HoursError: rule 'Mo-Fx 08:00-12:00': 'Mo-Fx' is not a day or a range of days (use Mo Tu We Th Fr Sa Su, e.g. Mo-Fr)
    """
    if text is None or not text.strip() or text.strip().lower() == "unknown":
        return None
    text = text.strip()
    if text == "24/7":
        return tuple((Interval(0, DAY_MINUTES),) for _ in DAYS)
    if text.lower() in _CLOSED_WORDS:
        return tuple(() for _ in DAYS)
    week: list[tuple[Interval, ...]] = [() for _ in DAYS]
    for rule in filter(None, (part.strip() for part in text.split(";"))):
        selector, _space, hours = rule.partition(" ")
        try:
            days = _days(selector)
            if not hours.strip():
                raise HoursError(_("names no hours (write e.g. 'Mo-Fr 08:00-17:00' or 'Su off')"))
            intervals = parse_intervals(hours.replace(" ", ""), where=selector)
        except HoursError as error:
            raise HoursError(_("rule %(rule)r: %(error)s", rule=rule, error=error)) from None
        for day in days:
            week[day] = intervals
    return tuple(week)


def format_intervals(intervals: Iterable[Interval]) -> str:
    """``(Interval(480, 720),)`` -> ``"08:00-12:00"``; none -> ``"off"``."""
    return ",".join(str(interval) for interval in intervals) or "off"


def format_weekly(week: WeeklyHours | None) -> str:
    """The canonical text form: runs of days with equal hours, closed days left out."""
    if week is None:
        return "unknown"
    if all(day == (Interval(0, DAY_MINUTES),) for day in week):
        return "24/7"
    rules, day = [], 0
    while day < 7:
        last = day
        while last + 1 < 7 and week[last + 1] == week[day]:
            last += 1
        if week[day]:
            selector = DAYS[day] if last == day else f"{DAYS[day]}{',' if last == day + 1 else '-'}{DAYS[last]}"
            rules.append(f"{selector} {format_intervals(week[day])}")
        day = last + 1
    return "; ".join(rules) or "off"


def weekly_to_json(week: WeeklyHours | None) -> dict[str, list[str]] | None:
    """The stored form: ``{"mo": ["08:00-12:00"], ...}`` (closed days left out); None = unknown."""
    if week is None:
        return None
    return {DAYS[day].lower(): [str(i) for i in intervals] for day, intervals in enumerate(week) if intervals}


def weekly_from_json(value: Mapping[str, Iterable[str]] | str | None) -> WeeklyHours | None:
    """The stored or posted form (a mapping by day, or the text form) -> WeeklyHours."""
    if value is None or isinstance(value, str):
        return parse_weekly(value)
    if not isinstance(value, Mapping):
        raise HoursError(_("hours must be a text such as 'Mo-Fr 08:00-17:00' or an object by day"))
    try:
        key = tuple(sorted((str(day), tuple(hours) if isinstance(hours, list) else hours)
                           for day, hours in value.items()))
        hash(key)
    except TypeError:
        return _weekly_from_mapping(value)
    return _weekly_cached(key)


@functools.lru_cache(maxsize=4096)
def _weekly_cached(key: tuple) -> WeeklyHours:
    """Stored weeks repeat (many outlets keep the same hours): parse each once."""
    return _weekly_from_mapping(dict(key))


def _weekly_from_mapping(value: Mapping) -> WeeklyHours:
    """A mapping by day ("mo": [...]) -> WeeklyHours."""
    names = {name.lower(): index for index, name in enumerate(DAYS)}
    week: list[tuple[Interval, ...]] = [() for _ in DAYS]
    for key, intervals in value.items():
        if str(key).lower()[:2] not in names:
            raise HoursError(_("%(key)r is not a day (use %(days)s)", key=key, days=', '.join(n.lower() for n in DAYS)))
        if isinstance(intervals, str):
            intervals = [intervals]
        week[names[str(key).lower()[:2]]] = parse_intervals(intervals, where=str(key))
    return tuple(week)


def parse_exceptions(value: str | Iterable[Mapping] | None) -> dict[date, DayException]:
    """Dated exceptions from text (``"2026-12-25 off Christmas Day; 2026-12-24 08:00-12:00"``)
    or from a list of ``{"date", "hours", "note"}`` objects."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    items: list[tuple[str, object, str | None]] = []
    if isinstance(value, str):
        for part in filter(None, (p.strip() for p in value.split(";"))):
            day, _space, rest = part.partition(" ")
            hours, _space, note = rest.strip().partition(" ")
            items.append((day, hours, note.strip() or None))
    elif not isinstance(value, (list, tuple)):
        raise HoursError(_('exceptions must be text ("2026-12-25 off") or a list of {"date", "hours", "note"} objects'))
    else:
        for entry in value:
            if not isinstance(entry, Mapping) or "date" not in entry:
                raise HoursError(_('each exception needs a date, e.g. {"date": "2026-12-25", "hours": "off"}'))
            items.append((str(entry["date"]), entry.get("hours", "off"), entry.get("note") or None))
    exceptions: dict[date, DayException] = {}
    for day_text, hours, note in items:
        try:
            day = parse_day(day_text)
        except ValueError as error:
            raise HoursError(_("exception %(day_text)r %(error)s", day_text=day_text, error=error)) from None
        if note is not None and (not isinstance(note, str) or len(note) > 200
                                 or any(unicodedata.category(c) == "Cc" for c in note)):
            raise HoursError(_("exception %(day)s: the note must be a text of up to 200 characters, without control characters", day=day))
        if day in exceptions:
            raise HoursError(_("exception %(day)s: given twice", day=day))
        if hours is None or (isinstance(hours, str) and not hours.strip()):
            raise HoursError(_("exception %(day)s: give its hours, or 'off' when closed", day=day))
        exceptions[day] = DayException(parse_intervals(hours, where=f"exception {day}"), note)
    return exceptions


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` or an HoursError naming it."""
    if not isinstance(name, str) or name not in _zone_names():
        raise HoursError(_("%(name)r is not an IANA time zone (e.g. Europe/Berlin)", name=name))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(_("%(name)r is not an IANA time zone (e.g. Europe/Berlin)", name=name)) from None


_ZONES: set[str] = set()


# Files of the zoneinfo folder that are no place's zone: "localtime" is the server's own setting.
_NOT_ZONES = {"localtime", "posixrules", "Factory"}


def _zone_names() -> set[str]:
    """Every IANA zone name tzdata knows (read once)."""
    if not _ZONES:
        _ZONES.update(available_timezones() - _NOT_ZONES)
    return _ZONES


@functools.lru_cache(maxsize=100_000)
def _instant(tz: ZoneInfo, day: date, minutes: int, closing: bool) -> datetime:
    """The UTC instant of a wall-clock time in ``tz``: a closing in the repeated hour takes its
    second occurrence; a time in a spring-forward gap moves forward with the clock.

    Instants stay in UTC: Python compares two datetimes of one zone by their wall clocks.
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    repeated = first.utcoffset() != second.utcoffset() and \
        first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall
    return (second if repeated and closing else first).astimezone(UTC)


@dataclass(frozen=True)
class Opening:
    """Whether an outlet is open at an instant, until when or from when (instants in UTC), and
    that day's hours; shown on the outlet's wall clock (``tz``)."""

    hours_known: bool
    open_now: bool | None
    closes_at: datetime | None
    next_opening: datetime | None
    today: dict
    hours: str
    tz: ZoneInfo

    @functools.cached_property
    def _json(self) -> dict:
        return {"hours_known": self.hours_known, "open_now": self.open_now,
                "closes_at": self._local(self.closes_at), "next_opening": self._local(self.next_opening),
                "today": self.today, "hours": self.hours}

    def _local(self, at: datetime | None) -> str | None:
        """An instant in ISO 8601 on the outlet's clock (None stays None)."""
        return at.astimezone(self.tz).isoformat() if at is not None else None

    def as_dict(self) -> dict:
        """As the API shows it (instants in ISO 8601 with the outlet's offset). Formatted once: an
        opening state is kept and shown again to every search until it changes; callers copy it."""
        return self._json


@dataclass(frozen=True)
class Schedule:
    """An outlet's hours in its zone: the week (None when unknown) and dated exceptions."""

    weekly: WeeklyHours | None
    tz: ZoneInfo
    exceptions: Mapping[date, DayException] = field(default_factory=dict)
    # Each day's periods, computed once (a search asks for the same days several times).
    _days: dict = field(default_factory=dict, compare=False, repr=False)
    # {"opening": (from, until, Opening)}: the last opening state and the instants it holds for,
    # replaced whole, so that threads sharing the schedule read one consistent tuple.
    _kept: dict = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def hours_text(self) -> str:
        """The week in the canonical text form (``format_weekly``), formatted once."""
        return format_weekly(self.weekly)

    @property
    def known(self) -> bool:
        """Whether the outlet's hours are known at all."""
        return self.weekly is not None

    def intervals_starting(self, day: date) -> tuple[Interval, ...]:
        """The intervals that start on ``day``: its exception's or its weekday's."""
        if day in self.exceptions:
            return self.exceptions[day].intervals
        return self.weekly[day.weekday()] if self.weekly is not None else ()

    def note(self, day: date) -> str | None:
        """Why ``day`` differs from the week, if it does."""
        exception = self.exceptions.get(day)
        return exception.note if exception else None

    def local(self, at: datetime) -> datetime:
        """Instant ``at`` on the outlet's wall clock (with its offset)."""
        return at.astimezone(self.tz)

    def periods(self, first: date, last: date) -> list[tuple[date, datetime, datetime]]:
        """The (day it starts on, opens, closes) of the intervals starting on ``first``..``last`` (UTC)."""
        periods = []
        day = first
        if len(self._days) > 1000:  # a long-lived (shared) schedule asked about many dates
            self._days.clear()
        while day <= last:
            # Read and filled without a lock: threads sharing a schedule at worst compute a day twice.
            entry = self._days.get(day)
            if entry is None:
                entry = self._days[day] = [
                    (day, opens, closes) for opens, closes in (
                        (_instant(self.tz, day, i.start, False), _instant(self.tz, day, i.end, True))
                        for i in self.intervals_starting(day))
                    if closes > opens]
            periods.extend(entry)
            day += timedelta(days=1)
        return periods

    def local_midnight(self, day: date) -> datetime:
        """The instant (UTC) that local date ``day`` begins."""
        return _instant(self.tz, day, 0, False)

    def local_date(self, at: datetime) -> date:
        """The outlet's calendar date at instant ``at``."""
        return at.astimezone(self.tz).date()

    def _walk(self, first: date, until: datetime) -> Iterator[tuple[datetime, datetime]]:
        """(opens, closes) of the intervals from local date ``first`` on, in order, while they open
        by ``until``: computed a day at a time, so that a near answer costs a day or two."""
        day, last = first, self.local_date(until) + timedelta(days=1)
        while day <= last:
            for _day, opens, closes in sorted(self.periods(day, day), key=lambda p: p[1]):
                if opens > until:
                    return
                yield opens, closes
            day += timedelta(days=1)

    def _run_end(self, at: datetime, until: datetime) -> datetime | None:
        """The end of the opening ``at`` falls in, adjoining intervals joined (looking no further
        than ``until``); None when closed at ``at``."""
        end = None
        for opens, closes in self._walk(self.local_date(at) - timedelta(days=1), until):
            if end is None:
                if opens <= at < closes:
                    end = closes
                elif opens > at:
                    return None
            elif opens <= end:
                end = max(end, closes)
            else:
                break
            if end is not None and end >= until:
                break
        return end

    def is_open(self, at: datetime) -> bool | None:
        """Whether the outlet is open at instant ``at``; None when its hours are unknown."""
        if not self.known:
            return None
        at = at.astimezone(UTC)
        today = self.local_date(at)
        return any(opens <= at < closes for _, opens, closes in self.periods(today - timedelta(days=1), today))

    def closes_at(self, at: datetime) -> datetime | None:
        """When the opening that ``at`` falls in ends, in UTC; None when closed, unknown, or open
        for more than a week on end (around the clock)."""
        if not self.known:
            return None
        at = at.astimezone(UTC)
        week = at + timedelta(days=7)
        end = self._run_end(at, week + timedelta(minutes=1))
        return end if end is not None and end <= week else None

    def next_opening(self, at: datetime, horizon_days: int = 31) -> datetime | None:
        """The first opening after ``at`` within ``horizon_days``, in UTC (None: none or unknown)."""
        if not self.known:
            return None
        at = at.astimezone(UTC)
        until = at + timedelta(days=horizon_days)
        after = self._run_end(at, until) or at
        for opens, _closes in self._walk(self.local_date(at) - timedelta(days=1), until):
            if opens > after:
                return opens
        return None

    def day_hours(self, day: date) -> dict:
        """What a customer reads for ``day``: its intervals in local time, whether closed, and why."""
        if not self.known:
            return {"date": day.isoformat(), "known": False, "hours": [], "closed": None, "note": None}
        intervals = self.intervals_starting(day)
        return {
            "date": day.isoformat(),
            "known": True,
            "hours": [{"opens": _clock(i.start), "closes": _clock(i.end % DAY_MINUTES) if i.end != DAY_MINUTES
                       else "24:00", "overnight": i.overnight} for i in intervals],
            "closed": not intervals,
            "note": self.note(day),
        }

    def opening(self, now: datetime) -> Opening:
        """Open at ``now`` or not, until when, the next opening and today's hours (local time).

        Kept while it cannot change (schedules are shared by outlets with equal hours, and a
        search asks for the same few): until the next closing or opening and at most until
        local midnight.
        """
        kept = self._kept.get("opening")
        if kept is not None and kept[0] <= now < kept[1]:
            return kept[2]
        now = now.astimezone(UTC)
        is_open = self.is_open(now)
        closes_at = self.closes_at(now) if is_open else None
        next_opening = self.next_opening(now) if not is_open else None
        today = self.local_date(now)
        opening = Opening(self.known, is_open, closes_at, next_opening, self.day_hours(today), self.hours_text, self.tz)
        midnight = self.local_midnight(today + timedelta(days=1))
        if not self.known:
            until = midnight
        elif is_open:
            # Open beyond the week closes_at looks at: that horizon moves with the clock.
            until = min(closes_at, midnight) if closes_at is not None else min(now + timedelta(minutes=1), midnight)
        else:
            # No opening within next_opening's horizon: it moves with the clock; keep nothing.
            until = min(next_opening, midnight) if next_opening is not None else now
        self._kept["opening"] = (now, until, opening)
        return opening

    def shift_slots(self, day: date, minutes: int) -> list[tuple[Interval, list[Slot]]]:
        """The openings that start on local date ``day``, each with its slots of ``minutes``,
        those after midnight included: a customer reads ``18:00-02:00`` as one evening's shift.

        >>> from zoneinfo import ZoneInfo
        >>> night = Schedule(parse_weekly("Mo-Fr 18:00-02:00"), ZoneInfo("Europe/Berlin"))
        >>> [(str(shift), [night.local(s.start).strftime("%a %H:%M") for s in slots])
        ...  for shift, slots in night.shift_slots(date(2026, 11, 30), 120)]
        [('18:00-02:00', ['Mon 18:00', 'Mon 20:00', 'Mon 22:00', 'Tue 00:00'])]
        >>> night.shift_slots(date(2026, 12, 5), 120)  # Saturday: Friday's tail is Friday's
        []
        """
        step = timedelta(minutes=minutes)
        shifts = []
        for interval in self.intervals_starting(day):
            opens, closes = _instant(self.tz, day, interval.start, False), _instant(self.tz, day, interval.end, True)
            starts = []
            while opens + step <= closes:
                starts.append(opens)
                opens += step
            shifts.append((interval, [Slot(start, start + step) for start in starts]))
        return shifts

    def slots(self, day: date, minutes: int) -> list[Slot]:
        """The slots of ``minutes`` whose start falls on local date ``day`` (overnight tails included)."""
        step = timedelta(minutes=minutes)
        starts: set[datetime] = set()
        for _day, start, closes in self.periods(day - timedelta(days=1), day):
            while start + step <= closes:
                if self.local_date(start) == day:
                    starts.add(start)
                start += step
        return [Slot(start, start + step) for start in sorted(starts)]
