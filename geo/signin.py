"""Signing in and out (pages and JSON), who is signed in, and the admin's accounts, tokens and audit log.

Views only: each parses, calls one function of ``geo.accounts`` or ``geo.audit``, and answers.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from geo import accounts
from geo.audit import audit_log, audited_actions, note_audit
from geo.auth import ADMIN, PUBLIC, allow, csrf_token, current_principal, sign_in, sign_out
from geo.db import get_session
from geo.errors import Invalid, Unauthorized
from geo.i18n import _, translate
from geo.limits import login_limits
from geo.openapi import HTML, Answer, contract
from geo.requests import json_body, parse_before, whole_number
from geo.security import local_path
from geo import contracts as c

__all__ = ["bp", "api_bp"]

bp = Blueprint("accounts", __name__)
api_bp = Blueprint("accounts_api", __name__, url_prefix="/api")
PRIVATE = {"Cache-Control": "no-store"}


def _authenticate(name, password):
    """Check the credentials and start the session; the audit log hears of every attempt."""
    note_audit(account=name if isinstance(name, str) else None, event="sign-in")
    session = get_session()
    principal, stamp = accounts.authenticate(session, name, password)
    sid = accounts.start_session(session, principal.account_id)
    session.commit()
    sign_in(principal, stamp, sid)
    return principal


def _note_sign_out() -> None:
    """The audit entry of a sign-out names who signed out (the session is gone by the time it is written)."""
    principal = current_principal()
    if principal is not None:
        note_audit(event="sign-out", account=principal.name)


# -- pages ------------------------------------------------------------------------------------------
@bp.get("/login")
@allow(PUBLIC)
@contract(query=c.NextQuery, responses={200: Answer(HTML)})
def login_page():
    """The sign-in form."""
    return render_template("login.html", next=local_path(request.args.get("next"), "/"), error=None), 200, PRIVATE


@bp.post("/login")
@allow(PUBLIC)
@contract(body={"application/x-www-form-urlencoded": c.LoginForm}, responses={303: c.SEE_OTHER, 401: c.SIGN_IN_REFUSED}, errors=(429,))
@login_limits
def login():
    """Sign in from the form, then go where the visitor was going."""
    target = local_path(request.form.get("next"), "/")
    try:
        _authenticate(request.form.get("name", ""), request.form.get("password", ""))
    except Unauthorized as error:
        return render_template("login.html", next=target, error=translate(error.detail),
                               name=request.form.get("name", "")), 401, PRIVATE
    return redirect(target, 303)


@bp.post("/logout")
@allow(PUBLIC)
@contract(body={"application/x-www-form-urlencoded": c.LogoutForm}, responses={303: c.SEE_OTHER})
def logout():
    """Sign out (a POST with the CSRF token: a link on another site cannot sign anyone out)."""
    _note_sign_out()
    sign_out()
    return redirect(local_path(request.form.get("next"), url_for("accounts.login_page")), 303)


@bp.get("/admin/audit")
@allow(ADMIN)
@contract(query=c.AuditPageQuery, responses={200: Answer(HTML)}, errors=(400,))
def audit_page():
    """The audit log and the accounts, for admins."""
    before = parse_before(request.args.get("before") or None)
    page = audit_log(get_session().connection(), 100, before, request.args.get("account") or None,
                     request.args.get("action") or None)
    return render_template("admin/audit.html", page=page, accounts=accounts.list_accounts(get_session()),
                           actions=audited_actions(get_session().connection()),
                           account=request.args.get("account", ""), action=request.args.get("action", "")), 200, PRIVATE


# -- JSON -------------------------------------------------------------------------------------------
@api_bp.get("/session")
@allow(PUBLIC)
@contract(responses={200: c.SessionAnswer})
def who_am_i():
    """Who is signed in (null: nobody), and the CSRF token state-changing requests must send."""
    principal = current_principal()
    return jsonify({"principal": principal.as_dict() if principal else None, "csrf_token": csrf_token()}), 200, PRIVATE


@api_bp.post("/session")
@allow(PUBLIC)
@contract(body=c.Credentials, responses={201: c.SessionAnswer}, errors=(429,))
@login_limits
def api_login():
    """Sign in with ``{"name", "password"}``: a session cookie, and its CSRF token."""
    body = json_body()
    if not isinstance(body, dict):
        raise Invalid(_('the body must be a JSON object: {"name": ..., "password": ...}'))
    principal = _authenticate(body.get("name"), body.get("password"))
    return jsonify({"principal": principal.as_dict(), "csrf_token": csrf_token()}), 201, PRIVATE


@api_bp.delete("/session")
@allow(PUBLIC)
@contract(responses={204: None})
def api_logout():
    """Sign out."""
    _note_sign_out()
    sign_out()
    return "", 204


def _limit(value: str | None, default: int = 100) -> int:
    if value is None:
        return default
    limit = whole_number(value, 500)
    if not limit:
        raise Invalid(_("limit must be a whole number from 1 to 500"), field="limit")
    return limit


@api_bp.get("/admin/audit")
@allow(ADMIN)
@contract(query=c.AuditQuery, responses={200: c.AuditPage}, errors=(400,))
def audit_api():
    """``?limit=&before=&account=&action=``: audit entries, newest first."""
    page = audit_log(get_session().connection(), _limit(request.args.get("limit")), parse_before(request.args.get("before") or None),
                     request.args.get("account") or None, request.args.get("action") or None)
    return jsonify(page.as_dict()), 200, PRIVATE


@api_bp.get("/admin/accounts")
@allow(ADMIN)
@contract(responses={200: c.AccountList})
def account_list():
    """Every account (never a password hash)."""
    return jsonify({"accounts": [view.as_dict() for view in accounts.list_accounts(get_session())]}), 200, PRIVATE


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise Invalid(_("the body must be a JSON object"))
    return body


@api_bp.post("/admin/accounts")
@allow(ADMIN)
@contract(body=c.NewAccount, responses={201: c.AccountModel}, errors=(409,))
def account_create():
    """``{"name", "role", "password"?, "control_feeders"?, "control_cells"?}``: a new account."""
    body = _object(json_body())
    unknown = sorted(set(body) - {"name", "role", "password", "control_feeders", "control_cells"})
    if unknown:
        raise Invalid(_("unknown field(s): %(unknown)s; expected %(expected)s", unknown=", ".join(unknown),
                        expected="name, role, password, control_feeders, control_cells"))
    session = get_session()
    with session.begin():
        view = accounts.create_account(session, body.get("name"), body.get("role"), body.get("password"),
                                       body.get("control_feeders"), body.get("control_cells"))
    note_audit(target=view.name, role=view.role)
    return jsonify(view.as_dict()), 201, PRIVATE


@api_bp.patch("/admin/accounts/<name>")
@allow(ADMIN)
@contract(body=c.AccountChange, responses={200: c.AccountModel}, errors=(404,))
def account_change(name: str):
    """``{"disabled"?, "password"?, "control_feeders"?, "control_cells"?}``: change an account."""
    body = _object(json_body())
    unknown = sorted(set(body) - {"disabled", "password", "control_feeders", "control_cells"})
    if unknown:
        raise Invalid(_("unknown field(s): %(unknown)s; expected %(expected)s", unknown=", ".join(unknown),
                        expected="disabled, password, control_feeders, control_cells"))
    if not body:
        raise Invalid(_("send some of disabled, password, control_feeders, control_cells"))
    if "disabled" in body and not isinstance(body["disabled"], bool):
        raise Invalid(_("disabled must be true or false"), field="disabled")
    session = get_session()
    with session.begin():
        accounts.change_account(session, name, body)
    note_audit(target=name, changed=sorted(body))
    return jsonify(next(v.as_dict() for v in accounts.list_accounts(get_session()) if v.name == name)), 200, PRIVATE


@api_bp.get("/admin/accounts/<name>/tokens")
@allow(ADMIN)
@contract(responses={200: c.TokenList})
def token_list(name: str):
    """The account's tokens (never their secrets)."""
    return jsonify({"tokens": [t.as_dict() for t in accounts.list_tokens(get_session(), name)]}), 200, PRIVATE


@api_bp.post("/admin/accounts/<name>/tokens")
@allow(ADMIN)
@contract(body=c.TokenRequest, responses={201: c.IssuedTokenModel}, errors=(404,))
def token_issue(name: str):
    """``{"expires_days"?, "label"?}``: a new token, shown once."""
    body = _object(json_body())
    unknown = sorted(set(body) - {"expires_days", "label"})
    if unknown:
        raise Invalid(_("unknown field(s): %(unknown)s; expected %(expected)s", unknown=", ".join(unknown),
                        expected="expires_days, label"))
    session = get_session()
    with session.begin():
        issued = accounts.issue_token(session, name, body.get("expires_days", accounts.DEFAULT_TOKEN_DAYS),
                                      body.get("label"))
    note_audit(target=name, token_id=issued.id)
    return jsonify(issued.as_dict()), 201, PRIVATE


@api_bp.delete("/admin/tokens/<int(max=9223372036854775807):token_id>")  # a bigint
@allow(ADMIN)
@contract(responses={204: None}, errors=(404,))
def token_revoke(token_id: int):
    """Revoke a token."""
    session = get_session()
    with session.begin():
        accounts.revoke_token(session, token_id)
    note_audit(target_token=token_id)
    return "", 204
