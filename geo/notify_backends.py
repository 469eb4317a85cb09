"""The sender's backends, one per channel: the log (the demo's default), SMTP for e-mail, an HTTP
webhook signed with HMAC-SHA256, and an SMS gateway over HTTP.

Every backend hands the receiver the message's key (``Outgoing.key``: its dedup key, or
``gridatlas-outbox-<id>``), the same at every attempt: the webhook and the gateway as an
``Idempotency-Key`` header (and the gateway's ``reference``), e-mail in a ``Message-ID`` derived
from it. A receiver that keeps the keys it has seen drops a repeat (docs/notifications.md).
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
import threading
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Mapping, Protocol
from urllib.parse import urlsplit

__all__ = ["Outgoing", "Delivery", "Backend", "LogBackend", "SmtpBackend", "WebhookBackend", "SmsGatewayBackend",
           "backends_from_config", "signature", "message_id", "BACKEND_CHOICES"]

logger = logging.getLogger("gridatlas.notify")
SIGNATURE_HEADER = "X-GridAtlas-Signature"
# Which backends each channel may use (NOTIFY_SMS, NOTIFY_EMAIL, NOTIFY_WEBHOOK).
BACKEND_CHOICES = {"sms": ("log", "gateway"), "email": ("log", "smtp"), "webhook": ("log", "http")}


@dataclass(frozen=True)
class Outgoing:
    """A claimed message on its way: ``key`` names it to the receiver at every attempt."""

    id: int
    channel: str
    kind: str
    recipient: str
    subject: str | None
    body: str
    reference: str | None
    key: str
    attempt: int


@dataclass(frozen=True)
class Delivery:
    """What a backend made of one attempt: ``sent``, ``retry`` (try again later) or ``failed``
    (trying again cannot help), with the receiver's answer code when it gave one."""

    outcome: str
    code: int | None = None
    error: str | None = None


class Backend(Protocol):
    name: str

    def deliver(self, message: Outgoing) -> Delivery:
        """Deliver ``message``; a raised exception counts as ``retry``."""

    def close(self) -> None:
        """Close what the backend keeps open between messages."""


class LogBackend:
    """Writes each message to the log: the demo's sender, which reaches nobody."""

    name = "log"

    def deliver(self, message: Outgoing) -> Delivery:
        logger.info("%s %s to %s [%s]: %s", message.channel, message.kind, message.recipient, message.key,
                    message.body)
        return Delivery("sent")

    def close(self) -> None:
        pass


def http_outcome(status: int) -> str:
    """What an HTTP answer means for the message: 2xx sent; 408, 425, 429 and 5xx are worth
    another try; any other 4xx is the request's fault and will not change.

    >>> [http_outcome(code) for code in (200, 204, 429, 500, 503, 400, 404)]
    ['sent', 'sent', 'retry', 'retry', 'retry', 'failed', 'failed']
    """
    if 200 <= status < 300:
        return "sent"
    if status in (408, 425, 429) or status >= 500:
        return "retry"
    return "failed"


