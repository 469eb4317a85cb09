"""What ``GET /healthz`` reports."""
from __future__ import annotations

from typing import Any

from flask import current_app

from geo.db import get_session
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from geo.migrate import current_revision, head_revision

__all__ = ["health_report", "health_answer", "COUNTED_TABLES", "RETRY_AFTER_S"]

# Tables whose row counts describe the loaded data; a package adds its own with register_counted.
COUNTED_TABLES: list[str] = []


def register_counted(*tables: str) -> None:
    """Have /healthz report the row count of ``tables``."""
    for table in tables:
        if table not in COUNTED_TABLES:
            COUNTED_TABLES.append(table)


def health_report() -> dict[str, Any]:
    """Reachability, versions and counts; never raises for an unreachable database."""
    engine = current_app.extensions["engine"]
    report: dict[str, Any] = {"status": "ok", "database": {"reachable": False}}
    try:
        connection = get_session().connection()
        postgis = connection.execute(text("SELECT postgis_lib_version()")).scalar_one()
        server = connection.execute(text("SHOW server_version")).scalar_one()
        existing = set(connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars())
        counts = {
            table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            for table in COUNTED_TABLES if table in existing
        }
        current, head = current_revision(connection), head_revision(engine)
    except SQLAlchemyError as error:
        report.update(status="unavailable")
        report["database"]["error"] = str(error.orig if hasattr(error, "orig") else error).strip()
        return report
    report["database"] = {"reachable": True, "server_version": server, "postgis_version": postgis}
    report["migrations"] = {"current": current, "head": head, "up_to_date": current == head}
    report["network"] = counts
    if current != head:
        report["status"] = "migrations pending"
    return report


# What an unhealthy answer asks a load balancer or a client to wait before asking again.
RETRY_AFTER_S = 5


def health_answer(full: bool) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The body, status and headers of ``/healthz``: 200 or 503 (with Retry-After) for anyone,
    with only the status; versions, migrations and row counts when ``full`` (an admin)."""
    report = health_report()
    reachable = report["database"]["reachable"]
    body = report if full else {"status": report["status"]}
    return body, (200 if reachable else 503), ({} if reachable else {"Retry-After": str(RETRY_AFTER_S)})
