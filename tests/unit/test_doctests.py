"""Every example in a docstring runs: the modules of geo, topology and outlets that have one."""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in ("geo", "topology", "outlets", "outages") for path in (ROOT / package).glob("*.py")
    if ">>> " in path.read_text(encoding="utf-8")
)


def test_the_examples_are_found():
    assert {"geo.auth", "geo.security", "topology.trace", "outlets.hours"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
