"""Who may use a route.

Today one role beyond the public exists: the outlet administrator, who sends the server's
``ADMIN_TOKEN`` as a bearer token. Accounts, roles and API tokens grow here (the accounts
issue); every package asks this module, never the request headers itself.
"""
from __future__ import annotations

import hmac

from flask import current_app, request

from geo.errors import Forbidden, Unauthorized

__all__ = ["bearer_token", "check_admin_token", "require_admin", "is_admin"]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None.

    >>> bearer_token("Bearer  abc "), bearer_token("Basic abc"), bearer_token(None)
    ('abc', None, None)
    """
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return authorization[7:].strip()


def check_admin_token(configured: str | None, given: str | None) -> None:
    """Forbidden when no admin token is configured (the admin API is off); Unauthorized unless
    ``given`` equals it (compared in constant time)."""
    if not configured:
        raise Forbidden("the admin API is switched off: set ADMIN_TOKEN in the server's environment")
    if given is None or not hmac.compare_digest(given.encode(), configured.encode()):
        raise Unauthorized("send the admin token as 'Authorization: Bearer <token>'")


def require_admin() -> None:
    """The request's check for admin routes (a blueprint's ``before_request``)."""
    check_admin_token(current_app.config.get("ADMIN_TOKEN"), bearer_token(request.headers.get("Authorization")))


def is_admin() -> bool:
    """Whether the request carries the admin token (for answers that say more to an admin)."""
    try:
        require_admin()
    except (Forbidden, Unauthorized):
        return False
    return True
