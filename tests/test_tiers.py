"""The suite's tiers select what they promise: collecting with ``-m "not postgres"`` (what
``make test-embedded`` runs) selects no test that builds a PostgreSQL backend, judged from
the code of each test and its fixtures (tests/tier_audit.py), not from its marks; the
folder tiers (``integration``, ``browser``) mark exactly their folders' tests."""

from __future__ import annotations

import pytest
from support import ROOT, SERVER_FIXTURES
from tier_audit import TierAudit


@pytest.fixture(scope="module")
def not_postgres() -> TierAudit:
    """The whole suite collected with -m "not postgres", in this process: the test modules
    a run has imported already are not imported again."""
    audit = TierAudit()
    args = ["--collect-only", "-qq", "-m", "not postgres", "-p", "no:xdist"]
    code = pytest.main([*args, "-p", "no:cacheprovider", str(ROOT / "tests")], plugins=[audit])
    assert code == pytest.ExitCode.OK
    return audit


def test_not_postgres_selects_no_test_that_builds_a_postgres_backend(
    not_postgres: TierAudit,
) -> None:
    selected, deselected = not_postgres.selected, not_postgres.deselected
    assert len(selected) > 1000 and deselected
    on_postgres = [t["nodeid"] for t in selected if "postgres" in t["kinds"]]
    assert on_postgres == []
    # Every builder call was understood: a kind the audit cannot read proves nothing.
    unread = [(t["nodeid"], t["kinds"]) for t in selected if any("<" in k for k in t["kinds"])]
    assert unread == []
    # And the mark is not put where PostgreSQL is not: what was left out builds it.
    not_on_postgres = [t["nodeid"] for t in deselected if "postgres" not in t["kinds"]]
    assert not_on_postgres == []


def test_each_integration_test_is_marked_and_only_those(not_postgres: TierAudit) -> None:
    everything = not_postgres.selected + not_postgres.deselected
    integration = {t["nodeid"] for t in everything if t["nodeid"].startswith("tests/integration/")}
    marked = {t["nodeid"] for t in everything if "integration" in t["marks"]}
    assert integration and marked == integration


def test_each_browser_test_is_marked_and_only_those(not_postgres: TierAudit) -> None:
    everything = not_postgres.selected + not_postgres.deselected
    in_folder = {t["nodeid"] for t in everything if t["nodeid"].startswith("tests/browser/")}
    marked = {t["nodeid"] for t in everything if "browser" in t["marks"]}
    assert in_folder and marked == in_folder
    # A page or a live server is a real uvicorn: `-m "not server"` leaves those out too.
    serving = [t for t in everything if SERVER_FIXTURES & set(t["fixtures"])]
    assert serving and all("server" in t["marks"] for t in serving)
