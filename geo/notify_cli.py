"""``flask --app app notify run``: the notification sender (geo/notify.py) as a process of its own."""
from __future__ import annotations

import logging
import signal

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from geo.notify import Sender, SenderSettings
from geo.notify_backends import backends_from_config

__all__ = ["notify", "init_app"]

notify = AppGroup("notify", help="Deliver the notification outbox (SMS, e-mail, webhooks).")


@notify.command("run")
@click.option("--once", is_flag=True, help="Send what is due now, then exit (default: keep sending).")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 10000),
              help="How many messages one claim takes.")
@click.option("--concurrency", default=None, type=click.IntRange(1, 64),
              help="Deliveries under way at once (default: NOTIFY_CONCURRENCY, 4).")
@click.option("--report-every", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between progress lines.")
def run_command(once: bool, batch: int, concurrency: int | None, report_every: float) -> None:
    """Claim due messages (shared with any number of senders), deliver them through the configured
    backends, retry failures with backoff, and run the periodic jobs. Ctrl-C or SIGTERM stops it
    after the message being delivered."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        backends = backends_from_config(current_app.config)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    sender = Sender(current_app.extensions["engine"], backends, SenderSettings.of(current_app.config, batch, concurrency))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sender.ask_to_stop())
    click.echo(f"sending notifications as {sender.name} ({'until nothing is due' if once else 'Ctrl-C stops'})")
    totals = sender.run(once=once, report_seconds=report_every)
    click.echo(f"stopped: {totals.line()}")


def init_app(app: Flask) -> None:
    """Register ``flask notify``; ``flask serve`` runs a sender beside the web workers unless
    ``NOTIFY_WITH_SERVE`` is off (senders run elsewhere), so that the demo's codes, reminders and
    outage messages go out (to the log by default) without a second command."""
    from geo.server import register_companion

    app.cli.add_command(notify)
    if app.config.get("NOTIFY_WITH_SERVE", True):
        register_companion("notification sender", ("notify", "run"))
