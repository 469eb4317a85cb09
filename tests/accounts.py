"""Accounts and API tokens of every role for the tests, with fixed tokens.

Each role has an account ``test-<role>`` and a token whose id and secret are fixed, so that a
test module can name ``BEARER["dispatcher"]`` as a constant; ``add_role_accounts`` writes them
(the ``app`` and ``committed_app`` fixtures do, so they exist in every test's database).
"""
from __future__ import annotations

import hashlib

from sqlalchemy import text

from geo.auth import ROLES

__all__ = ["TOKENS", "BEARER", "HEADERS", "account_name", "add_role_accounts", "client_as"]

_FIRST_ID = 900_000
TOKENS = {role: f"ga_{_FIRST_ID + number}_{role}-test-token-{'0' * 24}" for number, role in enumerate(ROLES)}
BEARER = {role: f"Bearer {token}" for role, token in TOKENS.items()}
HEADERS = {role: {"Authorization": bearer} for role, bearer in BEARER.items()}


def account_name(role: str) -> str:
    """The test account of ``role``."""
    return f"test-{role}"


def add_role_accounts(connection) -> None:
    """One account and one fixed token per role (no passwords: the tests sign in with tokens)."""
    for number, role in enumerate(ROLES):
        account_id = connection.execute(text(
            "INSERT INTO accounts (name, role, stamp) VALUES (:name, :role, 'test') "
            "ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role RETURNING id"),
            {"name": account_name(role), "role": role}).scalar_one()
        secret = TOKENS[role].split("_", 2)[2]
        connection.execute(text(
            "INSERT INTO api_tokens (id, account_id, secret_sha256, expires_at) "
            "VALUES (:id, :account, :digest, now() + interval '1 day') ON CONFLICT (id) DO NOTHING"),
            {"id": _FIRST_ID + number, "account": account_id, "digest": hashlib.sha256(secret.encode()).hexdigest()})


def client_as(app, role: str | None):
    """A test client of ``app`` that sends ``role``'s token on every request (None: anonymous)."""
    client = app.test_client()
    if role is not None:
        client.environ_base["HTTP_AUTHORIZATION"] = BEARER[role]
    return client
