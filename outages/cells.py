"""The outages' part of the per-cell figures: open outages touching each grid cell and the
customers out there now (an outage's customers still out, by the cell each belongs to:
topology.cells' rule, so that a customer is never counted in two cells)."""
from __future__ import annotations

from collections import Counter

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.cells import Contents, Figure, register_figures
from geo.i18n import _
from outages.lifecycle import customers_out
from topology.cells import customer_cells

__all__ = ["register", "out_per_cell"]

_OPEN = text("SELECT id FROM outages WHERE state NOT IN ('restored', 'cancelled') ORDER BY id")


def out_per_cell(connection: Connection, held: Contents) -> tuple[dict[str, int], dict[str, int]]:
    """({cell: open outages with customers out in it}, {cell: customers out}): the customers out
    of every open outage, placed in one query."""
    per_outage = [customers_out(connection, outage) for outage in connection.execute(_OPEN).scalars()]
    everyone = np.unique(np.concatenate(per_outage)) if per_outage else np.zeros(0, dtype=np.int64)
    cell_of = customer_cells(connection, everyone, held)
    outages: Counter = Counter()
    for out in per_outage:
        outages.update({cell_of.get(int(i)) for i in out} - {None})
    customers = Counter(cell for cell in cell_of.values() if cell is not None)
    return dict(outages), dict(customers)


def _figures(connection: Connection, held: Contents) -> dict[str, dict[str, float]]:
    outages, customers = out_per_cell(connection, held)
    return {"open_outages": outages, "customers_out": customers}


def register() -> None:
    register_figures("outages", (Figure("open_outages", _("open outages")),
                                 Figure("customers_out", _("customers out"))), _figures)
