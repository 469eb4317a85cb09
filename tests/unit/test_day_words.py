"""static/js/days.js: "today" and "tomorrow" by the outlet's own calendar, run in Node.

The page's script words an opening time with them ("Closed · opens today 18:00"); what counts is
the outlet's time zone, not the zone of the computer showing the page.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

DAYS_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "days.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the page's script")


def _run(expression: str, zone: str = "UTC") -> object:
    """``expression`` evaluated after days.js, in a Node process whose own clock zone is ``zone``."""
    script = f"{DAYS_JS.read_text(encoding='utf-8')}\nprocess.stdout.write(JSON.stringify({expression}));"
    answer = subprocess.run([NODE, "-e", script], capture_output=True, text=True, check=True, timeout=30,
                            env={"TZ": zone, "PATH": "/usr/bin:/bin"})
    return json.loads(answer.stdout)


@pytest.mark.parametrize("opens, now, word", [
    ("2026-11-30T18:00:00+01:00", "2026-11-30T09:00:00Z", "today"),      # Monday 30 November, in the morning
    ("2026-12-01T08:00:00+01:00", "2026-11-30T20:00:00Z", "tomorrow"),
    ("2026-12-02T08:00:00+01:00", "2026-11-30T20:00:00Z", None),         # the day after: weekday and date
    ("2026-11-30T08:00:00+01:00", "2026-12-01T08:00:00Z", None),         # yesterday
    # 23:30 UTC on the 30th is already 1 December in Berlin: 08:00 that day is "today" there.
    ("2026-12-01T08:00:00+01:00", "2026-11-30T23:30:00Z", "today"),
    ("2026-12-31T10:00:00+01:00", "2026-12-30T12:00:00Z", "tomorrow"),   # across a month
    ("2027-01-01T10:00:00+01:00", "2026-12-31T12:00:00Z", "tomorrow"),   # and a year
])
@pytest.mark.parametrize("machine_zone", ["UTC", "America/Los_Angeles", "Asia/Shanghai"])
def test_day_word_by_the_outlets_calendar(opens, now, word, machine_zone):
    assert _run(f"GridAtlasDays.dayWord({opens!r}, 'Europe/Berlin', new Date({now!r}))", machine_zone) == word


def test_local_date_and_add_days():
    assert _run("GridAtlasDays.localDate('Asia/Shanghai', new Date('2026-11-30T17:00:00Z'))") == "2026-12-01"
    assert _run("[GridAtlasDays.addDays('2026-02-28', 1), GridAtlasDays.addDays('2026-03-29', 1), "
                "GridAtlasDays.addDays('2026-12-31', 1)]", "Europe/Berlin") == ["2026-03-01", "2026-03-30", "2027-01-01"]
