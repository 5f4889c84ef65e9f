"""Every example spec is a valid job, and every example script at least parses."""

from __future__ import annotations

import json
import subprocess

import pytest
from support import ROOT

SPECS = sorted((ROOT / "examples").glob("*.json"))
SCRIPTS = sorted((ROOT / "examples" / "curl").glob("*.sh"))


def test_there_are_examples():
    assert len(SPECS) >= 4 and len(SCRIPTS) >= 3


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_spec_is_accepted(api, path):
    r = api.post("/v1/jobs", json=json.loads(path.read_text()))
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_example_script_is_valid_bash(path):
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_example_csv_uploads(api):
    data = (ROOT / "examples" / "data" / "three-kinds.csv").read_bytes()
    r = api.post("/v1/datasets", files={"file": ("three-kinds.csv", data)}, data={"target": "kind"})
    assert r.status_code == 201, r.text
    assert r.json()["classes"] == ["large", "medium", "small"]
