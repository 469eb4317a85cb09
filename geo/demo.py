"""Demo data extensions: each part of the product adds its own demo data after the network.

``flask --app app demo`` loads the demo city's network, then calls every registered extension
in registration order inside the same transaction, so that a package (outlets, outages, grid
cells) can add its data without ``geo`` or ``topology`` knowing about it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy.engine import Connection

__all__ = ["DemoContext", "register", "extensions"]


@dataclass(frozen=True)
class DemoContext:
    """What an extension gets: the open transaction and the demo's parameters."""

    connection: Connection
    customers: int
    seed: int
    # The city's bounding box (west, south, east, north) in degrees, and its name.
    bbox: tuple[float, float, float, float]
    city: str
    progress: Callable[[str], None]


_EXTENSIONS: list[tuple[str, Callable[[DemoContext], None]]] = []


def register(name: str, extension: Callable[[DemoContext], None]) -> None:
    """Have the demo command call ``extension`` after the network is loaded (once per name)."""
    if all(existing != name for existing, _ in _EXTENSIONS):
        _EXTENSIONS.append((name, extension))


def extensions() -> list[tuple[str, Callable[[DemoContext], None]]]:
    """The registered extensions, in order."""
    return list(_EXTENSIONS)
