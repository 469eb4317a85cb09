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

__all__ = ["register", "out_per_cell", "cells_of_open_outages"]

_OPEN = text("SELECT id FROM outages WHERE state NOT IN ('restored', 'cancelled') ORDER BY id")


def _placed(connection: Connection, held: Contents) -> tuple[dict[int, np.ndarray], dict[int, str | None]]:
    """({open outage id: its customers out}, {customer: its cell}), the customers placed in one query."""
    per_outage = {outage: customers_out(connection, outage) for outage in connection.execute(_OPEN).scalars()}
    everyone = np.unique(np.concatenate(list(per_outage.values()))) if per_outage else np.zeros(0, dtype=np.int64)
    return per_outage, customer_cells(connection, everyone, held)


def cells_of_open_outages(connection: Connection, held: Contents) -> dict[int, Counter]:
    """{outage id: Counter(cell -> its customers out there)} of every open outage (customers in no
    cell left out)."""
    per_outage, cell_of = _placed(connection, held)
    return {outage: Counter(cell for cell in (cell_of.get(int(i)) for i in out) if cell is not None)
            for outage, out in per_outage.items()}


def out_per_cell(connection: Connection, held: Contents) -> tuple[dict[str, int], dict[str, int]]:
    """({cell: open outages with customers out in it}, {cell: customers out}): a customer out in
    two nested outages counts once."""
    per_outage, cell_of = _placed(connection, held)
    outages: Counter = Counter()
    for out in per_outage.values():
        outages.update({cell_of.get(int(i)) for i in out} - {None})
    customers = Counter(cell for cell in cell_of.values() if cell is not None)
    return dict(outages), dict(customers)


def _figures(connection: Connection, held: Contents) -> dict[str, dict[str, float]]:
    outages, customers = out_per_cell(connection, held)
    return {"open_outages": outages, "customers_out": customers}


def register() -> None:
    register_figures("outages", (Figure("open_outages", _("open outages")),
                                 Figure("customers_out", _("customers out"))), _figures)
