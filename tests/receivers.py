"""Real local receivers for the notification sender: a webhook endpoint (http.server in a thread)
that checks the HMAC signature and drops repeated keys, and an SMTP server (aiosmtpd).

Both count what reached them per key, so a test can say "every message arrived, none was taken
twice" the way a real receiver would know it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from aiosmtpd.controller import Controller

__all__ = ["WebhookReceiver", "SmtpReceiver"]


class WebhookReceiver:
    """A webhook endpoint on a free local port.

    ``answer(key, times_seen)`` picks the status of each request (default 200); ``delay`` slows
    every answer. A body whose ``X-GridAtlas-Signature`` is not the HMAC of ``secret`` is refused
    with 401 and counted in ``bad_signatures``. ``received`` counts every request per
    ``Idempotency-Key``; ``accepted`` counts the keys taken in (the first 2xx), so a repeat is dropped.
    Without a ``secret`` (an SMS gateway) nothing is checked; ``headers`` keeps each key's last ones.
    """

    def __init__(self, secret: str | None, answer: Callable[[str, int], int] | None = None, delay: float = 0.0,
                 port: int = 0):
        self.secret, self.answer, self.delay = secret.encode() if secret else None, answer or (lambda key, seen: 200), delay
        self.received: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.bodies: dict[str, dict] = {}
        self.headers: dict[str, dict] = {}
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive connections, as the sender uses them

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.take(self.headers, body)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    def take(self, headers, body: bytes) -> int:
        """The answer to one request, counted."""
        expected = "sha256=" + hmac.new(self.secret or b"", body, hashlib.sha256).hexdigest()
        if self.secret and not hmac.compare_digest(headers.get("X-GridAtlas-Signature", ""), expected):
            with self._lock:
                self.bad_signatures += 1
            return 401
        key = headers.get("Idempotency-Key", "")
        with self._lock:
            self.received[key] += 1
            self.headers[key] = dict(headers)
            status = self.answer(key, self.received[key])
            if 200 <= status < 300 and not self.accepted[key]:
                self.accepted[key] += 1
                self.bodies[key] = json.loads(body)
        return status

    def total(self) -> int:
        """How many requests came with a valid signature."""
        with self._lock:
            return sum(self.received.values())

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SmtpReceiver:
    """An SMTP server (aiosmtpd) on a free local port, keeping what it receives in ``messages``."""

    def __init__(self):
        self._inbox = _Inbox()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._controller = Controller(self._inbox, hostname="127.0.0.1", port=port)

    @property
    def messages(self):
        return self._inbox.messages

    @property
    def port(self) -> int:
        return self._controller.port

    def __enter__(self) -> "SmtpReceiver":
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()
