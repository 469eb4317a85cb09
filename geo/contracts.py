"""The models of the platform's API contract (``geo.openapi``): signing in, accounts, tokens, the
audit log and ``/healthz``. The views keep their own parsing and messages; these describe them."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from geo.audit import AuditRecord
from geo.openapi import HTML, JSON, PROBLEM_JSON, Answer, Problem, model_of

ROLE_PATTERN = r"^(crew|dispatcher|planner|admin)$"


class NextQuery(BaseModel):
    next: str | None = Field(None, description="where to go next (a path on this site)")


class LoginForm(BaseModel):
    name: str
    password: str
    next: str | None = None
    csrf_token: str | None = None


class LogoutForm(BaseModel):
    next: str | None = None
    csrf_token: str | None = Field(None, description="the page's CSRF token (needed with a session)")


class AuditQuery(BaseModel):
    limit: int = Field(100, ge=1, le=500)
    before: int | None = Field(None, ge=0, description="the next_before of the previous page")
    account: str | None = None
    action: str | None = Field(None, description="a route's endpoint, e.g. topology_trace.operate")


class AuditPageQuery(BaseModel):
    before: int | None = Field(None, ge=0)
    account: str | None = None
    action: str | None = None


class Credentials(BaseModel):
    name: str
    password: str


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
    role: str = Field(pattern=ROLE_PATTERN)
    password: str | None = Field(None, min_length=12, max_length=1024, description="null: an account for tokens only")
    control_feeders: list[str] | None = Field(None, description="a dispatcher's feeders; null: everywhere")
    control_cells: list[str] | None = Field(None, description="or the grid cells whose transformers' feeders it may operate")


class AccountChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool | None = None
    password: str | None = Field(None, min_length=12, max_length=1024)
    control_feeders: list[str] | None = None
    control_cells: list[str] | None = None


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_days: int = Field(90, ge=1, le=3650)
    label: str | None = Field(None, max_length=120)


class PrincipalModel(BaseModel):
    name: str
    role: str
    token_id: int | None
    control_feeders: list[str] | None


class SessionAnswer(BaseModel):
    principal: PrincipalModel | None
    csrf_token: str


AuditEntry = model_of(AuditRecord)


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_before: int | None


class AccountModel(BaseModel):
    name: str
    role: str
    disabled: bool
    control_feeders: list[str] | None
    created_at: str
    last_login_at: str | None
    control_cells: list[str] | None = None


class AccountList(BaseModel):
    accounts: list[AccountModel]


class TokenModel(BaseModel):
    id: int
    account: str
    label: str | None
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class TokenList(BaseModel):
    tokens: list[TokenModel]


class IssuedTokenModel(BaseModel):
    id: int
    account: str
    token: str = Field(description="ga_<id>_<secret>: shown this once")
    expires_at: str


class Health(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str


SEE_OTHER = Answer(None, headers={"Location": "where to go next"})
LANGUAGE_CHOSEN = Answer(None, headers={"Location": "next, or the map", "Set-Cookie": "the language chosen (zh or en)"},
                         description="Back to next; a known language code is remembered in a cookie")
SIGN_IN_REFUSED = Answer({HTML: None, PROBLEM_JSON: Problem},
                         description="The form again, saying the name or password is wrong; or an unknown bearer token")
UNHEALTHY = Answer({JSON: Health, PROBLEM_JSON: Problem}, headers={"Retry-After": "seconds to wait"},
                   description="The database is out of reach")
