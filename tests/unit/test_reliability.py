"""IEEE 1366 indices on hand-computed cases: partial restoration, a nested outage, an outage still
in progress, momentary reclosing, per group; major event days on a synthetic year."""
from __future__ import annotations

import math

import numpy as np
import pytest

from outages.reliability import (Interruptions, daily_saidi, grouped_indices, indices, major_event_days,
                                 med_threshold, monthly_indices)

H = 3600.0  # seconds
# Ten customers served. Outage 1 (a transformer, customers 1-4) at 10:00: customers 3 and 4 back
# in a first step at 10:30, 1 and 2 at 11:30 (partial restoration). Outage 2, nested: customer 1
# out again at 12:00 until 13:00. Outage 3 (a recloser, customers 5 and 6) recloses twice, at
# 14:00 and 14:01, 30 s each (momentary, one event). Outage 4 (customer 7) still out since 15:00.
ROWS = [
    (3, 1, 10 * H, 10.5 * H, False, 0), (4, 1, 10 * H, 10.5 * H, False, 0),
    (1, 1, 10 * H, 11.5 * H, False, 0), (2, 1, 10 * H, 11.5 * H, False, 0),
    (1, 2, 12 * H, 13 * H, False, 0),
    (5, 3, 14 * H, 14 * H + 30, False, 0), (6, 3, 14 * H, 14 * H + 30, False, 0),
    (5, 4, 14 * H + 60, 14 * H + 90, False, 0), (6, 4, 14 * H + 60, 14 * H + 90, False, 0),
    (7, 5, 15 * H, None, False, 0),
]


def test_partial_restoration_nested_outage_and_one_in_progress_by_hand():
    found = indices(Interruptions.of(ROWS), served=10, momentary_minutes=5.0, cemi_n=1)
    # Sustained: 4 (outage 1) + 1 (nested) + 1 (in progress) = 6 customer interruptions.
    assert found.customer_interruptions == 6 and found.saifi == pytest.approx(0.6)
    # Minutes of the restored ones: 30 + 30 + 90 + 90 + 60 = 300; the one in progress adds none yet.
    assert found.customer_minutes == pytest.approx(300.0) and found.saidi == pytest.approx(30.0)
    assert found.in_progress == 1
    assert found.caidi == pytest.approx(60.0)  # 300 minutes over 5 restored interruptions
    # Customers 1, 2, 3, 4, 7 had at least one; customer 1 had two (the nested outage counts apart).
    assert found.customers_interrupted == 5 and found.caifi == pytest.approx(6 / 5)
    assert found.cemi == pytest.approx(0.1) and found.cemi_n == 1  # only customer 1 had more than 1
    # Momentary: 4 interruptions; two reclosing shots within 5 minutes are one event per customer.
    assert (found.momentary_interruptions, found.maifi) == (4, pytest.approx(0.4))
    assert (found.momentary_events, found.maifi_e) == (2, pytest.approx(0.2))


def test_an_outage_in_progress_counts_in_saifi_not_in_saidi():
    found = indices(Interruptions.of([(7, 5, 15 * H, None, False, 0)]), served=10)
    assert (found.saifi, found.saidi, found.caidi, found.in_progress) == (0.1, 0.0, None, 1)


def test_the_momentary_threshold_is_the_jurisdictions():
    outage = Interruptions.of([(1, 1, 0.0, 4 * 60.0, False, 0)])  # four minutes
    assert indices(outage, 10, momentary_minutes=5.0).maifi == pytest.approx(0.1)
    assert indices(outage, 10, momentary_minutes=3.0).saifi == pytest.approx(0.1)  # sustained where 3 min is the line
    assert indices(outage, 10, momentary_minutes=3.0).maifi == 0.0


def test_no_customers_served_gives_no_ratio():
    found = indices(Interruptions.of([]), served=0)
    assert (found.saifi, found.saidi, found.caifi) == (None, None, None)


def test_per_group_each_with_its_own_customers_served():
    group_of = np.array(["F2", "F2", "F1", "F1", "F1", "F3", "F3", "F3", "F3", "F1"])
    found = grouped_indices(Interruptions.of(ROWS), group_of, {"F1": 4, "F2": 2, "F3": 3, "F4": 1})
    assert list(found) == ["F1", "F2", "F3", "F4"]
    assert found["F1"].saifi == pytest.approx(4 / 4) and found["F1"].saidi == pytest.approx(240 / 4)
    assert found["F2"].saidi == pytest.approx(60 / 2)
    assert found["F3"].maifi == pytest.approx(4 / 3) and found["F3"].saifi == 0.0
    assert found["F4"].saifi == 0.0 and found["F4"].customers_served == 1


def test_months_take_interruptions_by_the_day_they_began():
    rows = [(1, 1, 0.0, 600.0, False, 30), (1, 2, 0.0, 1200.0, False, 31)]  # 1970-01-31, 1970-02-01
    found = monthly_indices(Interruptions.of(rows), 2)
    assert {m: f.saidi for m, f in found.items()} == {"1970-01": 5.0, "1970-02": 10.0}


def test_daily_saidi_puts_a_long_outage_on_the_day_it_began_and_leaves_momentary_ones_out():
    rows = [(1, 1, 0.0, 30 * H, False, 5), (2, 2, 0.0, 60.0, False, 6)]
    assert daily_saidi(Interruptions.of(rows), 4, 5, 7).tolist() == [450.0, 0.0, 0.0]


def _synthetic_year(seed: int = 7) -> tuple[np.ndarray, list[int]]:
    """365 days of daily SAIDI: log-normal (median 0.5 min), 40 days without interruptions, three storms."""
    rng = np.random.default_rng(seed)
    daily = rng.lognormal(math.log(0.5), 0.8, 365)
    daily[rng.choice(365, 40, replace=False)] = 0.0
    storms = [40, 200, 201]
    daily[storms] = [60.0, 120.0, 45.0]
    return daily, storms


def test_major_event_days_by_the_2_5_beta_method_on_a_synthetic_year():
    daily, storms = _synthetic_year()
    threshold = med_threshold(daily)
    logs = np.log(daily[daily > 0])
    alpha, beta = logs.mean(), logs.std(ddof=1)  # zero days left out of the log-normal fit
    assert threshold.days == 325
    assert threshold.alpha == pytest.approx(alpha) and threshold.beta == pytest.approx(beta)
    assert threshold.t_med == pytest.approx(math.exp(alpha + 2.5 * beta))
    assert 0.5 < threshold.t_med < 45  # above the median day, below the storms
    found = major_event_days(daily, 1000, threshold).tolist()
    assert found == [1000 + day for day in np.flatnonzero(daily > math.exp(alpha + 2.5 * beta))]
    assert found == [1000 + day for day in storms]  # the storms, and no ordinary day


def test_too_little_history_gives_no_threshold():
    assert med_threshold(np.array([0.0, 0.0, 3.0])) is None
