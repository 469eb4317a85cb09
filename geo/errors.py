"""One error hierarchy for the whole service, rendered as RFC 9457 ``application/problem+json``.

Domain modules raise these errors (``Invalid`` naming the field, ``NotFound``, ``Conflict``,
...) and know nothing of HTTP or werkzeug: each class carries the status and title that the
one handler below renders, as pygeoapi's error classes do.
"""
from __future__ import annotations

from typing import Any

import psycopg
from flask import Flask, Response, json
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

__all__ = [
    "DomainError", "Invalid", "Unauthorized", "Forbidden", "NotFound", "Conflict",
    "Unprocessable", "TooLarge", "UnsupportedMediaType",
    "ImportFailed", "problem_response", "database_unavailable", "init_app",
]

PROBLEM_JSON = "application/problem+json"
# What a client should wait before trying again when the database is out of reach: a restart
# of PostgreSQL takes a few seconds, and the pools reconnect on the first request after it.
RETRY_AFTER_S = 5
# SQLSTATEs of a lost or refused connection: class 08 (connection exception), and 57P01-57P03
# (admin shutdown, crash shutdown, cannot connect now: the server is stopping or starting).
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03")


class DomainError(Exception):
    """Base of every error the service reports; subclasses fix the status and the title."""

    status = 500
    title = "Internal server error"
    type = "about:blank"

    def __init__(self, detail: str | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        body.update(self.extra)
        return body


class Invalid(DomainError):
    """The input is malformed; ``field`` names the parameter or body field at fault."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str | None = None, field: str | None = None, **extra: Any):
        if field is not None:
            extra["field"] = field
        super().__init__(detail, **extra)
        self.field = field


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class Unprocessable(DomainError):
    """Well-formed input that the domain refuses (a date in the past, a device that cannot switch)."""

    status = 422
    title = "Unprocessable entity"


class TooLarge(DomainError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(DomainError):
    """A body sent with a content type the route does not take (JSON routes take application/json)."""

    status = 415
    title = "Unsupported media type"


class ImportFailed(Unprocessable):
    """A network file was refused; ``layer``, ``row`` and ``reason`` say where and why."""

    title = "Import refused"

    def __init__(self, layer: str, row: Any, reason: str):
        super().__init__(f"layer {layer!r}, row {row}: {reason}", layer=layer, row=row, reason=reason)
        self.layer, self.row, self.reason = layer, row, reason


def problem_response(status: int, title: str, detail: str, **extra: Any) -> Response:
    """A ``problem+json`` response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body, default=str), status=status, mimetype=PROBLEM_JSON)


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached now (refused, dropped, shutting down),
    rather than that it refused what was asked (a constraint, a syntax error: a bug)."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    # No SQLSTATE: psycopg's own report of a connection that failed or was lost, with no server to answer.
    return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES


def init_app(app: Flask) -> None:
    """Render every error, ours or Flask's, as ``problem+json``."""

    @app.errorhandler(DomainError)
    def _problem(error: DomainError):
        return problem_response(**{k: v for k, v in error.to_dict().items() if k != "type"})

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return problem_response(error.code or 500, error.name, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if database_unavailable(error):
            app.logger.warning("database unavailable: %s", error)
            response = problem_response(503, "Service unavailable", "the database is unavailable; try again shortly")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        app.logger.exception("unhandled error")
        return problem_response(500, "Internal server error", "An unexpected error occurred.")
