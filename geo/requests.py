"""Request bodies: the one place that reads a JSON body, and the size every body may have.

``json_body()`` is what every route that takes JSON calls: it refuses another media type (415;
``text/plain`` is what a web page may post cross-site without a CORS preflight), a body nested
deeper than ``MAX_DEPTH`` (400; Python's json raises RecursionError near 1,000 levels, a 500
before), and malformed JSON (400). ``init_app`` caps every body at ``API_MAX_BODY_BYTES``:
werkzeug refuses a longer body with 413 before reading it whole, with or without a
Content-Length; ``allow_body`` raises the cap for one request (the outlet import).
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Flask, request
from flask_babel import format_number

from geo.errors import Invalid, TooLarge, UnsupportedMediaType, problem_response
from geo.i18n import _, translate

__all__ = ["JSON", "MAX_DEPTH", "MAX_ID", "json_body", "json_object", "body_bytes", "nesting_depth", "unstorable_text", "whole_number", "parse_before",
           "refuse_unstorable_url",
           "allow_body", "init_app"]

JSON = "application/json"
# Our deepest body is an outlet's weekly hours: object, hours, day, interval (depth 4).
MAX_DEPTH = 32
MAX_ID = 2**63 - 1  # PostgreSQL's bigint: a larger id in a query is an error of the database (a 500 before)
_TOO_DEEP = object()


def json_body() -> Any:
    """The request's body parsed as JSON; UnsupportedMediaType, TooLarge or Invalid otherwise."""
    mimetype = request.mimetype
    # Refused before the body is read; a body without any type is refused once it is known to exist.
    if mimetype != JSON and (mimetype or body_bytes()):
        raise UnsupportedMediaType(_("send the body as %(json)s, not as %(value)s",
                                                  json=JSON, value=mimetype or _("a body without a Content-Type")))
    data = body_bytes()
    if not data.strip():
        raise Invalid(_("the body must be a JSON object; it is empty (Content-Type: %(json)s)", json=JSON))
    try:
        value = json.loads(data)
    except RecursionError:
        value = _TOO_DEEP
    except ValueError as error:
        raise Invalid(_("the body must be a JSON object; it is not valid JSON (%(error)s)", error=error)) from None
    if value is _TOO_DEEP or nesting_depth(value) > MAX_DEPTH:
        raise Invalid(_("the JSON body is nested too deeply (at most %(max_depth)s levels of lists and objects)", max_depth=MAX_DEPTH))
    if unstorable_text(value):
        raise Invalid(_("the JSON body holds a NUL character (\\u0000) or an unpaired surrogate (\\ud800-\\udfff), "
                        "which no text field takes"))
    return value


def unstorable_text(value: Any) -> bool:
    """Whether a text in ``value`` (a key or a string, at any depth) holds what PostgreSQL cannot store:
    NUL, or a UTF-16 surrogate that JSON's escapes let through unpaired.

    >>> unstorable_text({"a": ["ok", "x\\x00y"]}), unstorable_text("\\ud800"), unstorable_text({"ok": [1, "é"]})
    (True, True, False)
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or (not item.isascii() and any("\ud800" <= ch <= "\udfff" for ch in item)):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return False


def whole_number(value: str, most: int = MAX_ID) -> int | None:
    """``value`` as a whole number from 0 to ``most``, or None when it is not one (ASCII digits only:
    ``str.isdigit`` takes "²", which ``int`` refuses).

    >>> whole_number("42"), whole_number("²"), whole_number("-1"), whole_number("99", most=50)
    (42, None, None, None)
    """
    if not value.isascii() or not value.isdigit() or int(value) > most:
        return None
    return int(value)


def parse_before(value: str | None) -> int | None:
    """A paging parameter ``before`` (a previous page's ``next_before``): None when absent, Invalid
    when it is not a whole number."""
    if value is None:
        return None
    before = whole_number(value)
    if before is None:
        raise Invalid(_("before must be the next_before of a previous page; got %(value)r", value=value), field="before")
    return before


def body_bytes() -> bytes:
    """The whole body; TooLarge (413) when it is longer than the request's limit."""
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A streamed (chunked) body is cut at the limit without an error; werkzeug raises
        # RequestEntityTooLarge on the next read, so that a cut body is never taken for the whole.
        request.stream.read(1)
    return data


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion.

    >>> nesting_depth(1), nesting_depth([]), nesting_depth({"a": [[1], 2]})
    (0, 1, 3)

    Notes: linear in the number of values.
    """
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def json_object(allowed: set[str]) -> dict:
    """The JSON body as an object with no field outside ``allowed`` (Invalid otherwise)."""
    body = json_body()
    if not isinstance(body, dict):
        raise Invalid(_("the body must be a JSON object"))
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(_("unknown field(s): %(unknown)s", unknown=", ".join(unknown)))
    return body


def allow_body(limit: int) -> None:
    """Let this request's body have up to ``limit`` bytes; call before the body is read."""
    request.max_content_length = limit


def refuse_unstorable_url() -> None:
    """Invalid (400) for a path, query or sign-in form holding a NUL, which no code, name or
    filter can hold and PostgreSQL refuses to compare (a 500 before). Runs before every view, after
    the access check (app.py), so that a refused write is audited with its account."""
    form = request.form if request.mimetype == "application/x-www-form-urlencoded" else {}
    if "\x00" in request.path or unstorable_text([*request.args.lists(), *(form.lists() if form else ())]):
        raise Invalid(_("the URL or the form holds a NUL character, which no parameter takes"))


def init_app(app: Flask) -> None:
    """Cap every body at ``API_MAX_BODY_BYTES`` and render the 413 as ``problem+json``."""
    app.config["MAX_CONTENT_LENGTH"] = app.config["API_MAX_BODY_BYTES"]

    @app.errorhandler(413)
    def _too_large(error: Exception):
        limit = request.max_content_length
        detail = _("the body is larger than %(limit)s bytes, the most this route takes",
                   limit=format_number(limit)) if limit else TooLarge.title
        return problem_response(TooLarge.status, translate(TooLarge.title), translate(detail))



def instant(value: Any, name: str, where: str | None = None) -> datetime:
    """An ISO 8601 time with its offset (``Z`` for UTC) as an aware datetime; Invalid naming ``name``
    (prefixed by ``where``, e.g. "event 3") otherwise.

    >>> instant("2026-11-30T12:00:00Z", "at").isoformat()
    '2026-11-30T12:00:00+00:00'
    """
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or not 1990 <= parsed.year <= 2200:
        message = _("%(name)s must be an ISO 8601 time with its offset, e.g. 2026-11-30T18:00:00+01:00", name=name)
        raise Invalid(_("%(where)s: %(message)s", where=where, message=message) if where else message, field=name)
    return parsed
