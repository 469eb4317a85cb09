"""The outlets' part of the per-cell figures: how many active outlets lie in each grid cell."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.cells import CELL_POLYGONS, Contents, Figure, register_figures
from geo.i18n import _

__all__ = ["register"]

_PER_CELL = text(f"""
SELECT cells.code, count(o.id) AS n FROM {CELL_POLYGONS} cells
JOIN outlets o ON o.active AND ST_Intersects(cells.geom, o.geom) GROUP BY cells.code
""")


def outlets_per_cell(connection: Connection, held: Contents) -> dict[str, dict[str, float]]:
    """Active outlets by the cell they stand in."""
    return {"outlets": {row.code: row.n for row in connection.execute(_PER_CELL)}}


def register() -> None:
    register_figures("outlets", (Figure("outlets", _("outlets")),), outlets_per_cell)
