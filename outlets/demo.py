"""The demo city's outlets: about one per 15,000 customers, deterministic for a seed.

Each outlet stands at a customer's address spread over the city (so addresses look like the
city's own), with varied hours: office hours, late shifts, overnight desks, a 24/7 emergency
desk, one with unknown hours; some close on public holidays and shorten Christmas Eve.
"""
from __future__ import annotations

import random
import re
from datetime import date, timedelta

import phonenumbers

from geo.addresses import nearest_address
from geo.demo import DemoContext
from outlets.records import country_of_zone, parse_outlet
from outlets.store import save_outlet

__all__ = ["add_demo_outlets", "outlet_count", "public_holidays", "CITY_ZONES"]

CUSTOMERS_PER_OUTLET = 15_000
# The demo city's IANA zone by name; a city not listed here gets DEFAULT_ZONE.
CITY_ZONES = {"Karlsruhe": "Europe/Berlin", "Offenburg": "Europe/Berlin"}
DEFAULT_ZONE = "Europe/Berlin"
HOURS = [
    ("Mo-Fr 08:00-12:00,13:00-17:00", 15),
    ("Mo-Fr 18:00-02:00; Sa 20:00-04:00", 30),           # overnight desk
    ("Mo-Fr 09:00-18:00; Sa 09:00-13:00", 20),
    ("Mo,We,Fr 07:30-15:30; Tu,Th 11:00-19:00", 15),
    ("24/7", 30),                                           # emergency desk
    ("Mo-Th 08:00-16:00; Fr 08:00-13:00", 20),
    (None, 15),                                             # hours unknown
    ("Tu-Sa 10:00-14:00,15:00-20:00", 30),
    ("Mo-Su 22:00-06:00", 30),                              # night counter
]
_FALLBACK_STREETS = ["Kaiserstraße", "Karlstraße", "Kriegsstraße", "Durlacher Allee", "Ettlinger Straße",
                     "Rheinstraße", "Moltkestraße", "Amalienstraße", "Waldstraße", "Herrenstraße"]


def outlet_count(customers: int) -> int:
    """About one outlet per 15,000 customers, at least two.

    >>> outlet_count(20_000), outlet_count(100_000), outlet_count(1_000_000)
    (2, 7, 67)
    """
    return max(2, round(customers / CUSTOMERS_PER_OUTLET))


def _easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l) // 433
    month = (h + l - 7 * m + 90) // 25
    return date(year, month, (h + l - 7 * m + 33 * month + 19) % 32)


def public_holidays(year: int, country: str) -> dict[date, str]:
    """Public holidays of ``year``: Baden-Württemberg's for DE, the common Christian ones elsewhere.

    >>> public_holidays(2027, "DE")[date(2027, 3, 26)]
    'Good Friday'
    """
    easter = _easter(year)
    days = {date(year, 1, 1): "New Year's Day", date(year, 12, 25): "Christmas Day",
            date(year, 12, 26): "St Stephen's Day", easter - timedelta(days=2): "Good Friday",
            easter + timedelta(days=1): "Easter Monday"}
    if country == "DE":
        days.update({
            date(year, 1, 6): "Epiphany", date(year, 5, 1): "Labour Day",
            easter + timedelta(days=39): "Ascension Day", easter + timedelta(days=50): "Whit Monday",
            easter + timedelta(days=60): "Corpus Christi", date(year, 10, 3): "German Unity Day",
            date(year, 11, 1): "All Saints' Day",
        })
    return days


def _exceptions(years: list[int], country: str) -> str:
    """The public holidays (closed) and short days of ``years`` in the text form."""
    parts = []
    for year in years:
        for day, name in sorted(public_holidays(year, country).items()):
            parts.append(f"{day} off {name}")
        parts += [f"{year}-12-24 08:00-12:00 Christmas Eve", f"{year}-12-31 08:00-12:00 New Year's Eve"]
    return "; ".join(parts)


