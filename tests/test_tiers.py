"""The suite's tiers select what they promise: collecting with ``-m "not postgres"`` (what
``make test-embedded`` runs) selects no test that builds a PostgreSQL backend, judged from
the code of each test and its fixtures (tests/tier_audit.py), not from its marks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from support import ROOT
from tier_audit import OUTPUT_ENV

TESTS = ROOT / "tests"


@pytest.fixture(scope="module")
def not_postgres(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("tiers") / "audit.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env[OUTPUT_ENV] = str(out)
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    cmd += ["-p", "tier_audit", "-m", "not postgres", str(TESTS)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_not_postgres_selects_no_test_that_builds_a_postgres_backend(
    not_postgres: dict[str, list[dict[str, Any]]],
) -> None:
    selected, deselected = not_postgres["selected"], not_postgres["deselected"]
    assert len(selected) > 1000 and deselected
    on_postgres = [t["nodeid"] for t in selected if "postgres" in t["kinds"]]
    assert on_postgres == []
    # Every builder call was understood: a kind the audit cannot read proves nothing.
    unread = [(t["nodeid"], t["kinds"]) for t in selected if any("<" in k for k in t["kinds"])]
    assert unread == []
    # And the mark is not put where PostgreSQL is not: what was left out builds it.
    not_on_postgres = [t["nodeid"] for t in deselected if "postgres" not in t["kinds"]]
    assert not_on_postgres == []


def test_each_integration_test_is_marked_and_only_those(
    not_postgres: dict[str, list[dict[str, Any]]],
) -> None:
    everything = not_postgres["selected"] + not_postgres["deselected"]
    integration = {t["nodeid"] for t in everything if t["nodeid"].startswith("tests/integration/")}
    marked = {t["nodeid"] for t in everything if "integration" in t["marks"]}
    assert integration and marked == integration
