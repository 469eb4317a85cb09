"""``flask --app app crews``: add and list repair crews."""
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


def init_app(app: Flask) -> None:
    """Register ``flask crews``."""
    app.cli.add_command(crews)
