"""Demo data for outages: repair crews at depots around the demo city, one of them signed in as
the demo crew account."""
from __future__ import annotations

import numpy as np
from sqlalchemy import text

from geo.accounts import account_id_of
from geo.demo import DemoContext
from outages.crews import create_crew

__all__ = ["add_demo_crews", "DEMO_CREWS"]

# code, name, vehicle, skills; depots spread over the city (fractions of its bounding box).
DEMO_CREWS = (
    ("CR-01", "Störungsdienst Nord", "KA-EN 101", ("mv", "lv", "cable"), (0.30, 0.70)),
    ("CR-02", "Störungsdienst Süd", "KA-EN 102", ("mv", "lv", "overhead"), (0.65, 0.25)),
    ("CR-03", "Kabeltrupp West", "KA-EN 201", ("cable", "lv"), (0.15, 0.40)),
    ("CR-04", "Kabeltrupp Ost", "KA-EN 202", ("cable", "mv"), (0.85, 0.55)),
    ("CR-05", "Freileitungstrupp", "KA-EN 301", ("overhead", "mv"), (0.50, 0.90)),
    ("CR-06", "Ortsnetz Mitte", "KA-EN 401", ("lv", "meter"), (0.50, 0.50)),
)
# Fiction numbers (Bundesnetzagentur's drama range), as the customers' phones are.
_FIRST_NAMES = ("Anna", "Jonas", "Lea", "Felix", "Marie", "Paul", "Sophie", "Lukas", "Emma", "Noah", "Mia", "Ben")
_LAST_NAMES = ("Becker", "Wagner", "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Braun")
DEMO_CREW_ACCOUNT = "demo-crew"


def add_demo_crews(context: DemoContext) -> None:
    """Six crews with two members each at depots across the city; CR-01 signs in as ``demo-crew``."""
    connection = context.connection
    if connection.execute(text("SELECT count(*) FROM crews")).scalar_one():
        return
    rng = np.random.default_rng(context.seed)
    west, south, east, north = context.bbox
    has_account = account_id_of(connection, DEMO_CREW_ACCOUNT, "crew") is not None
    for number, (code, name, vehicle, skills, (fx, fy)) in enumerate(DEMO_CREWS):
        members = [{"name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
                    "phone": f"+49 30 23125{900 + 2 * number + k}", "duty": "lead" if k == 0 else "fitter"}
                   for k in range(2)]
        depot = (west + fx * (east - west), south + fy * (north - south))
        create_crew(connection, code, name, vehicle, f"Depot {name}", depot, list(skills), members,
                    DEMO_CREW_ACCOUNT if number == 0 and has_account else None)
    context.progress(f"{len(DEMO_CREWS)} repair crews (CR-01 signs in as {DEMO_CREW_ACCOUNT})")
