"""``flask --app app network ...`` (import, export) and ``flask --app app demo``."""
from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

import click
from babel import default_locale
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tqdm import tqdm

from geo import demo as demo_registry
from geo.errors import DomainError
from geo.i18n import Message, _, translate
from topology.loader import NetworkFrames, load_network

network_cli = AppGroup("network", help="Import and export the electrical network.")


def _load_with_progress(frames: NetworkFrames, then=None) -> dict[str, int]:
    """Load ``frames`` in one transaction with a progress bar; ``then(connection)`` runs in it too."""
    engine = current_app.extensions["engine"]
    total = sum(frames.counts().values())
    with tqdm(total=total, unit="row", desc="loading", disable=None) as bar:
        def progress(layer: str, rows: int) -> None:
            bar.set_postfix_str(layer)
            bar.update(rows)

        with engine.begin() as connection:
            counts = load_network(connection, frames, progress)
            if then is not None:
                then(connection)
            return counts


def _report(counts: dict[str, int], started: float) -> None:
    summary = ", ".join(f"{rows} {layer}" for layer, rows in counts.items() if rows)
    click.echo(f"imported {summary} in {time.perf_counter() - started:.1f} s")


def _say(message: str) -> None:
    """What a long job is doing, on stderr so that stdout keeps only the result."""
    click.echo(message, err=True)


def _in_terminal_language(message: Message) -> str:
    """``message`` in the language of the terminal's locale (LANGUAGE, LC_ALL, LC_MESSAGES, LANG).

    geo.i18n renders a message for a request; the CLI has none, so a request that asks for the
    terminal's language stands in for it (English without a compiled catalog, as on the web).
    """
    language = (default_locale("LC_MESSAGES") or "en").replace("_", "-")
    with current_app.test_request_context(headers={"Accept-Language": language}):
        return str(translate(message))


def _import(path: Path, read) -> NetworkFrames:
    """Read ``path`` with ``read(path, progress)`` and load it; return what was loaded.

    A refusal exits non-zero, importing nothing.
    """
    started = time.perf_counter()
    try:
        frames = read(path, _say)
        counts = _load_with_progress(frames)
    except DomainError as error:  # ImportFailed names layer and row; others say what is missing
        raise click.ClickException(f"{path}: {error.detail}; nothing was imported") from None
    except DBAPIError as error:  # a rule of the database the reader does not know about yet
        raise click.ClickException(f"{path}: the database refused it ({error.orig}); nothing was imported") from None
    _report(counts, started)
    return frames


class LonLat(click.ParamType):
    """A place as ``LON,LAT`` in degrees (WGS 84): longitude -180..180, latitude -90..90."""

    name = "LON,LAT"

    def convert(self, value, param, ctx) -> tuple[float, float]:
        """``(lon, lat)`` from ``"7.94,48.47"``; a click error saying what is wrong otherwise."""
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            longitude, latitude = (float(part) for part in parts)
        except ValueError:
            self.fail(f"{value!r} is not LON,LAT (two numbers, e.g. 7.94,48.47)", param, ctx)
        if not (math.isfinite(longitude) and -180 <= longitude <= 180):
            self.fail(f"longitude {parts[0].strip()} is not between -180 and 180", param, ctx)
        if not (math.isfinite(latitude) and -90 <= latitude <= 90):
            self.fail(f"latitude {parts[1].strip()} is not between -90 and 90", param, ctx)
        return longitude, latitude


@network_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(path: Path) -> None:
    """Import a network from a GeoPackage or GeoJSON file (docs/data-format.md)."""
    from topology.importers import read_network_file

    _import(path, read_network_file)


@network_cli.command("import-pandapower")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--origin", type=LonLat(),
              help="Lay a net whose buses lack coordinates out schematically around this place, LON,LAT.")
def import_pandapower_command(path: Path, origin: tuple[float, float] | None) -> None:
    """Import a pandapower net saved with ``pandapower.to_json`` (docs/data-format.md)."""
    from topology.importers import read_pandapower_json

    frames = _import(path, partial(read_pandapower_json, origin=origin))
    if frames.nodes["schematic"].any():
        click.echo(_in_terminal_language(_(
            "The geometry is schematic, not geographic: %(name)s has buses without coordinates, so the whole net "
            "was laid out from its graph around %(longitude)g, %(latitude)g. Distances and directions on the map "
            "mean nothing; every imported element is marked schematic.",
            name=path.name, longitude=origin[0], latitude=origin[1])))
    elif origin is not None:
        click.echo(_in_terminal_language(_(
            "%(name)s has coordinates for every bus: imported where they are; --origin was not used.",
            name=path.name)))


@network_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export_command(path: Path) -> None:
    """Export the whole network to a GeoPackage (the import layout)."""
    from topology.importers import export_network

    started = time.perf_counter()
    with current_app.extensions["engine"].connect() as connection:
        counts = export_network(connection, path, _say)
    summary = ", ".join(f"{rows} {layer}" for layer, rows in counts.items() if rows)
    click.echo(f"exported {summary} to {path} in {time.perf_counter() - started:.1f} s")


@click.command("demo")
@click.option("--customers", default=20000, show_default=True, type=click.IntRange(1000, 1_000_000),
              help="How many customers the demo city has.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the generator.")
@click.option("--if-empty", is_flag=True, help="Do nothing when a network is already loaded.")
@click.option("--meshed", is_flag=True, help="Operate it meshed: every tie closed, feeder exits doubled.")
def demo_command(customers: int, seed: int, if_empty: bool, meshed: bool) -> None:
    """Generate and load the demo city (deterministic for a given size and seed)."""
    from topology.demo import city_for, generate_city

    engine = current_app.extensions["engine"]
    if if_empty:
        with engine.connect() as connection:
            if connection.execute(text("SELECT EXISTS (SELECT 1 FROM nodes)")).scalar_one():
                click.echo("a network is already loaded; keeping it")
                return
    started = time.perf_counter()
    frames = generate_city(customers=customers, seed=seed, progress=True, meshed=meshed)

    city = city_for(customers)

    def add_extensions(connection) -> None:
        context = demo_registry.DemoContext(connection=connection, customers=customers, seed=seed,
                                            bbox=city.bbox, city=city.name, progress=click.echo)
        for name, extension in demo_registry.extensions():
            click.echo(f"demo: adding {name}")
            extension(context)

    counts = _load_with_progress(frames, then=add_extensions)
    _report(counts, started)


def init_app(app: Flask) -> None:
    """Register the CLI commands."""
    app.cli.add_command(network_cli)
    app.cli.add_command(demo_command)
