"""Every example spec is a valid job and every example script at least parses. Each
comparison under examples/ covers the runs it names, varies only what it compares, and
its run.sh submits, follows and plots every one of its specs (against a stand-in CLI:
nothing trains here; examples/measure.py is what trains them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT

from service.spec import JobSpec
from service.spec.datasets import SyntheticDataset

EXAMPLES = ROOT / "examples"
SPECS = sorted(
    p
    for p in [*EXAMPLES.glob("**/*.json"), *EXAMPLES.glob("**/*.yaml")]
    if p.parent.name not in ("sweeps", "playground")  # playground: POST /v1/playground
    and "monitoring" not in p.relative_to(EXAMPLES).parts  # Prometheus and Grafana files
)
#: Sweep and comparison specs (POST /v1/sweeps, POST /v1/comparisons).
SWEEPS = sorted(EXAMPLES.glob("sweeps/*.yaml"))
SCRIPTS = sorted(EXAMPLES.glob("**/*.sh"))
COMPARISONS = ("optimizers", "batch-size", "schedules", "regularization", "init-scaling")


def load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def comparison(name: str) -> dict[str, JobSpec]:
    """The specs of one comparison directory, by file stem."""
    return {
        p.stem: JobSpec.model_validate(load(p)) for p in sorted((EXAMPLES / name).glob("*.yaml"))
    }


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, json.dumps(value)


def varying(specs: dict[str, JobSpec]) -> set[str]:
    """Dotted paths (every default filled in) whose values are not the same in all specs."""
    flat = [dict(_leaves(s.model_dump(mode="json"))) for s in specs.values()]
    paths = set().union(*flat)
    return {p for p in paths if len({f.get(p) for f in flat}) > 1}


def test_there_are_examples():
    assert len(SPECS) >= 4 + 25 and len(SCRIPTS) >= 3 + 5


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_spec_is_accepted(api, path):
    r = api.post("/v1/jobs", json=load(path))
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_example_sweep_is_accepted(api, path):
    spec = load(path)
    assert path.read_text().startswith("#"), f"{path.name} should open with what it shows"
    route = "/v1/comparisons" if "configurations" in spec else "/v1/sweeps"
    r = api.post(route, json=spec)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_script_is_valid_bash(path):
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_example_csv_uploads(api):
    data = (ROOT / "examples" / "data" / "three-kinds.csv").read_bytes()
    r = api.post("/v1/datasets", files={"file": ("three-kinds.csv", data)}, data={"target": "kind"})
    assert r.status_code == 201, r.text
    assert r.json()["classes"] == ["large", "medium", "small"]


# --------------------------------------------------------------------------- comparisons


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_has_its_parts(name):
    directory = EXAMPLES / name
    assert (directory / "run.sh").is_file()
    assert (directory / "README.md").is_file()
    specs = comparison(name)
    assert len(specs) >= 3
    for stem, spec in specs.items():
        text = (directory / f"{stem}.yaml").read_text()
        assert text.startswith("#"), f"{stem}.yaml should open with a comment saying what it shows"
        assert spec.name, f"{stem}.yaml has no name"
    names = [s.name for s in specs.values()]
    assert len(set(names)) == len(names), f"run names repeat in {name}/: {names}"


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_runs_are_reproducible(name):
    # Same seeds everywhere: a comparison shows the setting it varies, not luck.
    for spec in comparison(name).values():
        assert spec.training.seed == 0
        assert spec.training.device == "auto"
        if isinstance(spec.dataset, SyntheticDataset):
            assert spec.dataset.seed == 0


def test_optimizers_cover_the_classics_with_all_else_equal():
    specs = comparison("optimizers")
    optimizers = [s.optimizer for s in specs.values()]
    sgd = {(o.momentum, o.nesterov) for o in optimizers if o.name == "sgd"}
    assert sgd >= {(0.0, False), (0.9, False), (0.9, True)}  # plain, momentum, Nesterov
    names = {o.name for o in optimizers}
    assert names >= {"adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax"}
    assert len(optimizers) == len({json.dumps(o.model_dump(mode="json")) for o in optimizers})
    assert all(p == "name" or p.startswith("optimizer.") for p in varying(specs))


def test_batch_sizes_span_full_one_and_mini_with_all_else_equal():
    specs = comparison("batch-size")
    sizes = {s.training.batch_size for s in specs.values()}
    assert {"full", 1} <= sizes
    assert any(isinstance(b, int) and b > 1 for b in sizes)
    assert varying(specs) == {"name", "training.batch_size"}


def test_schedules_cover_the_classics_with_all_else_equal():
    specs = comparison("schedules")
    names = {s.schedule.name for s in specs.values()}
    assert names >= {
        "constant",
        "step",
        "exponential",
        "time_based",
        "cosine",
        "one_cycle",
        "reduce_on_plateau",
    }
    assert all(p == "name" or p.startswith("schedule.") for p in varying(specs))
    optimizer = next(iter(specs.values())).optimizer
    assert optimizer.name == "sgd" and optimizer.momentum > 0


def test_regularization_has_a_baseline_and_each_regularizer():
    specs = comparison("regularization")

    def regularizers(spec: JobSpec) -> set[str]:
        r, m = spec.regularization, spec.model
        on = {
            "l1": r.l1 > 0,
            "l2": r.l2 > 0,
            "weight_decay": r.weight_decay > 0,
            "dropout": getattr(m, "dropout", 0) > 0,
            "batch_norm": getattr(m, "batch_norm", False),
            "early_stopping": r.early_stopping is not None,
        }
        return {k for k, v in on.items() if v}

    used = [regularizers(s) for s in specs.values()]
    for wanted in (set(), {"l2"}, {"dropout"}, {"batch_norm"}, {"early_stopping"}):
        assert wanted in used, f"no run with exactly {wanted or 'no regularizer'}"
    allowed = {"name", "model.dropout", "model.batch_norm"}
    assert all(p in allowed or p.startswith("regularization.") for p in varying(specs))


def test_init_scaling_crosses_xavier_and_he_with_raw_and_standard():
    specs = comparison("init-scaling")
    pairs = {(s.model.init.split("_")[0], s.dataset.scaling) for s in specs.values()}
    assert {("xavier", "standard"), ("he", "standard"), ("he", "none")} <= pairs
    assert varying(specs) <= {"name", "model.init", "dataset.scaling"}


# ------------------------------------------------------------------------- run.sh


STUB = r"""#!/usr/bin/env bash
# Stands in for the `descent` CLI: logs each call, answers like the real one.
echo "$*" >>"$STUB_LOG"
case "$1" in
  submit)
    n=$(grep -c '^submit' "$STUB_LOG")
    printf '00000000-0000-4000-8000-%012d\n' "$n" ;;
  follow)
    spec=$(grep '^submit' "$STUB_LOG" | sed -n "$((10#${2##*-}))p")
    case "$spec" in *"${STUB_DIVERGE:-never}"*) echo diverged; exit 4 ;; esac
    echo succeeded ;;
  plot|lab-plot)
    while [ $# -gt 0 ]; do [ "$1" = -o ] && : >"$2"; shift; done ;;
  landscape)
    printf '00000000-0000-4000-8000-%012d\n' 999 ;;
  show)
    echo "best        epoch 4: val_loss 0.1" ;;
