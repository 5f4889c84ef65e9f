"""Shared fixtures and the suite's tiers. Nothing starts by magic: a test asks for the
parts it needs.

Backends come from one supplier, ``support.BACKENDS`` (each pair with its marks):
``backend`` (both pairs, fresh for each test), ``module_backend`` (both pairs, shared by a
module's tests), ``sqlite_backend`` / ``module_sqlite_backend`` (the embedded pair only)
and ``postgres_backend`` (PostgreSQL + Redis only).

Tiers are marks (declared in pyproject.toml). ``pytest_collection_modifyitems`` applies
those that follow from where a test lives or what it uses, so none is forgotten:
``integration`` for tests/integration/, ``browser`` for tests/browser/, ``server`` for a
test on the browser tier's ``live_server``, ``postgres`` for a test on the PostgreSQL pair.
Elsewhere ``server``, ``fuzz`` and ``serial`` are written on the tests; support.py fails a
test that serves the API, starts a worker or reaches PostgreSQL without the matching mark
(and tests/browser/conftest.py one that drives Chromium without ``browser``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    BACKENDS,
    SCREENSHOTS_DIR,
    SERVER_FIXTURES,
    Backend,
    bearer,
    make_user,
    screenshots_wanted,
    set_running_test_marks,
    supply_backend,
)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

#: Fixtures that put a test on the PostgreSQL pair whatever its parameters say.
POSTGRES_FIXTURES = frozenset({"postgres_backend"})
#: Parameter names under which "postgres" names the PostgreSQL pair.
BACKEND_PARAMS = frozenset({"backend", "module_backend", "kind"})


def implied_marks(item: pytest.Item) -> set[str]:
    """The tier marks that follow from ``item``'s location and the fixtures it uses."""
    marks: set[str] = set()
    if item.path.is_relative_to(TESTS / "integration"):
        marks.add("integration")
    if item.path.is_relative_to(TESTS / "browser"):
        marks.add("browser")
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & SERVER_FIXTURES:
        marks.add("server")
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    on_postgres = any(params.get(name) == "postgres" for name in BACKEND_PARAMS)
    if on_postgres or fixtures & POSTGRES_FIXTURES:
        marks.add("postgres")
    return marks


# Before `-m` deselects: the marks added here take part in the selection.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        present = {m.name for m in item.iter_markers()}
        for mark in sorted(implied_marks(item) - present):
            item.add_marker(mark)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the item's fixtures: a module-scoped backend is made by its first test.
    set_running_test_marks(m.name for m in item.iter_markers())


# -- the repository stays as it was ------------------------------------------------------

#: Folders no test may write into: the figures the docs quote, a user's embedded data.
GUARDED = ("benchmarks/results/", ".descent/")
_UNWATCHED = frozenset({".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache",
                        ".mypy_cache", "build", "dist"})  # fmt: skip
_SNAPSHOT = pytest.StashKey[dict[str, tuple[int, int]]]()


def repo_files() -> dict[str, tuple[int, int]]:
    """Each file of the working tree (caches and the venv aside): (mtime, size)."""
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _UNWATCHED and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                found[path.relative_to(ROOT).as_posix()] = (st.st_mtime_ns, st.st_size)
    return found


def is_controller(config: pytest.Config) -> bool:
    """Not an xdist worker: the process that sees the whole run."""
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if is_controller(session.config):
        session.config.stash[_SNAPSHOT] = repo_files()


def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(_SNAPSHOT, None)
    if before is None:
        return
    after = repo_files()
    # Source edits made during the run are the developer's; new files, and any change in
    # a guarded folder, are a test's (tests write under tmp_path, never into the repo).
    # The one exception is asked for: DESCENT_SCREENSHOTS=1 has the browser tests write
    # the documents' screenshots (tests/browser/conftest.py).
    asked = (SCREENSHOTS_DIR.relative_to(ROOT).as_posix() + "/",) if screenshots_wanted() else ()
    written = sorted(
        path
        for path, stat in after.items()
        if (path not in before or (path.startswith(GUARDED) and before[path] != stat))
        and not (asked and path.startswith(asked))
    )
    if written:
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.sep("=", "tests wrote into the repository (write under tmp_path)", red=True)
        for path in written:
            writer.line(path, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis (under schemathesis) keeps its caches in ./.hypothesis unless told.
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        folder = tempfile.mkdtemp(prefix="descent-hypothesis-")
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    # xdist workers share the machine's cores: torch's thread pool sized to the machine
    # in each of them would oversubscribe it (its threads spin while waiting).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


# -- backends ----------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh backend on each storage/broker pair."""
    with supply_backend(request.param, tmp_path) as b:
        yield b


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """A backend on each storage/broker pair, shared by the module's tests."""
    with supply_backend(request.param, tmp_path_factory.mktemp(request.param)) as b:
        yield b


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    with supply_backend("sqlite", tmp_path) as b:
        yield b


@pytest.fixture(scope="module")
def module_sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with supply_backend("sqlite", tmp_path_factory.mktemp("sqlite")) as b:
        yield b


@pytest.fixture
def postgres_backend(tmp_path: Path) -> Iterator[Backend]:
    with supply_backend("postgres", tmp_path) as b:
        yield b


@pytest.fixture
def api(sqlite_backend: Backend):  # noqa: ANN201
    """An in-process API client on a fresh SQLite database and SQL broker (no worker),
    sending the token of a fresh user (not an admin) with every request."""
    from fastapi.testclient import TestClient

    from service.main import create_app

    token = make_user(sqlite_backend, "tester")
    with TestClient(create_app(sqlite_backend.settings()), headers=bearer(token)) as client:
        yield client
