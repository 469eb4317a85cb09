"""The change feed that keeps live maps current: every change (a call, an outage, a crew's
position, a switching operation) writes one row here in its own transaction, and open maps
poll for what changed since their cursor.

The database is the shared truth across workers and machines. A cursor is a transaction-id
horizon, not a row id: ids are taken before commit, so a transaction that committed later with
a smaller id would be skipped by ``id > cursor``. Instead a poll returns the rows of every
transaction at or above the caller's horizon that it can see, and hands back the current
horizon (``pg_snapshot_xmin``): every transaction below it has ended, so nothing committed later
can fall behind the cursor. A row may come twice (harmless: the map reloads a layer once more).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, func, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

__all__ = ["LiveChange", "Changes", "note_change", "note_changes", "changes_since", "prune"]

# Kinds a map reacts to: each names the layer(s) to load again.
KINDS = ("outage", "call", "crew", "switching", "meter")
MAX_ROWS = 500
# About one write in a thousand prunes: a few rows a minute in a quiet hour, never a growing table.
PRUNE_CHANCE = 0.001


class LiveChange(Base):
    """One change a live map should show: its kind and what it is about."""

    __tablename__ = "live_changes"
    __table_args__ = (Index("ix_live_changes_xid", "xid"), Index("ix_live_changes_at", "at"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # pg_current_xact_id() of the writing transaction, as a number (xid8).
    xid: Mapped[int] = mapped_column(BigInteger, server_default=text("pg_current_xact_id()::text::bigint"))
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str | None] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dataclass(frozen=True)
class Changes:
    """What changed since a cursor, by kind, and the cursor to ask with next time."""

    cursor: int
    kinds: dict[str, list[str]] = field(default_factory=dict)
    at: datetime | None = None
    # The rows' ids: a map that remembers the ids it has acted on reloads nothing for a row that
    # comes again (rows come again while a long transaction elsewhere holds the horizon back).
    ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"cursor": self.cursor, "kinds": self.kinds, "at": self.at.isoformat() if self.at else None,
                "ids": self.ids}


_INSERT = text("INSERT INTO live_changes (kind, ref) SELECT * FROM unnest(CAST(:kinds AS text[]), "
               "CAST(:refs AS text[]))")


def noted(rows: str) -> str:
    """A data-modifying CTE ``noted`` recording the changes ``rows`` (a SELECT of kind, ref) in the
    statement that makes them: a write that is one statement anyway needs no second for its note.
    Call ``maybe_prune`` after it, as note_changes does.

    >>> noted("SELECT 'call', 'C1'")
    "noted AS (INSERT INTO live_changes (kind, ref) SELECT 'call', 'C1' RETURNING id)"
    """
    return f"noted AS (INSERT INTO live_changes (kind, ref) {rows} RETURNING id)"


def maybe_prune(connection: Connection) -> None:
    """Now and then a writer clears what no open map needs any more."""
    if random.random() < PRUNE_CHANCE:
        prune(connection)


def note_change(connection: Connection, kind: str, refs: list[str] | str | None = None) -> None:
    """Record that ``kind`` changed (about ``refs``), in the caller's transaction."""
    note_changes(connection, [(kind, refs)])


def note_changes(connection: Connection, changes: list[tuple[str, list[str] | str | None]]) -> None:
    """Record several ``(kind, refs)`` changes with one statement, in the caller's transaction."""
    kinds, refs = [], []
    for kind, about in changes:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        about = [about] if isinstance(about, str) or about is None else about
        for ref in about[:MAX_ROWS] or [None]:
            kinds.append(kind)
            refs.append(ref[:120] if ref else None)
    connection.execute(_INSERT, {"kinds": kinds, "refs": refs})
    maybe_prune(connection)


def changes_since(connection: Connection, cursor: int | None) -> Changes:
    """The changes of every transaction at or above ``cursor`` (None: none, just the cursor)."""
    row = connection.execute(text(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, now()")).one()
    horizon, now = int(row[0]), row[1]
    if cursor is None:
        return Changes(horizon, {}, now)
    kinds: dict[str, list[str]] = {}
    rows = connection.execute(text(
        "SELECT id, kind, ref FROM live_changes WHERE xid >= :cursor ORDER BY id LIMIT :limit"),
        {"cursor": cursor, "limit": MAX_ROWS * 4}).all()
    for _id, kind, ref in rows:
        refs = kinds.setdefault(kind, [])
        if ref is not None and ref not in refs and len(refs) < MAX_ROWS:
            refs.append(ref)
    return Changes(horizon, kinds, now, sorted({row.id for row in rows}))


def prune(connection: Connection, keep_minutes: int = 60) -> int:
    """Delete changes older than ``keep_minutes`` (no open map needs them); return how many."""
    return connection.execute(text("DELETE FROM live_changes WHERE at < now() - make_interval(mins => :m)"),
                              {"m": keep_minutes}).rowcount
