"""The layout contract (docs/architecture.md): which package may import which, whose tables each
package's SQL may name, and how long a function may grow.

``geo`` sits at the bottom and imports none of the others; ``topology`` and ``outlets`` import
``geo``; ``outages`` imports ``topology`` and ``geo``; ``app.py`` wires them together. A package
reads and changes only its own tables: another's data comes through that package's functions
(or geo's registries). The checks read the source with ``ast``, imports inside functions
included, so a lazy import cannot slip through.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app import import_models
from geo.db import Base

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("geo", "topology", "outlets", "outages")
# Which of our packages each package may import (itself included).
ALLOWED = {
    "geo": {"geo"},
    "topology": {"geo", "topology"},
    "outlets": {"geo", "outlets"},
    "outages": {"geo", "topology", "outages"},
}
MAX_FUNCTION_LINES = 60
# SQL keywords (upper case, as our SQL writes them; prose says "from") after which a table is read
# or written. Tables of other packages reached through SQLAlchemy objects need their models,
# which the import contract already forbids.
_SQL_TABLE = r"\b(?:FROM|JOIN|INTO|UPDATE|TRUNCATE|TABLE)\s+(?:ONLY\s+)?\"?{table}\b"


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``source`` that names one of ours.

    >>> imported_packages("import geo.db\\nfrom outlets import search\\ndef f():\\n    from topology.read import x")
    [(1, 'geo'), (2, 'outlets'), (4, 'topology')]
    >>> imported_packages("from . import x\\nimport numpy")
    []
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in ALLOWED]
    return sorted(found)


def forbidden_imports(package: str, source: str) -> list[str]:
    """The imports in ``source`` (a module of ``package``) that the contract forbids."""
    return [f"line {line}: {package} imports {target}" for line, target in imported_packages(source)
            if target not in ALLOWED[package]]


def test_the_contract_catches_a_forbidden_import():
    assert forbidden_imports("geo", "def f():\n    from outlets.store import load_outlet\n") == [
        "line 2: geo imports outlets"]
    assert forbidden_imports("outlets", "import topology.models") == ["line 1: outlets imports topology"]
    assert forbidden_imports("outages", "from topology import trace\nfrom geo import db") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_it_stands_on(package):
    problems = [f"{path.relative_to(ROOT)} {problem}" for path in _modules(package)
                for problem in forbidden_imports(package, path.read_text(encoding="utf-8"))]
    assert problems == []


def _owners() -> dict[str, str]:
    """Every table and the package whose models declare it."""
    import_models()
    return {table.name: _package_of(table) for table in Base.metadata.sorted_tables}


def _package_of(table) -> str:
    """The package of the model class mapped to ``table``."""
    for mapper in Base.registry.mappers:
        if table in mapper.tables:
            return mapper.class_.__module__.split(".")[0]
    raise AssertionError(f"no model declares {table.name}")


def foreign_tables(package: str, source: str, owners: dict[str, str]) -> list[str]:
    """The tables of other packages that SQL text in ``source`` reads or writes."""
    strings = [node.value for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    text = "\n".join(strings)
    return sorted({table for table, owner in owners.items() if owner != package
                   and re.search(_SQL_TABLE.format(table=re.escape(table)), text)})


def test_the_table_check_catches_sql_on_another_packages_table():
    owners = {"service_points": "topology", "outlets": "outlets"}
    assert foreign_tables("outlets", 'q = "SELECT address FROM service_points WHERE x"', owners) == ["service_points"]
    assert foreign_tables("outlets", 'q = "UPDATE outlets SET active = false"', owners) == []
    assert foreign_tables("outlets", '"""read from service_points by topology"""', owners) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_names_only_its_own_tables_in_sql(package):
    owners = _owners()
    problems = [f"{path.relative_to(ROOT)}: {table} ({owners[table]}'s)" for path in _modules(package)
                for table in foreign_tables(package, path.read_text(encoding="utf-8"), owners)]
    assert problems == []


def test_every_table_belongs_to_one_package():
    assert set(_owners().values()) <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_longer_than_sixty_lines(package):
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in _modules(package) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_domain_modules_know_nothing_of_http():
    # Domain code raises geo.errors' domain errors; only the error handler knows werkzeug.
    problems = [f"{path.relative_to(ROOT)}" for package in PACKAGES for path in _modules(package)
                if path.name not in ("errors.py", "server.py")
                and any(target == "werkzeug" for target in _top_imports(path.read_text(encoding="utf-8")))]
    assert problems == []


def _top_imports(source: str) -> set[str]:
    """The top-level names of every module ``source`` imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names
