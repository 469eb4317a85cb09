"""The session cookie is the one geo.auth means: named gridatlas_session, SameSite=Lax, HttpOnly,
a signed-in session lasting 12 hours; Flask's own defaults once kept every one of these from applying
(geo.auth's setdefault met Flask's values already in app.config)."""
from __future__ import annotations

from datetime import timedelta

from app import create_app


def test_the_session_cookie_has_our_name_samesite_and_lifetime():
    app = create_app({"TESTING": True, "DATABASE_URL": "postgresql://nobody@/no-such-database"})
    assert app.permanent_session_lifetime == timedelta(hours=12)
    cookie = app.test_client().get("/api/session").headers["Set-Cookie"]
    assert cookie.startswith("gridatlas_session=")
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie

