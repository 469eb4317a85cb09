"""Security headers on every response, and the nonce that lets our own inline scripts run.

The Content-Security-Policy allows scripts from our own origin and inline scripts that carry
this response's nonce, nothing else: an injected ``<script>`` or ``onclick=`` does not run.
folium writes its map as inline scripts; ``nonced`` gives each of them the nonce, and our
templates put it on theirs (``{{ csp_nonce() }}``). Styles may be inline (folium and Leaflet
write style attributes); images may come from the configured base map's tile server.
"""
from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g

__all__ = ["csp_nonce", "nonced", "tile_origin", "content_security_policy", "init_app"]

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


def init_app(app: Flask) -> None:
    """Add the headers to every response and offer ``csp_nonce()`` to the templates."""
    app.after_request(_secured)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
