"""The contract, proven: schemathesis calls every operation of /openapi.json in process, anonymously
and with a bearer token of each role, and every answer must be documented (status, media type,
schema) and none a 5xx. A short run (a few cases per operation and role); ``make fuzz`` runs
thousands (bench/fuzz.py)."""
from __future__ import annotations

import pytest

from tests.contract import UNLIMITED, run, seed

# Cases per operation, role and generation mode (positive and negative): 50 operations x 5 roles.
EXAMPLES = 2


@pytest.fixture()
def contract_app(committed_app, committed_engine, monkeypatch):
    """The committed app with the fuzzers' data, accounts and tokens, and no rate limit in reach."""
    for name, value in UNLIMITED.items():
        monkeypatch.setitem(committed_app.config, name, value)
    return committed_app, seed(committed_engine, committed_app)


def test_every_answer_keeps_the_contract(contract_app):
    app, seeded = contract_app
    tally = run(app, seeded, EXAMPLES)
    print(tally.report())
    assert sum(tally.cases.values()) > 400
    assert not tally.failures, "\n\n".join(tally.failures.values())
