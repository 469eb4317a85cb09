"""Mutation testing of one module against its unit tests, on a copy of the tree.

Each mutant changes one thing in the module (a comparison, an arithmetic or boolean operator,
a constant, a ``not``, a returned value, a call made for its effect) and the tests run against
it with ``-x`` (hypothesis without shrinking); a mutant is *killed* when they fail (or time out), else it *survives*. Mutants
on lines the tests never run survive without a run. A forked child runs each mutant, so numpy,
scipy, networkx and pytest are imported once.

Usage (from the repository root; nothing in it is touched, HEAD is copied to --copy)::

    .venv/bin/python bench/mutation.py topology/trace.py \\
        tests/unit/test_trace_semantics.py tests/unit/test_trace_properties.py
    .venv/bin/python bench/mutation.py outlets/hours.py \\
        tests/unit/test_outlet_hours.py tests/unit/test_outlet_records.py

It prints every survivor and the share killed, and writes every mutant's fate to
``<copy>/mutation-<module>.log``.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import signal
import subprocess
import sys
import time

SWAPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitOr,
    ast.And: ast.Or, ast.Or: ast.And,
}
PRELOAD = ["numpy", "scipy.sparse.csgraph", "networkx", "pandas", "hypothesis", "pytest", "zoneinfo"]


# -- mutants ---------------------------------------------------------------------------------------
def _sites(node: ast.AST, statement: ast.AST | None = None):
    """(parent, field, index, child, statement) for every node a mutant may change, in a fixed order.

    Docstrings, imports, ``__all__``, annotations, decorators and raise statements (messages) are left alone.
    """
    for field, value in ast.iter_fields(node):
        if field in ("annotation", "returns", "decorator_list"):
            continue
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, child in items:
            if not isinstance(child, ast.AST) or _left_alone(child):
                continue
            inner = child if isinstance(child, ast.stmt) else statement
            yield node, field, index, child, inner
            yield from _sites(child, inner)


def _left_alone(node: ast.AST) -> bool:
    """Whether no mutant should touch ``node`` or anything in it."""
    if isinstance(node, (ast.Raise, ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
        return True
    return isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)


def _put(parent: ast.AST, field: str, index: int | None, new: ast.AST) -> None:
    """Replace a child of ``parent``."""
    if index is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[index] = new


def _mutations(parent, field, index, node):
    """(description, apply) for every mutant of ``node``; apply(parent, field, index, node) edits in place."""
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in SWAPS:
                yield (f"{type(op).__name__} -> {SWAPS[type(op)].__name__}",
                       lambda p, f, i, n, k=k: n.ops.__setitem__(k, SWAPS[type(n.ops[k])]()))
    elif isinstance(node, (ast.BinOp, ast.AugAssign, ast.BoolOp)) and type(node.op) in SWAPS:
        yield (f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}",
               lambda p, f, i, n: setattr(n, "op", SWAPS[type(n.op)]()))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
        yield f"{type(node.op).__name__} removed", lambda p, f, i, n: _put(p, f, i, n.operand)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield f"{node.value} -> {not node.value}", lambda p, f, i, n: setattr(n, "value", not n.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, int):
        yield f"{node.value} -> {node.value + 1}", lambda p, f, i, n: setattr(n, "value", n.value + 1)
    elif isinstance(node, ast.Return) and node.value is not None and \
            not (isinstance(node.value, ast.Constant) and node.value.value is None):
        yield "returns None", lambda p, f, i, n: setattr(n, "value", ast.Constant(None))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield "call left out", lambda p, f, i, n: _put(p, f, i, ast.Pass())


def mutants(tree: ast.Module):
    """(number, line, statement line, description) of every mutant of ``tree``."""
    number = 0
    for parent, field, index, node, statement in _sites(tree):
        for description, _ in _mutations(parent, field, index, node):
            line = getattr(node, "lineno", getattr(statement, "lineno", 0))
            yield number, line, getattr(statement, "lineno", line), description
            number += 1


def mutated(tree: ast.Module, wanted: int) -> str:
    """The source of mutant number ``wanted``."""
    tree = copy.deepcopy(tree)
    number = 0
    for parent, field, index, node, _ in _sites(tree):
        for _, apply in _mutations(parent, field, index, node):
            if number == wanted:
                apply(parent, field, index, node)
                return ast.unparse(ast.fix_missing_locations(tree))
            number += 1
    raise IndexError(wanted)


# -- running the tests -----------------------------------------------------------------------------
def run_tests(tests: list[str], log: str, timeout: float, trace_file: str | None = None) -> tuple[str, float, set]:
    """Run the tests in a forked child: ('killed' | 'survived' | 'timeout', seconds, lines run in trace_file)."""
    read, write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(out, 2)
        lines: set[int] = set()
        if trace_file:
            def local(frame, event, arg):
                lines.add(frame.f_lineno)
                return local

            sys.settrace(lambda frame, event, arg: local if frame.f_code.co_filename == trace_file else None)
        import pytest
        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests])
        sys.settrace(None)
        os.write(write, " ".join(map(str, sorted(lines))).encode())
        os._exit(int(code))
    os.close(write)
    deadline = started + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read)
            return "timeout", time.monotonic() - started, set()
        time.sleep(0.05)
    with os.fdopen(read) as pipe:
        lines = {int(x) for x in pipe.read().split()}
    code = os.waitstatus_to_exitcode(status)
    return ("survived" if code == 0 else "killed"), time.monotonic() - started, lines


def main() -> None:
    """Copy HEAD, run the baseline with line tracing, then every mutant on a covered line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="the module to mutate, e.g. topology/trace.py")
    parser.add_argument("tests", nargs="+", help="test files, the fastest and most specific first")
    parser.add_argument("--copy", default="/tmp/mut", help="where HEAD is copied (emptied first)")
    parser.add_argument("--budget", type=float, default=1200, help="seconds; mutants left after it are not run")
    parser.add_argument("--only", type=lambda text: {int(n) for n in text.split(",")}, default=None,
                        help="run only these mutant numbers (e.g. the survivors of an earlier run: 13,51,60)")
    args = parser.parse_args()
    root = os.getcwd()
    shutil.rmtree(args.copy, ignore_errors=True)
    os.makedirs(args.copy)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=root, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", args.copy], input=archive, check=True)
    os.chdir(args.copy)
    sys.path.insert(0, args.copy)
    sys.dont_write_bytecode = True
    for name in PRELOAD:
        __import__(name)
    from hypothesis import Phase, settings
    # A failing example is enough: shrinking it would cost more than the run.
    settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile("mutation")
    target = os.path.join(args.copy, args.module)
    with open(target) as file:
        tree = ast.parse(ast.unparse(ast.parse(file.read())))  # line numbers of the file as written below
    with open(target, "w") as file:
        file.write(ast.unparse(tree))
    name = os.path.splitext(args.module.replace("/", "."))[0]
    log = os.path.join(args.copy, f"mutation-{name}.log")
    fate, seconds, lines = run_tests(args.tests, log + ".run", 600, trace_file=target)
    if fate != "survived":
        sys.exit(f"the tests fail without a mutant: see {log}.run")
    print(f"baseline: {seconds:.1f} s, {len(lines)} lines run", flush=True)
    original = ast.unparse(tree)
    counts = {"killed": 0, "timeout": 0, "survived": 0, "not run (uncovered)": 0, "not run (budget)": 0}
    started = time.monotonic()
    with open(log, "w") as out:
        for number, line, statement, description in mutants(tree):
            if args.only is not None and number not in args.only:
                continue
            if line not in lines and statement not in lines:
                fate = "not run (uncovered)"
            elif time.monotonic() - started > args.budget:
                fate = "not run (budget)"
            else:
                with open(target, "w") as file:
                    file.write(mutated(tree, number))
                fate, _, _ = run_tests(args.tests, log + ".run", max(3 * seconds, 20))
            counts[fate] += 1
            out.write(f"{fate:20} #{number} line {line}: {description}\n")
            out.flush()
            if fate in ("survived", "not run (uncovered)"):
                print(f"{fate:20} #{number} line {line}: {description}", flush=True)
    with open(target, "w") as file:
        file.write(original)
    total = sum(counts.values()) - counts["not run (budget)"]
    killed = counts["killed"] + counts["timeout"]
    print(f"{args.module}: {killed}/{total} killed ({100 * killed / max(total, 1):.0f} %); {counts}; "
          f"{time.monotonic() - started:.0f} s; fates in {log}")


if __name__ == "__main__":
    main()
