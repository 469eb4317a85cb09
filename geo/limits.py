"""Rate limits (Flask-Limiter): sign-ins per account and per client address, public writes per
client address and per phone number.

The counters live in memory by default, which is right for one process; with several workers or
machines set ``RATELIMIT_STORAGE_URI`` (``redis://host:6379/0``) so they share one count. The
limits themselves are settings (``LOGIN_RATE_LIMIT``, ``PUBLIC_WRITE_RATE_LIMIT``,
``PUBLIC_LOOKUP_RATE_LIMIT``), read per
request, so a deployment and the tests can change them. A refused request answers 429
problem+json with Retry-After.
"""
from __future__ import annotations

from typing import Callable

from flask import Flask, current_app, request
from flask_limiter import Limiter

__all__ = ["limiter", "login_limits", "public_write_limits", "public_lookup_limits", "public_contact_limits", "client_address", "init_app"]


def client_address() -> str:
    """The client's address (behind a trusted proxy, the one it reports: geo.server)."""
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=client_address, headers_enabled=True, strategy="moving-window")


def _setting(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def _json_object() -> dict:
    """The body as a JSON object for a limit's key, or {}: the view's own parser (geo.requests)
    judges the body; a key must never fail, even on JSON nested a thousand deep."""
    if not request.is_json:
        return {}
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        return {}
    return body if isinstance(body, dict) else {}


def _login_name() -> str:
    """The account a sign-in names (form or JSON), lower-cased: guessing one account's password
    from many addresses is limited as well as many accounts from one address."""
    name = request.form.get("name") if request.form else None
    if name is None:
        name = _json_object().get("name")
    return f"login-name:{str(name or '').strip().lower()[:64]}"


def _phone() -> str:
    """The phone number a public write gives (a booking's), digits only; the address when there is none."""
    phone = _json_object().get("phone")
    if not isinstance(phone, str) or not phone.strip():
        return f"phone-none:{client_address()}"
    return "phone:" + "".join(ch for ch in phone if ch.isdigit())[:20]


def login_limits(view):
    """Sign-in attempts: per client address and per account name."""
    view = limiter.limit(_setting("LOGIN_RATE_LIMIT"), key_func=client_address, scope="login-address")(view)
    return limiter.limit(_setting("LOGIN_RATE_LIMIT"), key_func=_login_name, scope="login-name")(view)


def public_write_limits(view):
    """Public writes (bookings; calls later): per client address and per phone."""
    view = limiter.limit(_setting("PUBLIC_WRITE_RATE_LIMIT"), key_func=client_address, scope="write-address",
                         methods=["POST", "PUT", "PATCH", "DELETE"])(view)
    return limiter.limit(_setting("PUBLIC_WRITE_RATE_LIMIT"), key_func=_phone, scope="write-phone",
                         methods=["POST", "PUT", "PATCH"])(view)


def public_lookup_limits(view):
    """Public look-ups that answer about one customer (the outage status by account or address):
    per client address, so that account numbers cannot be tried in bulk."""
    return limiter.limit(_setting("PUBLIC_LOOKUP_RATE_LIMIT"), key_func=client_address, scope="lookup-address")(view)


def _contact_address() -> str:
    """The address a public write sends to (a subscription's SMS number, e-mail or webhook),
    lower-cased; the client's address when there is none."""
    address = _json_object().get("address")
    if not isinstance(address, str) or not address.strip():
        return f"contact-none:{client_address()}"
    return "contact:" + "".join(address.lower().split())[:200]


def public_contact_limits(view):
    """Public writes that send a message to an address they name (a subscription's code): per
    client address and per that address, so that nobody floods someone else's phone with codes."""
    view = limiter.limit(_setting("PUBLIC_WRITE_RATE_LIMIT"), key_func=client_address, scope="write-address",
                         methods=["POST"])(view)
    return limiter.limit(_setting("PUBLIC_WRITE_RATE_LIMIT"), key_func=_contact_address, scope="write-contact",
                         methods=["POST"])(view)


def init_app(app: Flask) -> None:
    """Counters in memory unless ``RATELIMIT_STORAGE_URI`` points elsewhere."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
