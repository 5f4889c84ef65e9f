"""A Python client generated from the API's OpenAPI document with openapi-python-client, as
docs/api-clients.md tells a user to make one, and the example specs a client sends.

Generating takes a second or two; each process makes one client per document and reuses it.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from support import ROOT

#: The generator's settings a user passes too (the media types it cannot read itself).
CONFIG = ROOT / "docs" / "openapi-python-client.yaml"
EXAMPLES = ROOT / "examples"
#: The name the generated package is imported under.
PACKAGE = "descent_api"

_made: dict[str, tuple[ModuleType, str]] = {}


def generate(doc: dict[str, Any]) -> tuple[ModuleType, str]:
    """The package generated from ``doc``, and the generator's output (its warnings)."""
    text = json.dumps(doc, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    if key in _made:
        return _made[key]
    folder = Path(tempfile.mkdtemp(prefix="descent-codegen-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "openapi.json").write_text(text)
    # The user's settings, less the ruff runs that format the output (seconds, here).
    config = {**yaml.safe_load(CONFIG.read_text()), "post_hooks": []}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    name = f"{PACKAGE}_{key}"
    out = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate",
         "--path", str(folder / "openapi.json"), "--config", str(folder / "config.yaml"),
         "--meta", "none", "--output-path", str(folder / name)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    sys.path.insert(0, str(folder))
    try:
        package = importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
    _made[key] = (package, out.stdout + out.stderr)
    return _made[key]


def module(package: ModuleType, dotted: str) -> ModuleType:
    """``dotted`` (``api.jobs.create_job``, ``models``) of a generated ``package``."""
    return importlib.import_module(f"{package.__name__}.{dotted}")


def load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def readme_specs() -> list[dict[str, Any]]:
    """The job specs written out in README.md (its ```json blocks with a dataset)."""
    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    specs = [json.loads(b) for b in blocks]
    return [s for s in specs if isinstance(s, dict) and "dataset" in s]


def example_files(kind: str) -> list[Path]:
    """The example files of ``kind``: ``job`` (POST /v1/jobs), ``sweep`` (POST /v1/sweeps or
    /v1/comparisons) or ``playground`` (POST /v1/playground), as tests/test_examples.py
    finds them."""
    every = sorted(
        p
        for p in [*EXAMPLES.glob("**/*.json"), *EXAMPLES.glob("**/*.yaml")]
        if "monitoring" not in p.relative_to(EXAMPLES).parts  # Prometheus and Grafana files
    )
    if kind == "job":
        return [p for p in every if p.parent.name not in ("sweeps", "playground")]
    return [p for p in every if p.parent.name == ("sweeps" if kind == "sweep" else kind)]
