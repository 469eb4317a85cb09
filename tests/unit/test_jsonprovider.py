"""geo.jsonprovider: orjson writes the same JSON as Flask's default provider."""
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider

import geo.jsonprovider


@dataclass
class Point:
    lon: float
    lat: float


PAYLOAD = {"b": [1, 2.5, 1e-05, None, True], "a": {"z": "Mühlenstraße 3", "y": (1, 2)}, "ints": {7: "seven", 8: "eight"},
           "when": datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc), "day": date(2026, 3, 29),
           "amount": Decimal("12.50"), "id": uuid.UUID(int=5), "point": Point(8.4, 49.0), "big": 2**53}


def apps() -> tuple[Flask, Flask]:
    """An app with Flask's default provider and one with ours."""
    plain, fast = Flask("plain"), Flask("fast")
    geo.jsonprovider.init_app(fast)
    return plain, fast


def test_same_json_as_flask():
    plain, fast = apps()
    assert isinstance(plain.json, DefaultJSONProvider) and isinstance(fast.json, geo.jsonprovider.OrjsonProvider)
    with plain.app_context():
        expected = jsonify(PAYLOAD)
    with fast.app_context():
        got = jsonify(PAYLOAD)
    assert got.mimetype == expected.mimetype == "application/json"
    assert json.loads(got.get_data()) == json.loads(expected.get_data())
    # Keys sorted, compact, one trailing newline, as Flask writes them.
    assert got.get_data(as_text=True).startswith('{"a":{"y":[1,2],"z":"Mühlenstraße 3"},"amount":"12.50"')
    assert got.get_data().endswith(b"}\n")
    assert fast.json.dumps(PAYLOAD) == got.get_data(as_text=True).rstrip("\n")


def test_indented_and_explicit_arguments_stay_on_the_standard_library():
    plain, fast = apps()
    fast.debug = plain.debug = True
    with plain.app_context():
        expected = jsonify(PAYLOAD).get_data()
    with fast.app_context():
        assert jsonify(PAYLOAD).get_data() == expected
    assert fast.json.dumps({"b": 1, "a": "ü"}, indent=1) == plain.json.dumps({"b": 1, "a": "ü"}, indent=1)


def test_unknown_types_fail_as_before():
    _, fast = apps()
    for value in ({1, 2}, object()):
        try:
            fast.json.dumps({"x": value})
        except TypeError:
            continue
        raise AssertionError(f"{value!r} was encoded")
