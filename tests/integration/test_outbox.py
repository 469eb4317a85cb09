"""The outbox writes each dedup key once, in the caller's transaction."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from geo import outbox


def _message(key, recipient="+49301234567"):
    return outbox.Message(kind="outage_restored", recipient=recipient, body="Power is back.",
                          due_at=datetime.now(timezone.utc), reference="outage:OUT-1", dedup_key=key)


def test_a_dedup_key_is_written_once(connection):
    assert outbox.enqueue(connection, [_message("outage:OUT-1:restored:1"), _message("outage:OUT-1:restored:2")]) == 2
    # The same change announced again (a replay): nothing new; messages without a key are all kept.
    assert outbox.enqueue(connection, [_message("outage:OUT-1:restored:1"), _message(None), _message(None)]) == 2
    rows = connection.execute(text("SELECT dedup_key FROM notification_outbox ORDER BY id")).scalars().all()
    assert rows == ["outage:OUT-1:restored:1", "outage:OUT-1:restored:2", None, None]


def test_nothing_to_write_writes_nothing(connection):
    assert outbox.enqueue(connection, []) == 0
    assert connection.execute(text("SELECT count(*) FROM notification_outbox")).scalar_one() == 0
