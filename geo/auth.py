"""Who may use a route, and who is asking.

Every view declares its access with ``@allow(...)`` (roles from ``ROLES``; ``PUBLIC`` for
everyone). One ``before_request`` hook finds the caller (a bearer token, else the session
cookie), checks the CSRF token of a state-changing request made with a session, and refuses the
request before the view runs: 401 to an anonymous caller, 403 to a signed-in one without the
role. A view without a declaration is refused to everyone (fail closed), and the role-matrix
test fails on it, so no route ships unguarded. The accounts and tokens themselves live in
``geo.accounts``; every package asks this module, never the request headers itself.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable, TypeVar

from flask import Flask, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from geo.errors import Forbidden, Unauthorized
from geo.i18n import _, translate

__all__ = [
    "PUBLIC", "CREW", "DISPATCHER", "PLANNER", "ADMIN", "INTEGRATION", "ROLES", "STAFF", "NETWORK_READERS",
    "Principal", "allow", "declare", "access_of", "bearer_token", "current_principal", "control_feeders",
    "require_role", "csrf_token", "sign_in", "sign_out", "init_app",
]

PUBLIC = "public"
CREW = "crew"
DISPATCHER = "dispatcher"
PLANNER = "planner"
ADMIN = "admin"
# A system that sends data in (the meter head-end): its token may post meter events, nothing else.
INTEGRATION = "integration"
ROLES = (CREW, DISPATCHER, PLANNER, ADMIN, INTEGRATION)  # the roles an account can have
STAFF = frozenset(ROLES)  # any signed-in account
ROLE_LABELS = {CREW: _("crew"), DISPATCHER: _("dispatcher"), PLANNER: _("planner"), ADMIN: _("admin"),
               INTEGRATION: _("integration")}
# Who sees the network with its customers (points, account numbers, addresses), traces and the
# switching log (docs/access.md).
NETWORK_READERS = frozenset({DISPATCHER, PLANNER})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# A control-room session is a working day (Flask's default cookie lasts 31 days); the server-side
# session (geo/accounts.py) ends as many hours after the sign-in, whatever the cookie says.
SESSION_LIFETIME = timedelta(hours=12)
# The sign-in form checks its token even without a session: another site must not sign a
# visitor in to an account of its choosing (login CSRF). The form page sets the token.
_ALWAYS_CSRF = frozenset({"accounts.login"})

View = TypeVar("View", bound=Callable)


@dataclass(frozen=True)
class Principal:
    """The account behind a request: its name and role, the token used (None for a session),
    and the feeders a dispatcher is limited to (None: everywhere)."""

    account_id: int
    name: str
    role: str
    token_id: int | None = None
    control_feeders: frozenset[str] | None = None

    def as_dict(self) -> dict:
        """As JSON (``/api/session``)."""
        return {"name": self.name, "role": self.role, "token_id": self.token_id,
                "control_feeders": sorted(self.control_feeders) if self.control_feeders is not None else None}


def allow(*roles: str) -> Callable[[View], View]:
    """Declare who may call a view: ``@allow(PUBLIC)`` or ``@allow(DISPATCHER, ADMIN)``."""
    unknown = set(roles) - {PUBLIC, *ROLES}
    if not roles or unknown:
        raise ValueError(f"allow() takes roles from {(PUBLIC, *ROLES)}; got {roles!r}")

    def declare_view(view: View) -> View:
        view.access = frozenset(roles)
        return view

    return declare_view


_DECLARED: dict[str, frozenset[str]] = {}


def declare(endpoint: str, *roles: str) -> None:
    """Declare the access of an endpoint whose view is not ours (``static``)."""
    allow(*roles)  # validates
    _DECLARED[endpoint] = frozenset(roles)


def access_of(app: Flask, endpoint: str) -> frozenset[str] | None:
    """The roles declared for ``endpoint``, or None when it declares none."""
    if endpoint in _DECLARED:
        return _DECLARED[endpoint]
    view = app.view_functions.get(endpoint)
    return getattr(view, "access", None)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None.

    >>> bearer_token("Bearer  abc "), bearer_token("Basic abc"), bearer_token(None)
    ('abc', None, None)
    """
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return authorization[7:].strip()


# -- who is asking ----------------------------------------------------------------------------------
def _principal_from_request() -> Principal | None:
    """The caller: the bearer token's account, else the session's, else None (anonymous).

    A bearer token that is unknown, expired or revoked is refused outright rather than treated
    as anonymous: an integration with a dead token should hear so, not get the public answer."""
    from geo import accounts  # the tables; imported here so that this module stays light

    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        principal = accounts.principal_for_token(token)
        if principal is None:
            raise Unauthorized(_("the bearer token is unknown, expired or revoked"))
        return principal
    account_id = session.get("account_id")
    if account_id is None:
        return None
    principal = accounts.principal_for_session(account_id, session.get("stamp"), session.get("sid"))
    if principal is None:
        session.clear()  # disabled, deleted or its password changed since: signed out
    return principal


