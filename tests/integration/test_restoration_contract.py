"""The restoration routes keep their contract under schemathesis, with more cases than the
whole API's short run gives them (tests/integration/test_contract.py)."""
from __future__ import annotations

from tests import contract
from tests.integration.test_contract import contract_app  # noqa: F401 (the fixture)


def test_the_restoration_routes_keep_the_contract(contract_app, monkeypatch):  # noqa: F811
    app, seeded = contract_app
    every = contract.operations
    monkeypatch.setattr(contract, "operations",
                        lambda schema: [operation for operation in every(schema) if "/restoration/" in operation.path])
    # protected_feeder, seeded: a fault on s2 is isolated by R1 and SW2, and TIE re-feeds e and f
    seeded.known["/api/restoration/{code}"] = seeded.known["/api/restoration/{code}/simulate"] = {"code": "s2"}
    seeded.bodies["POST /api/restoration/{code}/simulate"] = [{"open": ["R1", "SW2"], "close": ["TIE"]}]
    tally = contract.run(app, seeded, 6)
    assert {operation for operation, _role in tally.cases} == {
        "GET /api/restoration/{code}", "POST /api/restoration/{code}/simulate"}
    assert not tally.failures, "\n\n".join(tally.failures.values())
