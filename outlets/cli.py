"""``flask --app app outlets import FILE`` and ``flask --app app outlets export FILE``."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from geo.errors import Invalid
from outlets.importers import ImportRefused, export_outlets, format_of, import_outlets, read_outlets

def _session() -> Session:
    """A session from the app's sessionmaker (the tests bind it to their rolled-back connection)."""
    return current_app.extensions["sessionmaker"]()


outlets_cli = AppGroup("outlets", help="Import and export service outlets.")


@outlets_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "file_format", type=click.Choice(["geojson", "csv"]), help="Default: from the extension.")
@click.option("--create-only", is_flag=True, help="Refuse codes already stored instead of replacing those outlets.")
def import_command(path: Path, file_format: str | None, create_only: bool) -> None:
    """Import outlets from a GeoJSON or CSV file (docs/outlets.md), all or nothing."""
    try:
        rows = read_outlets(path.read_bytes(), format_of(path.name, file_format))
        with _session() as session:
            report = import_outlets(session, rows, replace=not create_only)
    except ImportRefused as refused:
        lines = [f"  row {e['row']}{' (' + e['code'] + ')' if e['code'] else ''}, {e['field']}: {e['reason']}"
                 for e in refused.errors]
        raise click.ClickException(f"{path}: nothing was imported; {len(refused.errors)} problem(s):\n"
                                   + "\n".join(lines)) from None
    except Invalid as error:
        raise click.ClickException(f"{path}: {error.detail}; nothing was imported") from None
    click.echo(f"imported {report['rows']} outlets from {path}: {report['created']} new, {report['updated']} replaced")


@outlets_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export_command(path: Path) -> None:
    """Export every active outlet to PATH (.geojson or .csv), in the import layout."""
    try:
        file_format = format_of(path.name)
    except Invalid as error:
        raise click.ClickException(error.detail) from None
    with _session() as session:
        path.write_text(export_outlets(session, file_format, date.today()), encoding="utf-8")
    click.echo(f"exported the outlets to {path}")


def init_app(app: Flask) -> None:
    """Register the CLI group."""
    app.cli.add_command(outlets_cli)
