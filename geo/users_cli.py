"""``flask --app app users ...``: accounts and API tokens from the command line."""
from __future__ import annotations

import secrets
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from geo import accounts
from geo.auth import ADMIN, CREW, DISPATCHER, PLANNER, ROLES
from geo.errors import DomainError

__all__ = ["users", "demo_accounts", "init_app"]

users = AppGroup("users", help="Accounts and API tokens.")
DEMO_ACCOUNTS = (("demo-dispatcher", DISPATCHER), ("demo-planner", PLANNER), ("demo-admin", ADMIN),
                 ("demo-crew", CREW))


def _run(work):
    """Run ``work(session)`` in one transaction; a domain error becomes the command's error message."""
    try:
        with current_app.extensions["sessionmaker"]() as session, session.begin():
            return work(session)
    except DomainError as error:
        raise click.ClickException(error.detail) from None


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _codes(listed: str | None) -> list[str] | None:
    """Comma-separated codes as a list (None when the option was not given)."""
    return [code.strip() for code in listed.split(",") if code.strip()] if listed is not None else None


@users.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--no-password", is_flag=True, help="An account that signs in only with API tokens (an integration).")
@click.option("--feeders", default=None, help="Limit a dispatcher to these feeders (comma-separated codes).")
@click.option("--cells", default=None, help="... or to the feeders of the transformers in these grid cells (codes).")
def create_command(name: str, role: str, password_stdin: bool, no_password: bool, feeders: str | None,
                   cells: str | None) -> None:
    """Create an account NAME with a role."""
    password = None if no_password else _password(password_stdin)
    zone, cell_zone = _codes(feeders), _codes(cells)
    view = _run(lambda session: accounts.create_account(session, name, role, password, zone, cell_zone))
    click.echo(f"created {view.role} account {view.name}")


@users.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def password_command(name: str, password_stdin: bool) -> None:
    """Set NAME's password (its sessions end)."""
    password = _password(password_stdin)
    _run(lambda session: accounts.set_password(session, name, password))
    click.echo(f"password of {name} changed; its sessions are signed out")


@users.command("list")
def list_command() -> None:
    """List the accounts."""
    views = _run(accounts.list_accounts)
    for view in views:
        zone = ",".join(view.control_feeders) if view.control_feeders is not None else "everywhere"
        if view.control_cells is not None:
            zone = ("" if view.control_feeders is None else zone + "+") + "cells:" + ",".join(view.control_cells)
        state = "disabled" if view.disabled else "enabled"
        click.echo(f"{view.name:<24} {view.role:<11} {state:<9} zone={zone}")
    if not views:
        click.echo("no accounts yet: flask --app app users create NAME --role ROLE")


@users.command("disable")
@click.argument("name")
def disable_command(name: str) -> None:
    """Disable NAME: its sessions end and its tokens stop working."""
    _run(lambda session: accounts.set_disabled(session, name, True))
    click.echo(f"disabled {name}")


@users.command("enable")
@click.argument("name")
def enable_command(name: str) -> None:
    """Enable NAME again."""
    _run(lambda session: accounts.set_disabled(session, name, False))
    click.echo(f"enabled {name}")


@users.command("token")
@click.argument("name")
@click.option("--expires-days", type=click.IntRange(1, accounts.MAX_TOKEN_DAYS), default=accounts.DEFAULT_TOKEN_DAYS,
              show_default=True)
@click.option("--label", default=None, help="What the token is for (a crew phone, an integration).")
def token_command(name: str, expires_days: int, label: str | None) -> None:
    """Issue an API token for NAME; the token is printed alone on the last line, and only now."""
    issued = _run(lambda session: accounts.issue_token(session, name, expires_days, label))
    click.echo(f"token {issued.id} for {issued.account}, valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC "
               f"(send it as 'Authorization: Bearer <token>'; it is not shown again):", err=True)
    click.echo(issued.token)


@users.command("tokens")
@click.argument("name", required=False)
def tokens_command(name: str | None) -> None:
    """List tokens (of NAME): id, account, expiry, revoked."""
    for view in _run(lambda session: accounts.list_tokens(session, name)):
        state = f"revoked {view.revoked_at:%Y-%m-%d}" if view.revoked_at else f"expires {view.expires_at:%Y-%m-%d}"
        click.echo(f"{view.id:>6} {view.account:<24} {state} {view.label or ''}")


@users.command("revoke")
@click.argument("token_id", type=int)
def revoke_command(token_id: int) -> None:
    """Revoke the token TOKEN-ID."""
    _run(lambda session: accounts.revoke_token(session, token_id))
    click.echo(f"revoked token {token_id}")


def demo_accounts(session) -> list[tuple[str, str, str]]:
    """The demo's dispatcher, planner, admin and crew with random passwords, made once (when no account
    of those names exists): ``(name, role, password)`` of those made now."""
    existing = {view.name for view in accounts.list_accounts(session)}
    made = []
    for name, role in DEMO_ACCOUNTS:
        if name not in existing:
            password = secrets.token_urlsafe(12)
            accounts.create_account(session, name, role, password)
            made.append((name, role, password))
    return made


def _demo_extension(context) -> None:
    """Demo data: the demo accounts, their passwords printed this once."""
    from sqlalchemy.orm import Session

    made = demo_accounts(Session(bind=context.connection))
    if made:
        lines = [f"    {name:<16} {role:<11} password: {password}" for name, role, password in made]
        context.progress("demo accounts (sign in at /login; the passwords are shown only now, "
                         "'flask --app app users password NAME' sets a new one):\n" + "\n".join(lines))


def init_app(app: Flask) -> None:
    """Register ``flask users`` and the demo accounts."""
    from geo import demo

    app.cli.add_command(users)
    demo.register("demo accounts", _demo_extension)
