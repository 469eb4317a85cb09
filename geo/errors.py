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
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from geo.i18n import _, translate, translate_all

__all__ = [
    "DomainError", "Invalid", "Unauthorized", "Forbidden", "NotFound", "Conflict",
    "Unprocessable", "TooLarge", "UnsupportedMediaType",
    "ImportFailed", "problem_response", "database_unavailable", "init_app",
]

PROBLEM_JSON = "application/problem+json"
# What a client should wait before trying again when the database is out of reach: a restart
# of PostgreSQL takes a few seconds, and the pools reconnect on the first request after it.
RETRY_AFTER_S = 5
# SQLSTATEs of a lost or refused connection: class 08 (connection exception), 57P01-57P03
# (admin shutdown, crash shutdown, cannot connect now: the server is stopping or starting), and
# 53300 (too many connections: the server is full for now).
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03", "53300")


class DomainError(Exception):
    """Base of every error the service reports; subclasses fix the status and the title."""

    status = 500
    title = _("Internal server error")
    type = "about:blank"

    def __init__(self, detail: str | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        """The problem's members; title, detail and marked texts among the extras in the
        request's language (geo/i18n.py)."""
        body = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        body.update(self.extra)
        return translate_all(body)


class Invalid(DomainError):
    """The input is malformed; ``field`` names the parameter or body field at fault."""

    status = 400
    title = _("Bad request")

    def __init__(self, detail: str | None = None, field: str | None = None, **extra: Any):
        if field is not None:
            extra["field"] = field
        super().__init__(detail, **extra)
        self.field = field


class Unauthorized(DomainError):
    status = 401
    title = _("Unauthorized")


class Forbidden(DomainError):
    status = 403
    title = _("Forbidden")


class NotFound(DomainError):
    status = 404
    title = _("Not found")


class Conflict(DomainError):
    status = 409
    title = _("Conflict")


class Unprocessable(DomainError):
    """Well-formed input that the domain refuses (a date in the past, a device that cannot switch)."""

    status = 422
    title = _("Unprocessable entity")


class TooLarge(DomainError):
    status = 413
    title = _("Payload too large")


class UnsupportedMediaType(DomainError):
    """A body sent with a content type the route does not take (JSON routes take application/json)."""

    status = 415
    title = _("Unsupported media type")


class ImportFailed(Unprocessable):
    """A network file was refused; ``layer``, ``row`` and ``reason`` say where and why."""

    title = _("Import refused")

    def __init__(self, layer: str, row: Any, reason: str):
        super().__init__(_("layer %(layer)r, row %(row)s: %(reason)s", layer=layer, row=row, reason=reason),
                         layer=layer, row=row, reason=reason)
        self.layer, self.row, self.reason = layer, row, reason


def problem_response(status: int, title: str, detail: str, **extra: Any) -> Response:
    """A ``problem+json`` response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body, default=str), status=status, mimetype=PROBLEM_JSON)


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached now (refused, dropped, shutting down),
    rather than that it refused what was asked (a constraint, a syntax error: a bug). Every
    connection of the pool busy past its timeout counts too: the service is overloaded for now."""
    if isinstance(error, PoolTimeout):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    # No SQLSTATE: psycopg's own report of a connection that failed or was lost, with no server to answer.
    return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES


# werkzeug's errors that reach clients, in our words so that they can be translated; any other
# keeps werkzeug's English. A description set by the code that raised it (abort(404, "...")) wins.
_HTTP_TEXTS = {
    400: (_("Bad request"), _("The browser (or proxy) sent a request that this server could not understand.")),
    404: (_("Not found"), _("The requested URL was not found on the server. If you entered the URL manually "
                            "please check your spelling and try again.")),
    405: (_("Method not allowed"), _("The method is not allowed for the requested URL.")),
    413: (_("Payload too large"), _("The data value transmitted exceeds the capacity limit.")),
    415: (_("Unsupported media type"), _("The server does not support the media type transmitted in the request.")),
    429: (_("Too many requests"), _("This user has exceeded an allotted request count. Try again later.")),
}


def _http_texts(error: HTTPException) -> tuple[Any, Any]:
    """The title and detail of werkzeug's ``error``, marked for translation where we know them."""
    title, detail = _HTTP_TEXTS.get(error.code or 500, (error.name, error.description or error.name))
    if error.description and error.description != type(error).description:
        detail = error.description
    return title, detail


def init_app(app: Flask) -> None:
    """Render every error, ours or Flask's, as ``problem+json``."""

    @app.errorhandler(DomainError)
    def _problem(error: DomainError):
        return problem_response(**{k: v for k, v in error.to_dict().items() if k != "type"})

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        title, detail = _http_texts(error)
        return problem_response(error.code or 500, translate(title), translate(detail))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if database_unavailable(error):
            app.logger.warning("database unavailable: %s", error)
            response = problem_response(503, translate(_("Service unavailable")),
                                        translate(_("the database is unavailable; try again shortly")))
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        app.logger.exception("unhandled error")
        return problem_response(500, translate(DomainError.title), translate(_("An unexpected error occurred.")))
