"""Schemathesis against the app in process: data to reach past the 404s, an account and a token of
each role, and a runner that counts cases and failures per operation and role.

Shared by the short run in the test suite (``tests/integration/test_contract.py``) and by
``make fuzz`` (``bench/fuzz.py``). Every operation of ``/openapi.json`` is called anonymously and
with a bearer token of each role (bearer tokens need no CSRF token; a session cookie would).
Nothing is skipped: signing out (DELETE /api/session) only clears the session of its own
request, and revoking or disabling can only reach the spare account and token, never the
fuzzers' own (their names and ids are not generated; a revoked token would show as 401s).
"""
from __future__ import annotations

import json
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geo import accounts
from geo.auth import PUBLIC, ROLES
from outages.crews import create_crew
from tests.accounts import TOKENS, account_name, add_role_accounts, client_as
from tests.networks import protected_feeder
from tests.outlet_data import CENTRE, add_outlet, days_ahead, local, outlet_values
from topology.loader import load_network

ANONYMOUS = "anonymous"
# High enough that no fuzzer meets a 429; the contract documents 429 on the limited routes.
UNLIMITED = {"LOGIN_RATE_LIMIT": "1000000 per minute", "PUBLIC_WRITE_RATE_LIMIT": "1000000 per minute",
             "PUBLIC_LOOKUP_RATE_LIMIT": "1000000 per minute"}


@dataclass
class Seeded:
    """What the fuzzers can name: tokens by role, known values of path parameters by operation or
    path, and queries and bodies that the rules take (or refuse only for the state they find) by operation."""

    tokens: dict[str, str]
    known: dict[str, dict[str, object] | list[dict[str, object]]]
    bodies: dict[str, list] = field(default_factory=dict)
    queries: dict[str, list[dict]] = field(default_factory=dict)


def seed(engine: Engine, app) -> Seeded:
    """Commit protected_feeder, an outlet with a booking, the tests' account and token of each role
    (tests/accounts.py), and a spare account and token that the admin's fuzzing may change and revoke."""
    # Every date from one "today": read again later, midnight in Berlin could fall between (a seed at
    # 23:56 UTC closed the day it then booked).
    today = days_ahead(0)
    with engine.begin() as connection:
        add_role_accounts(connection)
        load_network(connection, protected_feeder())
        add_outlet(connection, "OUT-T1", **_outlet(today))
    with Session(engine) as session, session.begin():
        accounts.create_account(session, "spare-account", "crew", "a long enough password")
        spare_token = accounts.issue_token(session, "spare-account").id
    with engine.begin() as connection:
        create_crew(connection, "CR-T", "Test crew", depot_point=CENTRE, account=account_name("crew"))
        create_crew(connection, "CR-U", "Spare crew", depot_point=CENTRE)
    outage, call = _outage(app)
    booking, cancelled = (_book(app, local(today + timedelta(days=2), hour), f"contract-seed-{hour}")
                         for hour in (10, 12))
    day = (today + timedelta(days=3)).isoformat()
    known = {
        "/api/outlets/{code}": {"code": "OUT-T1"}, "/api/outlets/{code}/slots": {"code": "OUT-T1"},
        "/api/bookings/{code}": [{"code": booking}, {"code": f"{booking}.ics"}],
        "DELETE /api/bookings/{code}": {"code": cancelled},  # another booking: the rest still find theirs
        "/api/admin/outlets/{code}": {"code": "OUT-T1"},
        "/api/admin/outlets/{code}/exceptions/{day}": {"code": "OUT-T1", "day": day},
        "/api/admin/accounts/{name}": {"name": "spare-account"},
        "/api/admin/accounts/{name}/tokens": {"name": "spare-account"},
        "/api/admin/tokens/{token_id}": {"token_id": spare_token},
    }
    for path in ("", "/transitions", "/move", "/etr", "/steps", "/crews", "/assign", "/release"):
        known[f"/api/outages/{{code}}{path}"] = {"code": outage}
    for path in ("positions", "status", "notes"):
        known[f"/api/crews/{{code}}/{path}"] = {"code": "CR-T"}
    known["/api/calls/{reference}"] = {"reference": call}
    for trace in ("downstream", "upstream", "isolation", "connected"):
        known[f"/api/trace/{trace}/{{code}}"] = {"code": "SW2"}
    queries = {"GET /api/outlets/nearest": [{"lon": CENTRE[0], "lat": CENTRE[1]}, {"q": "Kaiserstraße 12"}],
               "POST /api/admin/outlets/import": [{"format": "geojson"}]}
    return Seeded(dict(TOKENS), known, _good_bodies(today), queries)


# OUT-T1 as seeded and as the admin's fuzzing replaces it: an exception for DELETE to remove.
def _outlet(today) -> dict:
    return {"hours": "Mo-Su 08:00-20:00", "services": {"billing": 50, "meter": 50},
            "exceptions": [{"date": (today + timedelta(days=3)).isoformat(), "hours": "off"}]}


