"""Reliability indices of IEEE 1366 from customer interruptions: plain numpy, no database.

An *interruption* here is one customer cut off by one outage: when its outage started, when a
step gave it back (NaN while it is still out), whether the outage was planned, and the local day
it began on. ``outages/reliability_data.py`` reads them from the frozen steps; this module only
counts.

The rules, for the customers served ``N`` of a system, a feeder or a grid cell:

- an interruption restored within the momentary threshold (``momentary_minutes``, set per
  jurisdiction) is *momentary*; every other one is *sustained*, including one still in progress
  (it counts in SAIFI, and in SAIDI only once it is restored and its duration is known);
- SAIFI = sustained interruptions / N; SAIDI = minutes of restored sustained interruptions / N;
  CAIDI = those minutes / restored sustained interruptions (SAIDI / SAIFI when nothing is in
  progress); CAIFI = sustained interruptions / customers who had at least one;
  MAIFI = momentary interruptions / N; MAIFIe counts a customer's momentary interruptions
  starting within ``momentary_minutes`` of the first of a sequence (a recloser's shots) once;
  CEMIn = customers with more than n sustained interruptions / N (IEEE 1366's definition);
- an interruption belongs to the period and the day it began on, with its whole duration;
- major event days (2.5 beta method): over the daily SAIDI of past days (days with SAIDI 0 left
  out), alpha and beta are the mean and standard deviation of ln(SAIDI); a day whose SAIDI
  exceeds T_MED = exp(alpha + 2.5 beta) is a major event day.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Interruptions", "Indices", "MedThreshold", "indices", "grouped_indices", "daily_saidi",
           "med_threshold", "major_event_days", "monthly_indices", "SECONDS_PER_MINUTE"]

SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True)
class Interruptions:
    """One row per customer and outage: service point id, outage id, start and end (seconds since
    the epoch; end NaN while out), planned or not, and the local day it began (days since
    1970-01-01)."""

    customer: np.ndarray
    outage: np.ndarray
    start: np.ndarray
    end: np.ndarray
    planned: np.ndarray
    day: np.ndarray

    @classmethod
    def of(cls, rows) -> Interruptions:
        """From tuples (customer, outage, start, end or None, planned, day).

        >>> Interruptions.of([(7, 1, 0.0, 600.0, False, 0), (8, 1, 0.0, None, False, 0)]).end
        array([600.,  nan])
        """
        columns = list(zip(*rows)) or [()] * 6
        return cls(np.asarray(columns[0], dtype=np.int64), np.asarray(columns[1], dtype=np.int64),
                   np.asarray(columns[2], dtype=np.float64),
                   np.asarray([np.nan if e is None else e for e in columns[3]], dtype=np.float64),
                   np.asarray(columns[4], dtype=bool), np.asarray(columns[5], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.customer)

    def where(self, mask: np.ndarray) -> Interruptions:
        """The rows where ``mask`` holds."""
        return Interruptions(self.customer[mask], self.outage[mask], self.start[mask], self.end[mask],
                             self.planned[mask], self.day[mask])

    def minutes(self) -> np.ndarray:
        """Each interruption's duration in minutes (NaN while in progress)."""
        return (self.end - self.start) / SECONDS_PER_MINUTE

    def momentary(self, momentary_minutes: float) -> np.ndarray:
        """Which interruptions were restored within the momentary threshold."""
        with np.errstate(invalid="ignore"):
            return self.minutes() < momentary_minutes


@dataclass(frozen=True)
class Indices:
    """The indices of one population over one period (None where the denominator is 0); minutes for durations."""

    customers_served: int
    saifi: float | None
    saidi: float | None
    caidi: float | None
    caifi: float | None
    maifi: float | None
    maifi_e: float | None
    cemi: float | None
    cemi_n: int
    customer_interruptions: int  # sustained, in progress included
    customers_interrupted: int  # distinct customers with at least one sustained interruption
    customer_minutes: float  # of restored sustained interruptions
    in_progress: int  # sustained interruptions not restored yet
    momentary_interruptions: int
    momentary_events: int

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(a: float, b: float) -> float | None:
    return float(a) / b if b else None


def _momentary_events(customers: np.ndarray, starts: np.ndarray, window_seconds: float) -> int:
    """How many momentary events: a customer's momentary interruptions starting within
    ``window_seconds`` of the first of a sequence count once.

    >>> _momentary_events(np.array([1, 1, 1, 2]), np.array([0.0, 60.0, 900.0, 60.0]), 300.0)
    3
    """
    order = np.lexsort((starts, customers))
    events, customer, first = 0, None, -math.inf
    for c, s in zip(customers[order].tolist(), starts[order].tolist()):
        if c != customer or s - first > window_seconds:
            events, customer, first = events + 1, c, s
    return events