def current_principal() -> Principal | None:
    """The signed-in account or token of this request (None: anonymous)."""
    if "principal" not in g:
        g.principal = _principal_from_request()
    return g.principal


def role_label(role: str) -> str:
    """A role's name in the reader's language."""
    return translate(ROLE_LABELS.get(role, role))


def control_feeders() -> frozenset[str] | None:
    """The feeders the signed-in dispatcher is held to (None: everywhere, or nobody signed in)."""
    principal = current_principal()
    return principal.control_feeders if principal is not None else None


def require_role(principal: Principal | None, roles: Iterable[str]) -> None:
    """Unauthorized for an anonymous caller, Forbidden for an account without one of ``roles``."""
    roles = frozenset(roles)
    if PUBLIC in roles:
        return
    if principal is None:
        raise Unauthorized(_("sign in, or send an API token as 'Authorization: Bearer <token>'"), roles=sorted(roles))
    if principal.role not in roles:
        raise Forbidden(_("a %(role)s account may not do this; it is for: %(roles)s", role=principal.role,
                          roles=", ".join(sorted(roles))),
                        roles=sorted(roles))


# -- sessions and CSRF ------------------------------------------------------------------------------
def csrf_token() -> str:
    """This session's CSRF token (made on first use); pages put it in a meta tag and forms."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(24)
    return session[CSRF_FIELD]


def _check_csrf() -> None:
    """A state-changing request made with a session cookie must echo the session's CSRF token
    (header ``X-CSRF-Token`` or form field ``csrf_token``); bearer-token requests carry no
    ambient credential and need none."""
    if request.method in SAFE_METHODS or bearer_token(request.headers.get("Authorization")) is not None:
        return
    if CSRF_FIELD not in session and "account_id" not in session and request.endpoint not in _ALWAYS_CSRF:
        return  # no session: nothing a forged request could ride on
    expected = session.get(CSRF_FIELD)
    given = request.headers.get(CSRF_HEADER)
    # Only a plain form (sign-in, sign-out) carries it as a field: parsing a multipart upload here
    # would read it under the default body limit, before its route raises the limit for imports.
    if given is None and request.mimetype == "application/x-www-form-urlencoded":
        given = request.form.get(CSRF_FIELD)
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden(_("the CSRF token is missing or wrong: send the page's token as %(header)s", header=CSRF_HEADER))


def sign_in(principal: Principal, stamp: str, sid: str) -> None:
    """Start a session for ``principal`` (``sid``: its server-side session, accounts.start_session);
    a new CSRF token, so one fixed before sign-in is useless."""
    session.clear()
    session["account_id"] = principal.account_id
    session["stamp"] = stamp
    session["sid"] = sid
    session[CSRF_FIELD] = secrets.token_urlsafe(24)
    session.permanent = True
    g.principal = principal


def sign_out() -> None:
    """End the session on the server, then forget the cookie. The server side is what counts: a
    request still running when the page signed out (a long poll of /api/live) answers with the old
    cookie and the browser keeps it, but the session it names has ended."""
    from geo import accounts
    from geo.db import get_session

    accounts.end_session(get_session(), session.get("sid"))
    get_session().commit()
    session.clear()
    g.principal = None


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS (directly or,
    with ``TRUST_PROXY``, as the proxy's X-Forwarded-Proto says) or SESSION_COOKIE_SECURE is set."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or (request.is_secure if request else False)


def _guard():
    """The one check before every view: CSRF, then the endpoint's declared roles. An anonymous
    visitor of a page (not the API) that needs an account is sent to the sign-in page instead."""
    if request.endpoint is None:
        return None  # 404 or 405: werkzeug answers
    roles = access_of(current_app, request.endpoint)
    if roles is None:
        raise Forbidden(_("the route %(endpoint)s declares no access and is refused to everyone",
                          endpoint=request.endpoint))
    principal = current_principal()
    _check_csrf()
    page = PUBLIC not in roles and request.method == "GET" and not request.path.startswith("/api/")
    if page and principal is None:
        return redirect(url_for("accounts.login_page", next=request.full_path.rstrip("?")))
    if page and principal.role not in roles:
        # A page answers as a page: who is signed in, who may see it, and a way to sign in as them.
        return render_template("forbidden.html", roles=[role_label(role) for role in sorted(roles)]), 403
    require_role(principal, roles)
    return None


def init_app(app: Flask) -> None:
    """Guard every request; sessions last 12 hours and ride a SameSite=Lax, HttpOnly cookie."""
    app.session_interface = _SessionInterface()
    # Flask's defaults are SameSite unset and 31 days: a control-room session is a working day.
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_NAME="gridatlas_session", PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)
    declare("static", PUBLIC)
    app.before_request(_guard)
    app.context_processor(lambda: {"principal": current_principal(), "csrf_token": csrf_token,
                                   "role_label": role_label})