def _outage(app) -> tuple[str, str]:
    """A confirmed outage at F1 (made by the test dispatcher) and a call's reference."""
    answer = client_as(app, "dispatcher").post("/api/outages", json={"device": "F1", "cause": "weather"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    call = app.test_client().post("/api/calls", json={"account": "A-C4"})
    assert call.status_code == 201, call.get_data(as_text=True)
    return answer.get_json()["outage"]["code"], call.get_json()["reference"]


def _book(app, start, key: str) -> str:
    """The code of a new booking at OUT-T1."""
    answer = app.test_client().post("/api/bookings", json={
        "outlet": "OUT-T1", "service": "billing", "start": start.isoformat(), "name": "Ada Lovelace",
        "phone": "0721 1334455", "idempotency_key": key})
    assert answer.status_code in (200, 201), answer.get_data(as_text=True)
    return answer.get_json()["code"]


def _good_bodies(today) -> dict[str, list]:
    """Bodies the rules take, so that positive cases reach past the parsing to the answers."""
    later = local(today + timedelta(days=4), 11).isoformat()
    switch = [{"operations": [{"device": "SW2", "action": action}], "reason": "fuzzing"} for action in ("open", "close")]
    return {
        "POST /api/bookings": [{"outlet": "OUT-T1", "service": "meter", "start": later, "name": "Grace Hopper",
                                "phone": "+49 721 1334455", "idempotency_key": "fuzzing"}],
        "PATCH /api/bookings/{code}": [{"start": later}, {"start": later, "service": "meter"}],
        "POST /api/trace/affected": [{"open": ["SW2"], "out_of_service": ["s1"]}],
        "POST /api/switching": switch,
        "POST /api/admin/outlets": [outlet_values("OUT-F2")],
        "PUT /api/admin/outlets/{code}": [outlet_values("OUT-T1", **_outlet(today))],
        "PUT /api/admin/outlets/{code}/exceptions/{day}": [{"hours": "08:00-12:00", "note": "fuzzing"}, {"hours": "off"}],
        "POST /api/admin/accounts": [{"name": "fuzz-made", "role": "planner", "password": "a long enough password"}],
        "PATCH /api/admin/accounts/{name}": [{"disabled": False, "control_feeders": ["F1"]}],
        "POST /api/admin/accounts/{name}/tokens": [{"expires_days": 1, "label": "fuzzing"}],
        "POST /api/session": [{"name": "spare-account", "password": "a long enough password"}],
        "POST /api/admin/outlets/import": [("multipart/form-data", {"file": _outlet_file()})],
        "POST /login": [("application/x-www-form-urlencoded", {"name": "spare-account", "password": "a long enough password"})],
        "POST /api/calls": [{"account": "A-C5", "wire_down": True, "note": "fuzzing"}, {"lon": CENTRE[0], "lat": CENTRE[1]}],
        "POST /api/meter-events": [{"events": [{"id": "fuzz-1", "meter": "C9", "kind": "last_gasp",
                                                "at": "2026-11-30T12:00:00Z"}]}],
        "POST /api/outages": [{"device": "T1", "cause": "equipment"}],
        "POST /api/outages/{code}/transitions": [{"to": state} for state in ("en_route", "on_site", "restored")],
        "POST /api/outages/{code}/move": [{"device": "R1"}],
        "POST /api/outages/{code}/etr": [{"etr": None}],
        "POST /api/outages/{code}/steps": [{"device": "T1"}],
        "POST /api/outages/{code}/assign": [{}, {"crew": "CR-U"}],
        "POST /api/crews/{code}/positions": [{"positions": [{"lon": CENTRE[0], "lat": CENTRE[1],
                                                             "at": "2026-11-30T12:00:00Z"}]}],
        "POST /api/crews/{code}/status": [{"status": "en_route"}],
        "POST /api/crews/{code}/notes": [{"note": "fuzzing"}],
    }


def _outlet_file() -> bytes:
    """A GeoJSON file of one outlet in the import layout."""
    values = outlet_values("OUT-F3")
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [values.pop("lon"), values.pop("lat")]},
               "properties": values}
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()


@dataclass
class Tally:
    """Cases and failures per (operation, role), answers below 400 per operation (how often a case
    got past the checks to the work), and the failures themselves (one of each kind)."""

    cases: Counter = field(default_factory=Counter)
    answered: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    failures: dict[tuple, str] = field(default_factory=dict)

    def add(self, operation: str, role: str, status: int, problem: str | None, key: tuple | None = None) -> None:
        self.cases[operation, role] += 1
        self.answered[operation] += status < 400
        self.statuses[status] += 1
        if problem is not None:
            self.failed[operation, role] += 1
            self.failures.setdefault(key or (operation, role, problem[:80]), problem)

    def report(self) -> str:
        """Cases and failures per operation and role, and the totals."""
        operations = sorted({operation for operation, _ in self.cases})
        roles = [ANONYMOUS, *ROLES]
        lines = [f"{'operation':50} " + " ".join(f"{role[:10]:>10}" for role in roles) + "    2xx/3xx  failed"]
        for operation in operations:
            row = " ".join(f"{self.cases[operation, role]:>10}" for role in roles)
            failed = sum(self.failed[operation, role] for role in roles)
            lines.append(f"{operation:50} {row} {self.answered[operation]:>10} {failed:>7}")
        lines.append(f"cases: {sum(self.cases.values())} over {len(operations)} operations and {len(roles)} roles "
                     f"(anonymous and {', '.join(ROLES)}); failed cases: {sum(self.failed.values())}; "
                     f"distinct failures: {len(self.failures)}")
        lines.append("statuses: " + ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items())))
        return "\n".join(lines)