def _phone(rng: random.Random, country: str) -> str | None:
    """A valid-looking number of the outlet's country (Karlsruhe's 0721 in Germany)."""
    for _ in range(50):
        if country == "DE":
            candidate = f"+49 721 {rng.randint(1_000_000, 9_999_999)}"
        else:
            example = phonenumbers.example_number(country)
            if example is None:
                return None
            national = str(example.national_number)
            candidate = f"+{example.country_code}{national[:-3]}{rng.randint(0, 999):03d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate, None)):
            return candidate
    return None


def _sites(ctx: DemoContext, count: int, rng: random.Random) -> list[tuple[str, float, float]]:
    """``count`` (address, lon, lat) spread over the city: the customer nearest each of a jittered grid."""
    west, south, east, north = ctx.bbox
    columns = max(1, round(count ** 0.5))
    rows = -(-count // columns)
    targets = []
    for index in range(count):
        column, row = index % columns, index // columns
        targets.append((west + (east - west) * (column + rng.uniform(0.25, 0.75)) / columns,
                        south + (north - south) * (row + rng.uniform(0.25, 0.75)) / rows))
    sites, used = [], set()
    for lon, lat in targets:
        found = nearest_address(ctx.connection, lon, lat, "service_point", excluding=used)
        if found is None:
            street = rng.choice(_FALLBACK_STREETS)
            sites.append((f"{street} {rng.randint(1, 180)}, {ctx.city}", lon, lat))
        else:
            used.add(found.address)
            sites.append((found.address, found.lon, found.lat))
    return sites


def _street(address: str) -> str:
    """``"Kaiserstraße 12, 76133 Karlsruhe"`` -> ``"Kaiserstraße"``."""
    return re.sub(r"\s+\d+\w*$", "", address.split(",")[0].strip()) or address


def demo_outlet_records(ctx: DemoContext) -> list[dict]:
    """The demo outlets as import records (deterministic for the context's seed and size)."""
    rng = random.Random(f"outlets:{ctx.seed}")
    count = outlet_count(ctx.customers)
    zone = CITY_ZONES.get(ctx.city, DEFAULT_ZONE)
    country = country_of_zone(zone) or "DE"
    this_year = date.today().year
    # Office hours and an overnight desk come first, so that even two outlets differ.
    patterns = HOURS[:2] + rng.sample(HOURS[2:], len(HOURS) - 2)
    records, names = [], set()
    for index, (address, lon, lat) in enumerate(_sites(ctx, count, rng)):
        hours, slot_minutes = patterns[index % len(patterns)]
        name = f"Customer Centre {_street(address)}"
        # Two centres on one street are told apart by their house numbers.
        name = name if name not in names else f"Customer Centre {address.split(',')[0].strip()}"
        names.add(name)
        offered = ["billing"] + [s for s in ("new_connection", "meter", "complaints") if rng.random() < 0.6]
        records.append({
            "code": f"OUT-{index + 1:03d}",
            "name": name,
            "address": address, "lon": lon, "lat": lat, "timezone": zone, "country": country,
            "phone": _phone(rng, country), "slot_minutes": slot_minutes,
            "services": {service: rng.randint(1, 3) for service in offered},
            "hours": hours,
            # Every other outlet keeps the public holidays (the 24/7 desk never closes).
            "exceptions": _exceptions([this_year, this_year + 1], country)
            if index % 2 == 0 and hours not in (None, "24/7") else None,
        })
    return records


def add_demo_outlets(ctx: DemoContext) -> None:
    """The demo extension: add the city's outlets in the demo's transaction."""
    records = demo_outlet_records(ctx)
    for values in records:
        save_outlet(ctx.connection, parse_outlet(values))
    overnight = sum(1 for r in records if r["hours"] and any(
        int(end[:2]) < int(start[:2]) for start, end in re.findall(r"(\d\d:\d\d)-(\d\d:\d\d)", r["hours"])))
    ctx.progress(f"outlets: {len(records)} ({overnight} with overnight hours, "
                 f"{sum(1 for r in records if r['exceptions'])} closing on public holidays)")