esac
"""


def run_script(name: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "descent"
    stub.write_text(STUB)
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    out = tmp_path / "plots"
    full_env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "OUT": str(out),
        **env,
    }
    done = subprocess.run(
        ["bash", str(EXAMPLES / name / "run.sh")],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = [line.split() for line in log.read_text().splitlines()]
    return done, calls


@pytest.mark.parametrize("name", COMPARISONS)
def test_run_script_submits_every_spec_then_plots_them(name, tmp_path):
    done, calls = run_script(name, tmp_path)
    assert done.returncode == 0, done.stderr

    submitted = [Path(c[1]) for c in calls if c[0] == "submit"]
    assert sorted(p.name for p in submitted) == sorted(
        p.name for p in (EXAMPLES / name).glob("*.yaml")
    )
    assert all(p.parent.resolve() == (EXAMPLES / name).resolve() for p in submitted)
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1, len(submitted) + 1)]
    assert [c[1] for c in calls if c[0] == "follow"] == ids
    # Each run is followed to its end before the next one is submitted.
    kinds = [c[0] for c in calls if c[0] in ("submit", "follow")]
    assert kinds == ["submit", "follow"] * len(submitted)

    plots = [c for c in calls if c[0] == "plot"]
    assert plots and plots[0][plots[0].index("-m") + 1] == "val_loss"
    for c in plots:
        assert c[1 : 1 + len(ids)] == ids
        metric = c[c.index("-m") + 1]
        assert c[c.index("-o") + 1] == str(tmp_path / "plots" / f"{name}-{metric}.png")
        assert (tmp_path / "plots" / f"{name}-{metric}.png").exists()


def test_the_lab_script_follows_and_counts_every_job_it_starts(tmp_path):
    done, calls = run_script("lab", tmp_path)
    assert done.returncode == 0, done.stderr
    submitted = [Path(c[1]).name for c in calls if c[0] == "submit"]
    assert submitted == ["range-test.yaml", "one-cycle-auto.yaml", "constant-auto.yaml"] + [
        "constant.yaml"
    ]
    followed = [c[1] for c in calls if c[0] == "follow"]
    assert followed[-1] == "00000000-0000-4000-8000-000000000999"  # the landscape
    assert len(followed) == 5
    assert "all 5 runs ended as expected" in done.stdout


def test_run_script_carries_on_past_an_unexpected_ending_and_says_so(tmp_path):
    done, calls = run_script("optimizers", tmp_path, STUB_DIVERGE="/adam.yaml")
    assert done.returncode == 1
    assert "adam.yaml: exit 4, expected 0" in done.stderr
    assert len([c for c in calls if c[0] == "submit"]) == 9
    assert any(c[0] == "plot" for c in calls)


# ------------------------------------------------------------------------ measure.py


def test_measure_prints_a_table():
    spec = EXAMPLES / "regularization" / "early-stopping.yaml"
    args = [str(spec), "--set", "training.epochs=2", "--reach", "val_accuracy=0.5"]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "measure.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "| reg-early-stopping | succeeded | 2 |" in done.stdout
    assert "first epoch val_accuracy ≥ 0.5" in done.stdout