def load_schema(app):
    """The app's own /openapi.json."""
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def operations(schema) -> list:
    """Every operation, /openapi.json included (schemathesis leaves out the one serving the schema)."""
    found = [result.ok() for result in schema.get_all_operations()]
    if not any(operation.path == "/openapi.json" for operation in found):
        found.append(schema.find_operation_by_id("openapi.openapi_json"))
    return found


def _checks():
    """The contract's checks: no 5xx, and a documented status, media type and body schema."""
    from schemathesis import checks as general
    from schemathesis.specs.openapi import checks as openapi

    return [general.not_a_server_error, openapi.status_code_conformance, openapi.content_type_conformance,
            openapi.response_schema_conformance]


def _call(case, app, role: str, seeded: Seeded, tally: Tally, checks) -> None:
    """Send one case as ``role`` and record what the checks say."""
    case.headers = {key: value for key, value in (case.headers or {}).items() if key.lower() != "authorization"}
    case.cookies = {}
    if role != ANONYMOUS:
        case.headers["Authorization"] = f"Bearer {seeded.tokens[role]}"
    label = f"{case.method} {case.path}"
    response = case.call(app=app)
    try:
        case.validate_response(response, checks=checks)
    except (AssertionError, FailureGroup) as error:  # a Failure, or a FailureGroup of every check that failed
        problem = f"{label} as {role}: {response.status_code}\n{error}\n{case.as_curl_command()}"
        key = (label, role, response.status_code, type(error).__name__, str(error)[:120])
        tally.add(label, role, response.status_code, problem, key)
        return
    tally.add(label, role, response.status_code, None)


def run(app, seeded: Seeded, examples: int, modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
        roles=(ANONYMOUS, *ROLES), seed_value: int = 1) -> Tally:
    """About ``examples`` cases per operation and mode (positive ones shared with the known path
    values and the good bodies, where there are any), each sent as every role the operation admits;
    the first one also as every role it refuses. Returns the tally.

    Cases are drawn once and sent as each role (``_call`` sets the role's token): drawing them is
    most of the cost, and what a case holds does not depend on who sends it. A refused role needs
    one case: the guard answers before a view reads its input."""
    schema = load_schema(app)
    checks = _checks()
    tally = Tally()
    for operation in operations(schema):
        known = seeded.known.get(operation.label, seeded.known.get(operation.path))
        admitted = [role for role in roles if _admitted(operation, role)]
        refused = [role for role in roles if role not in admitted]
        sample = None  # the case sent as each refused role
        for mode in modes:
            strategies = [operation.as_strategy(generation_mode=mode)]
            if mode == GenerationMode.POSITIVE:
                strategies += _known_strategies(operation, known, seeded.bodies.get(operation.label, []),
                                                seeded.queries.get(operation.label, []))
            for strategy in strategies:
                cases = _draw(strategy, max(1, examples // len(strategies)), seed_value)
                sample = sample or next(iter(cases), None)
                for case in cases:
                    for role in admitted:
                        _call(case, app, role, seeded, tally, checks)
        for role in refused if sample is not None else ():
            _call(sample, app, role, seeded, tally, checks)
    return tally


def _admitted(operation, role: str) -> bool:
    """Whether the operation's declared roles (its ``x-roles``) let ``role`` past the guard."""
    roles = operation.definition.raw.get("x-roles", [])
    return PUBLIC in roles or role in roles


def _known_strategies(operation, known: dict | list | None, bodies: list, queries: list) -> list:
    """Positive strategies with the path values that exist, each good query, and each good body
    (JSON, or ``(media type, body)``)."""
    values = known if isinstance(known, list) else [known] if known else []
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=value)
                  for value in values]
    strategies += [operation.as_strategy(generation_mode=GenerationMode.POSITIVE, query=query) for query in queries]
    fixed = {"path_parameters": values[0]} if values else {}
    if queries:
        fixed["query"] = queries[0]
    for body in bodies:
        media, body = body if isinstance(body, tuple) else ("application/json", body)
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.POSITIVE, body=body, media_type=media,
                                                **fixed))
    return strategies


def _draw(strategy, examples: int, seed_value: int) -> list:
    """About ``examples`` cases drawn from ``strategy`` (none when it can make none)."""
    settings = hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                                   suppress_health_check=list(HealthCheck), phases=[Phase.generate],
                                   print_blob=False)
    drawn = []

    @settings
    @hypothesis.seed(seed_value)
    @hypothesis.given(strategy)
    def each(case):
        drawn.append(case)

    try:
        each()
    except hypothesis.errors.Unsatisfiable:
        pass  # a strategy that can make no case (a negative one of an operation without inputs)
    except Exception:
        traceback.print_exc()
        raise
    return drawn