def indices(interruptions: Interruptions, served: int, momentary_minutes: float = 5.0, cemi_n: int = 3) -> Indices:
    """The IEEE 1366 indices of ``interruptions`` for ``served`` customers.

    Two customers of four out 10 and 30 minutes, one of them again for 2 minutes (momentary),
    a third still out:

    >>> rows = [(1, 1, 0, 600, False, 0), (2, 1, 0, 1800, False, 0), (1, 2, 3600, 3720, False, 0),
    ...         (3, 3, 0, None, False, 0)]
    >>> found = indices(Interruptions.of(rows), served=4, cemi_n=0)
    >>> found.saifi, found.saidi, found.caidi, found.caifi, found.maifi, found.cemi
    (0.75, 10.0, 20.0, 1.0, 0.25, 0.75)

    O(n log n) in the interruptions (the momentary events sort); the rest is linear.
    """
    momentary = interruptions.momentary(momentary_minutes)
    sustained = ~momentary
    minutes = interruptions.minutes()
    restored = sustained & ~np.isnan(minutes)
    customer_minutes = float(minutes[restored].sum())
    counts = np.unique(interruptions.customer[sustained], return_counts=True)[1]
    events = _momentary_events(interruptions.customer[momentary], interruptions.start[momentary],
                               momentary_minutes * SECONDS_PER_MINUTE)
    return Indices(
        customers_served=int(served), saifi=_ratio(sustained.sum(), served), saidi=_ratio(customer_minutes, served),
        caidi=_ratio(customer_minutes, int(restored.sum())), caifi=_ratio(sustained.sum(), len(counts)),
        maifi=_ratio(momentary.sum(), served), maifi_e=_ratio(events, served),
        cemi=_ratio(int((counts > cemi_n).sum()), served), cemi_n=cemi_n,
        customer_interruptions=int(sustained.sum()), customers_interrupted=len(counts),
        customer_minutes=customer_minutes, in_progress=int((sustained & np.isnan(minutes)).sum()),
        momentary_interruptions=int(momentary.sum()), momentary_events=events)


def grouped_indices(interruptions: Interruptions, group_of: np.ndarray, served: dict, momentary_minutes: float = 5.0,
                    cemi_n: int = 3) -> dict:
    """{group: Indices} for every group that has customers served or interruptions; ``group_of``
    gives each interruption's group (its customer's feeder or grid cell), ``served`` each group's
    customers served.

    >>> rows = [(1, 1, 0, 600, False, 0), (2, 2, 0, 1200, False, 0)]
    >>> found = grouped_indices(Interruptions.of(rows), np.array(["F1", "F2"]), {"F1": 10, "F2": 5, "F3": 4})
    >>> {key: value.saidi for key, value in found.items()}
    {'F1': 1.0, 'F2': 4.0, 'F3': 0.0}
    """
    keys = sorted(set(served) | set(group_of.tolist()), key=lambda k: (k is None, str(k)))
    return {key: indices(interruptions.where(group_of == key) if len(group_of) else interruptions,
                         served.get(key, 0), momentary_minutes, cemi_n) for key in keys}


def daily_saidi(interruptions: Interruptions, served: int, first_day: int, last_day: int,
                momentary_minutes: float = 5.0) -> np.ndarray:
    """SAIDI of each day from ``first_day`` to ``last_day`` (days since the epoch): the minutes of
    the restored sustained interruptions that began on it, over ``served``.

    >>> rows = [(1, 1, 0, 600, False, 10), (2, 1, 0, 60, False, 10), (3, 2, 0, 1200, False, 12)]
    >>> daily_saidi(Interruptions.of(rows), 2, 10, 12).tolist()
    [5.0, 0.0, 10.0]
    """
    minutes = interruptions.minutes()
    counted = ~interruptions.momentary(momentary_minutes) & ~np.isnan(minutes)
    counted &= (interruptions.day >= first_day) & (interruptions.day <= last_day)
    totals = np.bincount(interruptions.day[counted] - first_day, weights=minutes[counted],
                         minlength=last_day - first_day + 1)
    return totals / served if served else totals * 0.0


@dataclass(frozen=True)
class MedThreshold:
    """alpha and beta of ln(daily SAIDI) over the days with SAIDI above 0, and T_MED in minutes."""

    alpha: float
    beta: float
    t_med: float
    days: int  # the days with SAIDI above 0 it was computed from


def med_threshold(daily: np.ndarray) -> MedThreshold | None:
    """T_MED = exp(alpha + 2.5 beta) over ``daily`` SAIDI, days with SAIDI 0 left out (None with
    fewer than two such days); beta is the sample standard deviation, as in IEEE 1366's example.

    >>> found = med_threshold(np.array([0.0, math.e, math.e ** 3]))
    >>> round(found.alpha, 6), round(found.beta, 6), round(found.t_med, 3), found.days
    (2.0, 1.414214, 253.543, 2)
    """
    positive = daily[daily > 0]
    if len(positive) < 2:
        return None
    logs = np.log(positive)
    alpha, beta = float(logs.mean()), float(logs.std(ddof=1))
    return MedThreshold(alpha, beta, math.exp(alpha + 2.5 * beta), len(positive))


def major_event_days(daily: np.ndarray, first_day: int, threshold: MedThreshold) -> np.ndarray:
    """The days (since the epoch) whose SAIDI exceeds T_MED; ``daily[0]`` is ``first_day``.

    >>> major_event_days(np.array([1.0, 300.0, 2.0]), 100, MedThreshold(0.0, 1.0, 12.18, 3)).tolist()
    [101]
    """
    return np.flatnonzero(daily > threshold.t_med) + first_day


def monthly_indices(interruptions: Interruptions, served: int, momentary_minutes: float = 5.0,
                    cemi_n: int = 3) -> dict[str, Indices]:
    """{"YYYY-MM": Indices} for each month with an interruption beginning in it (its local day).

    >>> rows = [(1, 1, 0, 600, False, 0), (1, 2, 0, 1200, False, 31)]
    >>> {month: found.saidi for month, found in monthly_indices(Interruptions.of(rows), 10).items()}
    {'1970-01': 1.0, '1970-02': 2.0}
    """
    months = interruptions.day.astype("datetime64[D]").astype("datetime64[M]")
    return {str(month): indices(interruptions.where(months == month), served, momentary_minutes, cemi_n)
            for month in np.unique(months)}
