"""A pytest plugin for tests/test_tiers.py: for every collected test, its marks and the
storage pairs it builds, read from the code of the test and of its fixtures rather than
from the marks.

A pair is "built" where a test or one of its fixtures calls ``make_backend`` or
``supply_backend``: with a literal kind, with ``request.param`` (the fixture's parameter)
or with a name the test is parametrized by.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

BUILDERS = frozenset({"make_backend", "supply_backend"})


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


@functools.cache
def _builder_args(func: Callable[..., Any]) -> tuple[tuple[str, str], ...]:
    """What ``func`` passes to each builder as the kind: ("kind", literal), ("param", "")
    for ``request.param``, ("name", a variable) or ("unread", the expression)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return (("unread", "<source unavailable>"),)
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _callee(node) in BUILDERS and node.args):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant):
            found.append(("kind", str(arg.value)))
        elif isinstance(arg, ast.Attribute) and arg.attr == "param":
            found.append(("param", ""))
        elif isinstance(arg, ast.Name):
            found.append(("name", arg.id))
        else:
            found.append(("unread", ast.unparse(arg)))
    return tuple(found)


def _kinds_built(owner: str, func: Callable[..., Any], params: dict[str, Any]) -> set[str]:
    """The kinds ``func`` (the test, or the fixture named ``owner``) passes to a builder."""
    kinds: set[str] = set()
    for how, what in _builder_args(func):
        if how == "kind":
            kinds.add(what)
        elif how == "param":
            kinds.add(str(params.get(owner, "<unparametrized>")))
        elif how == "name" and what in params:
            kinds.add(str(params[what]))
        else:
            kinds.add(f"<{what}>")
    return kinds


def describe(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec is not None else {}
    funcs: list[tuple[str, Callable[..., Any]]] = []
    if isinstance(item, pytest.Function):
        funcs.append((item.originalname, item.function))
        # The fixtures that serve this test: the last definition of each name wins.
        for name, defs in item._fixtureinfo.name2fixturedefs.items():
            if defs:
                funcs.append((name, defs[-1].func))
    kinds: set[str] = set()
    for owner, func in funcs:
        kinds |= _kinds_built(owner, func, params)
    return {
        "nodeid": item.nodeid,
        "marks": sorted({m.name for m in item.iter_markers()}),
        "kinds": sorted(kinds),
        "fixtures": sorted(getattr(item, "fixturenames", ())),
    }


class TierAudit:
    """Pass to ``pytest.main(..., plugins=[audit])``; after the run, ``selected`` and
    ``deselected`` describe the tests (see ``describe``)."""

    def __init__(self) -> None:
        self.selected: list[dict[str, Any]] = []
        self.deselected: list[dict[str, Any]] = []

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.extend(describe(i) for i in items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = [describe(i) for i in session.items]
