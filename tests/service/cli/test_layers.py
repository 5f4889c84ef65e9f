"""The client side's layer: the HTTP client, the user commands and ``descent`` import the
client, the spec language, the API's response schemas and states and each other — never the
database, the services, the routers or the workers. The server commands (``server``,
``admin``) run the service and are the exception, importing it inside each command."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: The server commands, and the modules that assemble them with the rest into `descent`.
SERVER_SIDE = {
    "service/cli/server.py",
    "service/cli/admin.py",
    "service/cli/main.py",
    "service/cli/__init__.py",
    "service/cli/__main__.py",
}
CLIENT_SIDE = sorted(
    str(p.relative_to(ROOT))
    for pattern in ("service/client/*.py", "service/cli/*.py", "descent/*.py")
    for p in ROOT.glob(pattern)
    if str(p.relative_to(ROOT)) not in SERVER_SIDE
)
THIRD_PARTY = {"httpx", "typer", "rich", "yaml", "pydantic", "pydantic_core"}
SCHEMAS = {"auth", "datasets", "fleet", "jobs", "playground", "predict", "projects", "sweeps"}
#: Imports a module may make inside a function only, as pyproject's import contracts allow:
#: ``descent.load_model`` rebuilds a trained network with the engine (and torch).
LAZY = {"descent/__init__.py": {"workers.engine.loaded"}}
#: What importing the client side must not load.
HEAVY = ("sqlalchemy", "fastapi", "starlette", "celery", "torch", "matplotlib", "optuna",
         "service.db", "service.config", "service.main", "workers")  # fmt: skip


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            # `from service import client` imports a module too.
            out.update(f"{node.module}.{alias.name}" for alias in node.names
                       if node.module == "service")  # fmt: skip
    return out


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in THIRD_PARTY or module == "__future__":
        return True
    parts = module.split(".")
    if parts[:2] in (["service", "client"], ["service", "spec"]):
        return True
    if parts[:2] == ["service", "cli"]:
        return f"{'/'.join(parts)}.py" not in SERVER_SIDE
    return (
        len(parts) == 3
        and parts[0] == "service"
        and parts[1] in SCHEMAS
        and parts[2] in ("schemas", "states")
    )


def test_the_layer_has_its_modules() -> None:
    assert {"service/client/api.py", "service/cli/jobs.py", "descent/__init__.py"} <= set(
        CLIENT_SIDE
    )


@pytest.mark.parametrize("module", CLIENT_SIDE)
def test_a_client_side_module_imports_only_the_client_the_spec_and_the_schemas(
    module: str,
) -> None:
    lazy = LAZY.get(module, set())
    forbidden = sorted(m for m in imported(ROOT / module) if not allowed(m) and m not in lazy)
    assert not forbidden, f"{module} imports {forbidden}"
    tree = ast.parse((ROOT / module).read_text())
    at_top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not lazy & at_top, f"{module} must import {sorted(lazy)} inside a function"


def test_the_schemas_and_the_client_side_import_nothing_of_the_server() -> None:
    modules = [p.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
               for p in CLIENT_SIDE]  # fmt: skip
    modules += [f"service.{domain}.schemas" for domain in sorted(SCHEMAS)]
    modules.append("service.cli.main")  # `descent --help`: the tree, server commands too
    code = (
        f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_the_public_surface_is_curated() -> None:
    import descent

    assert sorted(descent.__all__) == descent.__all__
    missing = [name for name in descent.__all__ if not hasattr(descent, name)]
    assert not missing
    public = {name for name in vars(descent) if not name.startswith("_")}
    assert public == set(descent.__all__)


def test_the_command_tree_loads_without_the_client_or_the_spec() -> None:
    """`descent --help` and option parsing build the tree only: httpx, the schemas and the
    spec language load when a command runs."""
    code = (
        "import sys, service.cli.main\n"
        "print(sorted(m for m in ('httpx', 'service.spec', 'service.client.api',"
        " 'service.jobs.schemas', 'service.sweeps.schemas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
