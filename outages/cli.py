"""``flask --app app crews``: add and list repair crews; ``flask --app app outages storm``: replay a storm."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from geo.db import get_session
from geo.errors import DomainError
from outages import crews as crew_domain

crews = AppGroup("crews", help="Repair crews: add and list them.")


@crews.command("create")
@click.argument("code")
@click.option("--name", required=True, help="what dispatchers call the crew")
@click.option("--vehicle", help="the vehicle's registration")
@click.option("--depot", help="the depot's name")
@click.option("--depot-at", help="the depot as LON,LAT (where the crew is until its phone sends)")
@click.option("--skill", "skills", multiple=True, help="a skill (repeat): mv, lv, cable, overhead, meter")
@click.option("--member", "members", multiple=True, help="a member as NAME or NAME:PHONE (repeat)")
@click.option("--account", help="the crew's sign-in account (role crew; flask --app app users create)")
def create_command(code, name, vehicle, depot, depot_at, skills, members, account):
    """Add the crew CODE."""
    point = None
    if depot_at:
        try:
            lon, lat = (float(v) for v in depot_at.split(","))
        except ValueError:
            raise click.BadParameter("LON,LAT, e.g. 8.40,49.01", param_hint="--depot-at") from None
        point = (lon, lat)
    people = [{"name": m.split(":", 1)[0], "phone": m.split(":", 1)[1] if ":" in m else None} for m in members]
    session = get_session()
    try:
        with session.begin():
            crew_domain.create_crew(session.connection(), code, name, vehicle, depot, point, list(skills), people,
                                    account)
    except DomainError as error:
        raise click.ClickException(str(error.detail)) from None
    click.echo(f"crew {code} added")


@crews.command("list")
def list_command():
    """The crews with their status and assignment."""
    session = get_session()
    with session.begin():
        for crew in crew_domain.crew_views(session.connection()):
            click.echo(f"{crew.code:<10} {crew.status:<10} {crew.outage or '-':<12} {crew.account or '-':<16} {crew.name}")


outages = AppGroup("outages", help="Outages: replay a storm on the network (demos, drills).")


@outages.command("storm")
@click.option("--faults", default=8, show_default=True, help="how many faults (of every kind of device)")
@click.option("--seed", default=1, show_default=True, help="the random seed (same seed, same storm)")
@click.option("--calls", default=0.15, show_default=True, help="the share of the customers out who call")
@click.option("--gasps", default=0.7, show_default=True, help="the share of their meters that send a last gasp")
def storm_command(faults, seed, calls, gasps):
    """Strike faults on the network and send their customers' calls and last gasps through the
    intake, as callers and the meters' head-end would: the dispatcher's map fills with outages."""
    from datetime import datetime, timezone

    import numpy as np
    from flask import current_app
    from tqdm import tqdm

    from outages import storm
    from outages.settings import settings_from
    from topology.cache import topology_cache

    session, cache, settings = get_session(), topology_cache(), settings_from(current_app.config)
    rng = np.random.default_rng(seed)
    with session.begin():
        topology = cache.get(session.connection())
    wanted = dict(storm.DEFAULT_FAULTS)
    while sum(wanted.values()) > faults:
        wanted[max(wanted, key=wanted.get)] -= 1
    while sum(wanted.values()) < faults:
        wanted["transformer"] += 1
    struck, loners = storm.pick_faults(topology, rng, settings.rules, wanted)
    reports = storm.storm_reports(topology, struck, loners, rng, calls, gasps, minutes=10)
    click.echo(f"{len(struck)} faults at {', '.join(str(topology.data.edge_code[f]) for f in struck)}; "
               f"{len(loners)} lone callers; {len(reports)} reports")
    with tqdm(total=len(reports), unit="report", disable=None) as bar:
        counts = storm.replay(session, cache, reports, settings, datetime.now(timezone.utc), bar.update)
    click.echo(f"sent {counts['calls']} calls and {counts['meter_events']} meter events; see /map/dispatch")


@outages.command("settle")
def settle_command():
    """Settle trouble calls and meter events into predicted outages as they come (the web workers
    answer them and notify this process; ``flask serve`` runs it beside them). Stops on Ctrl-C or
    SIGTERM after the round under way."""
    import signal

    from flask import current_app

    from outages.settler import Service

    service = Service.of(current_app).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: service.ask_to_stop())
    click.echo("settling reports as they come (Ctrl-C stops)")
    service.wait()
    service.stop()


def init_app(app: Flask) -> None:
    """Register ``flask crews`` and ``flask outages``."""
    app.cli.add_command(crews)
    app.cli.add_command(outages)
