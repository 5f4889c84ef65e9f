"""The layers of docs/architecture.md, enforced: the import contracts (import-linter,
configured in pyproject.toml, also run by `make lint`) hold, break when a forbidden import
is added, and cover every module; no module imports another module's private names; no
import cycles at all between modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "workers", "descent")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first, so a copy's packages win over the installed (editable) ones.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def contract(contract_id: str) -> dict[str, object]:
    return next(c for c in CONTRACTS["contracts"] if c["id"] == contract_id)


def test_the_import_contracts_are_kept() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout, run.stdout


#: A forbidden import per contract: (module, the import added to it, the contract's name).
FORBIDDEN = [
    ("service/jobs/service.py", "import workers.runner", "Layer 3"),
    ("service/spec/training.py", "import sqlalchemy", "Layer 1"),
    ("workers/engine/loop.py", "import service.jobs.models", "Layer 2"),
    ("service/cli/jobs.py", "import service.db", "Layer 5"),
    ("service/jobs/states.py", "import service.jobs.models", "schemas"),
]


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    # One copy of the tree with every import added, so one run judges them all.
    for package in PACKAGES:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for module, forbidden, _ in FORBIDDEN:
        path = tmp_path / module
        path.write_text(path.read_text() + f"\n{forbidden}  # noqa\n")
    run = lint_imports(tmp_path)
    assert run.returncode != 0, run.stdout
    report = run.stdout.split("Broken contracts")[-1]
    for module, forbidden, broken in FORBIDDEN:
        dotted = module.removesuffix(".py").replace("/", ".")
        assert broken in report and dotted in report, (module, forbidden, run.stdout)


def test_the_lower_layers_contracts_name_every_other_part_of_the_service() -> None:
    # A module added to service/ later must not slip past layers 1 and 2 unnamed.
    parts = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "service").iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__init__.py"
    }
    # The spec's own package, and the leaf helpers it may use (text: labels and names).
    allowed_below = {"spec", "text"}
    for contract_id in ("spec", "engine"):
        named = {m.split(".")[1] for m in contract(contract_id)["forbidden_modules"]
                 if m.startswith("service.")}  # fmt: skip
        assert parts - allowed_below - named == set(), (contract_id, parts - allowed_below - named)


def test_service_text_is_a_leaf() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    ours = {m for m in graph.find_modules_directly_imported_by("service.text")
            if m.split(".")[0] in PACKAGES}  # fmt: skip
    assert not ours, ours


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    private = [a.name for a in node.names if a.name.startswith("_")
                               and not a.name.startswith("__")]  # fmt: skip
                    if private:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {private}")
    assert not found, found


def test_no_import_cycles_between_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = [
        (module, other)
        for module in sorted(graph.modules)
        for other in graph.find_modules_directly_imported_by(module)
        if other != module and graph.chain_exists(importer=other, imported=module)
    ]
    assert not cycles, cycles[:10]
