"""The outage settings a utility tunes: prediction rules, the momentary threshold, the ETR defaults,
and how outage messages go out (progress interval, planned-work lead time, links, clock).

Read from the application's configuration (environment variables of the same names), so that
every worker settles reports by the same rules.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from outages.prediction import Rules

__all__ = ["OutageSettings", "settings_from", "number_setting", "DEFAULT_ETR_HOURS"]

# When history has no restored outage of a kind yet: hours to restore, by the predicted device's kind.
DEFAULT_ETR_HOURS = {"service": 2.0, "transformer": 3.0, "fuse": 2.5, "recloser": 3.0, "breaker": 4.0}


@dataclass(frozen=True)
class OutageSettings:
    """Prediction rules, the momentary threshold in minutes, and how far history reaches for ETRs."""

    rules: Rules = field(default_factory=Rules)
    momentary_minutes: float = 5.0
    etr_history_days: int = 365
    # Subscribers hear how a long outage goes this often, even when nothing changed.
    progress_hours: float = 2.0
    # A planned outage is announced this long before its start (at once when it is nearer).
    planned_lead_hours: float = 48.0
    # Where the messages' unsubscribe links point (the public site).
    public_url: str = "http://localhost:5000"
    # The clock the messages' times are written on.
    time_zone: str = "Europe/Berlin"


def _number(config: Mapping, name: str, default: float, cast=float):
    value = config.get(name, os.environ.get(name))
    return default if value in (None, "") else cast(value)


def settings_from(config: Mapping) -> OutageSettings:
    """The settings in ``config`` (``OUTAGE_MIN_REPORTS``, ``OUTAGE_MIN_SHARE``, ``OUTAGE_SIBLINGS``,
    ``OUTAGE_WINDOW_MINUTES``, ``OUTAGE_MOMENTARY_MINUTES``, ``NOTIFY_PROGRESS_HOURS``,
    ``NOTIFY_PLANNED_LEAD_HOURS``, ``PUBLIC_URL``, ``OUTAGE_TIME_ZONE``), defaults for the others."""
    defaults = Rules()
    rules = Rules(min_reports=_number(config, "OUTAGE_MIN_REPORTS", defaults.min_reports, int),
                  min_share=_number(config, "OUTAGE_MIN_SHARE", defaults.min_share),
                  siblings=_number(config, "OUTAGE_SIBLINGS", defaults.siblings, int),
                  window_minutes=_number(config, "OUTAGE_WINDOW_MINUTES", defaults.window_minutes))
    return OutageSettings(rules, momentary_minutes=_number(config, "OUTAGE_MOMENTARY_MINUTES", 5.0),
                          progress_hours=_number(config, "NOTIFY_PROGRESS_HOURS", 2.0),
                          planned_lead_hours=_number(config, "NOTIFY_PLANNED_LEAD_HOURS", 48.0),
                          public_url=str(_number(config, "PUBLIC_URL", "http://localhost:5000", str)).rstrip("/"),
                          time_zone=str(_number(config, "OUTAGE_TIME_ZONE", "Europe/Berlin", str)))


def number_setting(config: Mapping, name: str, default: float, cast=float):
    """The setting ``name`` from ``config``, else the environment, else ``default``, as ``cast``."""
    return _number(config, name, default, cast)