class _OneWrite:
    """Headers and body in one write, without Nagle's delay: http.client writes them apart, and
    the second write waited for the first's acknowledgement, or cost a second trip through the
    kernel (a third of a delivery's CPU on loopback)."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body=None, encode_chunked=False):
        if not isinstance(message_body, bytes) or encode_chunked:
            return super()._send_output(message_body, encode_chunked)
        self._buffer.extend((b"", b""))
        head = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(head + message_body)


class _Connection(_OneWrite, http.client.HTTPConnection):
    pass


class _TlsConnection(_OneWrite, http.client.HTTPSConnection):
    pass


class _HttpClient:
    """Kept-alive HTTP connections, one per origin and sending thread, so that a batch costs one
    handshake per thread."""

    def __init__(self, timeout: float):
        self._timeout = timeout
        self._connections: dict[tuple[int, str, str], http.client.HTTPConnection] = {}

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """POST ``body`` to ``url``; once more on a fresh connection when a kept one had been
        closed by the server (safe: the message's key goes with it)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        origin = (threading.get_ident(), parts.scheme, parts.netloc)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        reused = origin in self._connections
        try:
            return self._post(origin, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self._drop(origin)
            if not reused:
                raise
            return self._post(origin, path, body, headers)
        except Exception:
            self._drop(origin)
            raise

    def _post(self, origin, path, body, headers) -> tuple[int, bytes]:
        connection = self._connections.get(origin)
        if connection is None:
            kind = _TlsConnection if origin[1] == "https" else _Connection
            connection = self._connections[origin] = kind(origin[2], timeout=self._timeout)
        connection.request("POST", path, body=body, headers={"Content-Length": str(len(body)), **headers})
        response = connection.getresponse()
        return response.status, response.read()

    def _drop(self, origin) -> None:
        connection = self._connections.pop(origin, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for origin in list(self._connections):
            self._drop(origin)


def signature(secret: str, body: bytes) -> str:
    """The value of the ``X-GridAtlas-Signature`` header: ``sha256=`` and the body's HMAC-SHA256
    under the shared secret, in hex.

    >>> signature("s3cret", b'{"a":1}')
    'sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d'
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _answer(status: int, text: bytes) -> Delivery:
    outcome = http_outcome(status)
    error = None if outcome == "sent" else f"HTTP {status}: {text[:200].decode('utf-8', 'replace')}"
    return Delivery(outcome, status, error)


class WebhookBackend:
    """POSTs the message as JSON to its recipient (a URL), signed with the shared secret."""

    name = "http"

    def __init__(self, secret: str, timeout: float):
        if not secret:
            raise ValueError("NOTIFY_WEBHOOK=http needs NOTIFY_WEBHOOK_SECRET, the key the receiver checks the "
                             "signature with")
        self._secret = secret
        self._http = _HttpClient(timeout)

    def deliver(self, message: Outgoing) -> Delivery:
        body = json.dumps({"id": message.key, "kind": message.kind, "subject": message.subject,
                           "body": message.body, "reference": message.reference},
                          separators=(",", ":"), ensure_ascii=False).encode()
        status, text = self._http.post(message.recipient, body, {
            "Content-Type": "application/json", "Idempotency-Key": message.key,
            SIGNATURE_HEADER: signature(self._secret, body), "User-Agent": "GridAtlas-notify"})
        return _answer(status, text)

    def close(self) -> None:
        self._http.close()


class SmsGatewayBackend:
    """POSTs ``{"number", "text", "reference"}`` to the gateway's URL (with a bearer token when set)."""

    name = "gateway"

    def __init__(self, url: str, token: str | None, timeout: float):
        if not url:
            raise ValueError("NOTIFY_SMS=gateway needs NOTIFY_SMS_URL, the gateway's HTTP endpoint")
        self._url = url
        self._headers = {"Content-Type": "application/json", "User-Agent": "GridAtlas-notify"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._http = _HttpClient(timeout)

    def deliver(self, message: Outgoing) -> Delivery:
        body = json.dumps({"number": message.recipient, "text": message.body, "reference": message.key},
                          ensure_ascii=False).encode()
        status, text = self._http.post(self._url, body, {**self._headers, "Idempotency-Key": message.key})
        return _answer(status, text)

    def close(self) -> None:
        self._http.close()


def message_id(key: str, sender: str) -> str:
    """The e-mail's ``Message-ID``, the same at every attempt: a digest of the message's key at
    the sending address's domain.

    >>> message_id("outage:OUT-1:restored:sub:7", "noreply@grid.example")
    '<58b5fd3927470ac7621b258902d07a3b498afbff.gridatlas@grid.example>'
    """
    domain = sender.rpartition("@")[2] or "gridatlas.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}.gridatlas@{domain}>"


class SmtpBackend:
    """Sends e-mail over one kept SMTP connection (STARTTLS, TLS or plain; a login when a user is set)."""

    name = "smtp"

    def __init__(self, host: str, port: int | None, sender: str, tls: str = "starttls", user: str | None = None,
                 password: str | None = None, timeout: float = 10.0):
        if not sender:
            raise ValueError("NOTIFY_EMAIL=smtp needs NOTIFY_SMTP_FROM, the address the e-mail comes from")
        if tls not in ("starttls", "ssl", "none"):
            raise ValueError(f"NOTIFY_SMTP_TLS must be starttls, ssl or none; got {tls!r}")
        self._host, self._port, self._sender, self._tls = host, port, sender, tls
        self._user, self._password, self._timeout = user, password, timeout
        self._open: dict[int, smtplib.SMTP] = {}  # one connection per sending thread

    def _connection(self) -> smtplib.SMTP:
        if threading.get_ident() not in self._open:
            context = ssl.create_default_context()
            if self._tls == "ssl":
                smtp = smtplib.SMTP_SSL(self._host, self._port or 465, timeout=self._timeout, context=context)
            else:
                smtp = smtplib.SMTP(self._host, self._port or (587 if self._tls == "starttls" else 25),
                                    timeout=self._timeout)
                if self._tls == "starttls":
                    smtp.starttls(context=context)
            if self._user:
                smtp.login(self._user, self._password or "")
            self._open[threading.get_ident()] = smtp
        return self._open[threading.get_ident()]

    def _email(self, message: Outgoing) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.recipient
        email["Subject"] = message.subject or message.kind.replace("_", " ")
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = message_id(message.key, self._sender)
        email.set_content(message.body)
        return email

    def deliver(self, message: Outgoing) -> Delivery:
        try:
            self._connection().send_message(self._email(message))
        except smtplib.SMTPResponseException as error:
            self._drop()
            outcome = "failed" if 500 <= error.smtp_code < 600 else "retry"
            return Delivery(outcome, error.smtp_code, f"SMTP {error.smtp_code}: {error.smtp_error!r}")
        except smtplib.SMTPRecipientsRefused as error:
            self._drop()
            code = next(iter(error.recipients.values()))[0]
            return Delivery("failed" if 500 <= code < 600 else "retry", code, f"SMTP {code}: recipient refused")
        except (smtplib.SMTPException, OSError):
            self._drop()
            raise
        return Delivery("sent", 250)

    def _drop(self, thread: int | None = None) -> None:
        smtp = self._open.pop(threading.get_ident() if thread is None else thread, None)
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def close(self) -> None:
        for thread in list(self._open):
            self._drop(thread)


def backends_from_config(config: Mapping[str, Any]) -> dict[str, Backend]:
    """The backend of each channel as the configuration names it (NOTIFY_SMS, NOTIFY_EMAIL,
    NOTIFY_WEBHOOK; all ``log`` by default); a missing setting is refused here, at start-up."""
    timeout = float(config.get("NOTIFY_TIMEOUT_SECONDS", 10))
    made: dict[str, Backend] = {}
    log = LogBackend()
    for channel, choices in BACKEND_CHOICES.items():
        chosen = config.get(f"NOTIFY_{channel.upper()}", "log") or "log"
        if chosen not in choices:
            raise ValueError(f"NOTIFY_{channel.upper()} must be one of {', '.join(choices)}; got {chosen!r}")
        if chosen == "log":
            made[channel] = log
        elif chosen == "smtp":
            made[channel] = SmtpBackend(config.get("NOTIFY_SMTP_HOST") or "localhost", config.get("NOTIFY_SMTP_PORT"),
                                        config.get("NOTIFY_SMTP_FROM") or "", config.get("NOTIFY_SMTP_TLS", "starttls"),
                                        config.get("NOTIFY_SMTP_USER"), config.get("NOTIFY_SMTP_PASSWORD"), timeout)
        elif chosen == "http":
            made[channel] = WebhookBackend(config.get("NOTIFY_WEBHOOK_SECRET") or "", timeout)
        else:
            made[channel] = SmsGatewayBackend(config.get("NOTIFY_SMS_URL") or "", config.get("NOTIFY_SMS_TOKEN"), timeout)
    return made
