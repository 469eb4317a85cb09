"""Security headers on every response, and the nonce that lets our own inline scripts run.

The Content-Security-Policy allows scripts from our own origin and inline scripts that carry
this response's nonce, nothing else: an injected ``<script>`` or ``onclick=`` does not run.
folium writes its map as inline scripts; ``nonced`` gives each of them the nonce, and our
templates put it on theirs (``{{ csp_nonce() }}``). Styles may be inline (folium and Leaflet
write style attributes); images may come from the configured base map's tile server.
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g

__all__ = [
    "csp_nonce", "nonced", "tile_origin", "content_security_policy", "InsecureSecretKey", "secret_key_problem",
    "demo_secret_key", "require_secret_key", "local_path", "init_app",
]

# An inline script: a <script> tag without a src attribute.
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)([^>]*)>", re.IGNORECASE)


def csp_nonce() -> str:
    """This response's nonce (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def nonced(html: str) -> str:
    """``html`` with this response's nonce on every inline ``<script>``.

    >>> import re
    >>> _INLINE_SCRIPT.sub(r'<script nonce="N"\\1>', '<script>a()</script><script src="x.js"></script>')
    '<script nonce="N">a()</script><script src="x.js"></script>'
    """
    return _INLINE_SCRIPT.sub(lambda match: f'<script nonce="{csp_nonce()}"{match.group(1)}>', html)


def tile_origin(url_template: str | None) -> str | None:
    """The origin a base map's XYZ template loads tiles from, as a CSP source; None for none.

    >>> tile_origin("https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    'https://tile.openstreetmap.org'
    >>> tile_origin("https://{s}.tile.example.com/{z}/{x}/{y}.png")
    'https://*.tile.example.com'
    >>> tile_origin("/tiles/{z}/{x}/{y}.png") is None, tile_origin("none") is None
    (True, True)
    """
    if not url_template or url_template.lower() == "none":
        return None
    parts = urlsplit(url_template)
    if not parts.scheme or not parts.netloc:
        return None  # our own origin
    host = re.sub(r"^\{[a-z]\}", "*", parts.netloc)
    return f"{parts.scheme}://{host}"


def content_security_policy(nonce: str, tiles: str | None) -> str:
    """The policy of a response whose inline scripts carry ``nonce``."""
    images = " ".join(filter(None, ("'self'", "data:", "blob:", tiles)))
    return "; ".join((
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src {images}",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def _secured(response: Response) -> Response:
    """Every response: the policy, no MIME sniffing, no framing, referrers kept to our origin."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy",
                       content_security_policy(csp_nonce(), tile_origin(current_app.config.get("BASEMAP_URL"))))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for browsers that predate it
    headers.setdefault("Referrer-Policy", "same-origin")
    return response


# -- the secret key ---------------------------------------------------------------------------------
MIN_KEY_LENGTH = 32
# Keys that are known to everyone: examples, placeholders, the framework's old default.
KNOWN_KEYS = {"dev", "development", "secret", "changeme", "change-me", "please-change-me"}


class InsecureSecretKey(RuntimeError):
    """The server will not start: its SECRET_KEY is missing, known or too short."""


def secret_key_problem(key: str | None) -> str | None:
    """What is wrong with ``key`` as the server's secret, or None.

    >>> secret_key_problem(None), secret_key_problem("dev"), secret_key_problem("x" * 40)
    ('SECRET_KEY is not set', "SECRET_KEY is 'dev', a value anyone knows", None)
    """
    if not key:
        return "SECRET_KEY is not set"
    if key.lower() in KNOWN_KEYS:
        return f"SECRET_KEY is {key!r}, a value anyone knows"
    if len(key) < MIN_KEY_LENGTH:
        return f"SECRET_KEY has {len(key)} characters; it needs at least {MIN_KEY_LENGTH}"
    return None


def demo_secret_key(folder: Path) -> str:
    """The demo's own random key, made once and kept in ``folder/secret_key`` (readable by us
    only), so that every worker and every restart of ``make run`` signs with the same one."""
    path = folder / "secret_key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        # Written whole under a name of its own, then linked into place: workers starting at
        # once never read a half-written key, and the first link wins.
        draft = folder / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def require_secret_key(config) -> None:
    """InsecureSecretKey unless ``config`` holds a usable secret key (a production server's check)."""
    problem = secret_key_problem(config.get("SECRET_KEY"))
    if problem:
        raise InsecureSecretKey(
            f"{problem}. Set SECRET_KEY in the server's environment to a long random value, e.g. the "
            "output of: python3 -c 'import secrets; print(secrets.token_hex(32))'")


def _provide_secret_key(app: Flask) -> None:
    """A key where none is set: a random one for the tests, the kept demo key on the embedded
    cluster; a deployment (DATABASE_URL) gets none, and its server refuses to start."""
    if app.config.get("SECRET_KEY"):
        return
    if app.config.get("TESTING"):
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    elif not app.config.get("DATABASE_URL"):
        from geo.cluster import cluster_root

        app.config["SECRET_KEY"] = demo_secret_key(cluster_root().parent)


def init_app(app: Flask) -> None:
    """Add the headers to every response, offer ``csp_nonce()`` to the templates, and provide the
    demo's or the tests' secret key."""
    _provide_secret_key(app)
    app.after_request(_secured)
    app.jinja_env.globals["csp_nonce"] = csp_nonce


def local_path(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site (no scheme, no host, not ``//``, no backslash),
    else ``default``: a link that redirects cannot send anyone to another site.

    >>> local_path("/map/network?x=1", "/"), local_path("https://evil.example/", "/"), local_path("//evil", "/")
    ('/map/network?x=1', '/', '/')
    >>> local_path("/\\\\evil.example", "/")
    '/'
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default
