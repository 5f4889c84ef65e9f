"""The sweep commands (`descent sweep`, `compare`, `sweep-follow`, `sweeps`, `sweep-show`,
`sweep-cancel`, `sweep-plot`) and the client's sweep methods.

First against an ``httpx.MockTransport`` that plays the API (the follow display, exit
codes, --set on sweep specs, requests sent), then against the real app served by uvicorn
on a SQLite database, with the sweep's trials and jobs written directly as the workers
would write them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from service import client as client_module
from service.cli import app
from service.cli.board import SweepBoard, auto_range_text, sweep_outcome_lines
from service.cli.specfile import apply_sweep_set
from service.client import Client
from service.sweeps.schemas import AutoBounds, SweepRead

runner = CliRunner()
SWEEP_ID = "5b0f4c1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e"


def flat(text: str) -> str:
    """Text without the boxes and line breaks of a rich usage error."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


# -- --set on sweep specs ------------------------------------------------------------------


def test_set_writes_space_entries_under_their_whole_dotted_path() -> None:
    spec: dict[str, Any] = {
        "base": {"dataset": {"name": "digits"}},
        "space": {"optimizer.lr": {"loguniform": [1e-4, 1e-1]}},
    }
    apply_sweep_set(spec, "space.optimizer.lr={loguniform: [1e-5, 1e-2]}")
    apply_sweep_set(spec, "space.optimizer.weight_decay={uniform: [0, 1e-3]}")
    apply_sweep_set(spec, "base.training.epochs=12")
    apply_sweep_set(spec, "max_trials=30")
    assert spec == {
        "base": {"dataset": {"name": "digits"}, "training": {"epochs": 12}},
        "space": {
            "optimizer.lr": {"loguniform": [1e-5, 1e-2]},
            "optimizer.weight_decay": {"uniform": [0, 1e-3]},
        },
        "max_trials": 30,
    }
    apply_sweep_set(spec, "space.optimizer.weight_decay=null")
    assert list(spec["space"]) == ["optimizer.lr"]


def test_set_writes_a_configurations_values_under_their_whole_path() -> None:
    spec: dict[str, Any] = {"configurations": [{"label": "sgd", "set": {}}, {"set": {}}]}
    apply_sweep_set(spec, "configurations.1.set.optimizer.lr=3e-3")
    apply_sweep_set(spec, "configurations.0.label=plain-sgd")
    assert spec["configurations"] == [
        {"label": "plain-sgd", "set": {}},
        {"set": {"optimizer.lr": 0.003}},
    ]
    with pytest.raises(typer.BadParameter, match="configurations is a list of 2; 5 is not"):
        apply_sweep_set(spec, "configurations.5.set.optimizer.lr=1")
    with pytest.raises(typer.BadParameter, match="the value is not YAML"):
        apply_sweep_set(spec, "space.optimizer.lr={uniform: [1")


# -- the follow board ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "state"),
    [
        ([], "queued"),
        (["queued", "queued"], "queued"),
        (["succeeded", "queued"], "running"),
        (["running"], "running"),
        (["pruned"], "pruned"),
        (["succeeded", "succeeded"], "complete"),
        (["succeeded", "cancelled"], "cancelled"),
        (["succeeded", "diverged"], "failed"),
    ],
)
def test_a_trials_state_follows_its_jobs_as_the_api_counts_it(
    statuses: list[str], state: str
) -> None:
    assert trial_state(statuses) == state


def trial_state(statuses: list[str]) -> str:
    """The API's state of a trial whose jobs have these statuses: the follow board shows
    the `trial_state` the API's trial events carry rather than deriving its own."""
    from service.sweeps.study import JobRow, TrialRow

    jobs = [JobRow(str(i), s, i, objective=0.5) for i, s in enumerate(statuses)]
    return TrialRow(0, {}, {}, jobs).state


def sweep_doc(status: str = "running", **extra: Any) -> dict[str, Any]:
    return {
        "id": SWEEP_ID,
        "name": "digits-asha",
        "kind": "sweep",
        "status": status,
        "status_reason": None,
        "task": "classification",
        "created_at": "2026-01-01T10:00:00Z",
        "finished_at": None,
        "cancel_requested": False,
        "spec": {
            "sampler": {"name": "random", "seed": 7},
            "pruner": {"name": "asha", "grace": 1, "measure": "epoch"},
            "objective": {"metric": "val_accuracy", "direction": "max", "measure": "best"},
            "repeats": 1,
        },
        "max_trials": 3,
        "parallelism": 2,
        "repeats": 1,
        "trials_created": 0,
        "counts": {
            "queued": 0,
            "running": 0,
            "complete": 0,
            "pruned": 0,
            "failed": 0,
            "cancelled": 0,
        },  # fmt: skip
        "epochs_spent": 0,
        "objective": {"metric": "val_accuracy", "direction": "max", "measure": "best"},
        "best": None,
        "links": {},
        **extra,
    }


def test_the_board_orders_running_first_then_best_and_dedupes_repeats() -> None:
    board = SweepBoard(SweepRead.model_validate(sweep_doc()))
    p = {"optimizer.name": "adam", "optimizer.lr": 0.0012345}
    running = {"trial": 0, "repeat": 0, "status": "running", "trial_state": "running", "params": p}
    assert board.on_trial(running) == (
        "trial 0: running  optimizer.name=adam  optimizer.lr=0.001234"
    )
    # The same state again (a reconnect tells it anew): nothing to print.
    assert board.on_trial(running) is None
    board.on_epoch({"trial": 0, "repeat": 0, "epoch": 1, "objective": 0.9})
    board.on_epoch({"trial": 0, "repeat": 0, "epoch": 2, "objective": 0.95})
    line = board.on_trial(
        {
            "trial": 0,
            "repeat": 0,
            "status": "succeeded",
            "trial_state": "complete",
            "epochs_completed": 2,
            "objective": 0.95,
        }  # fmt: skip
    )
    assert line == "trial 0: succeeded after 2 epochs, val_accuracy 0.95"
    board.on_trial({"trial": 1, "status": "running", "trial_state": "running",
                    "params": {"optimizer.name": "sgd"}})  # fmt: skip
    board.on_trial({"trial": 2, "status": "succeeded", "trial_state": "complete",
                    "objective": 0.97, "epochs_completed": 3})  # fmt: skip
    line = board.on_trial(
        {
            "trial": 3,
            "status": "pruned",
            "trial_state": "pruned",
            "epochs_completed": 1,
            "objective": 0.5,
            "status_reason": "pruned by median at step 1",
        }  # fmt: skip
    )
    assert line == "trial 3: pruned by median at epoch 1, val_accuracy 0.5"
    assert [(r["number"], r["state"]) for r in board.ordered()] == [
        (1, "running"),
        (2, "complete"),
        (0, "complete"),
        (3, "pruned"),
    ]
    assert board.on_sweep({"status": "running", "trials_created": 4}) is None
    assert board.on_sweep({"status": "succeeded", "status_reason": "3 trials"}) == (
        f"sweep {SWEEP_ID}: succeeded (3 trials)"
    )


def test_auto_range_text_before_and_after_the_range_test() -> None:
    auto = {"job_id": "j1", "paths": ["optimizer.lr"]}
    waiting = AutoBounds.model_validate(auto)
    assert auto_range_text(waiting) == "waiting for the range test j1 (optimizer.lr)"
    done = AutoBounds.model_validate(auto | {"bounds": {"optimizer.lr": [0.0142, 1.42]}})
    assert auto_range_text(done) == "optimizer.lr [0.0142, 1.42] from the range test j1"


def test_outcome_lines_name_counts_epochs_and_the_best_params() -> None:
    final = sweep_doc(
        "succeeded",
        trials_created=3,
        counts={"complete": 2, "pruned": 1},
        epochs_spent=17,
        best={"number": 2, "params": {"optimizer.lr": 0.01}, "value": 0.975, "job_ids": []},
    )
    assert sweep_outcome_lines(SweepRead.model_validate(final)) == [
        f"sweep {SWEEP_ID} succeeded: 3/3 trials (2 complete, 1 pruned), 17 epochs",
        "best: trial 2: val_accuracy 0.975  optimizer.lr=0.01",
    ]


# -- a fake API ------------------------------------------------------------------------------


def _sse(event: str, event_id: int, data: dict) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


def sweep_events_text(final: str) -> str:
    lr = {"optimizer.lr": 0.01}
    out = [
        "retry: 2000\n\n",
        _sse("sweep", 0, {"status": "running", "trials_created": 0}),
        _sse(
            "trial",
            0,
            {
                "trial": 0,
                "job_id": "j0",
                "repeat": 0,
                "status": "queued",
                "trial_state": "queued",
                "params": lr,
            },
        ),  # fmt: skip
        _sse(
            "trial",
            0,
            {
                "trial": 0,
                "job_id": "j0",
                "repeat": 0,
                "status": "running",
                "trial_state": "running",
                "params": lr,
            },
        ),  # fmt: skip
        _sse(
            "epoch",
            1,
            {
                "trial": 0,
                "job_id": "j0",
                "repeat": 0,
                "epoch": 1,
                "metrics": {"val_accuracy": 0.9},
                "objective": 0.9,
            },
        ),  # fmt: skip
        _sse(
            "trial",
            1,
            {
                "trial": 1,
                "job_id": "j1",
                "repeat": 0,
                "status": "running",
                "trial_state": "running",
                "params": {"optimizer.lr": 0.1},
            },
        ),  # fmt: skip
        _sse(
            "epoch",
            2,
            {
                "trial": 1,
                "job_id": "j1",
                "repeat": 0,
                "epoch": 1,
                "metrics": {"val_accuracy": 0.5},
                "objective": 0.5,
            },
        ),  # fmt: skip
        _sse(
            "trial",
            2,
            {
                "trial": 1,
                "job_id": "j1",
                "repeat": 0,
                "status": "pruned",
                "trial_state": "pruned",
                "status_reason": "pruned by asha at step 1 (epoch): val_accuracy 0.5 was not "
                "among the best",
                "epochs_completed": 1,
                "objective": 0.5,
            },
        ),  # fmt: skip
        ": keep-alive\n\n",
        _sse(
            "epoch",
            3,
            {
                "trial": 0,
                "job_id": "j0",
                "repeat": 0,
                "epoch": 2,
                "metrics": {"val_accuracy": 0.96},
                "objective": 0.96,
            },
        ),  # fmt: skip
        _sse(
            "trial",
            3,
            {
                "trial": 0,
                "job_id": "j0",
                "repeat": 0,
                "status": "succeeded",
                "trial_state": "complete",
                "epochs_completed": 2,
                "objective": 0.96,
            },
        ),  # fmt: skip
        _sse("sweep", 3, {"status": final, "status_reason": None, "trials_created": 2}),
        _sse("end", 3, {"status": final}),
    ]
    return "".join(out)


def final_sweep(status: str) -> dict[str, Any]:
    return sweep_doc(
        status,
        trials_created=2,
        max_trials=2,
        counts={"complete": 1, "pruned": 1},
        epochs_spent=3,
        best={"number": 0, "params": {"optimizer.lr": 0.01}, "value": 0.96, "job_ids": ["j0"]},
        finished_at="2026-01-01T10:01:00Z",
    )


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[httpx.Request]]:
    """Point the CLI at a fake API whose sweep ends ``final``."""

    def install(final: str = "succeeded", body: Iterator[bytes] | None = None) -> list:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            path = request.url.path
            if request.method == "POST" and path in ("/v1/sweeps", "/v1/comparisons"):
                kind = "comparison" if path == "/v1/comparisons" else "sweep"
                return httpx.Response(201, json=sweep_doc(kind=kind))
            if path.endswith("/events"):
                stream = body if body is not None else iter([sweep_events_text(final).encode()])
                return httpx.Response(
                    200, headers={"content-type": "text/event-stream"}, content=stream
                )
            if path.endswith("/trials"):
                return httpx.Response(200, json={"items": [], "total": 0, "limit": 50,
                                                 "offset": 0})  # fmt: skip
            if path.endswith(".png"):
                return httpx.Response(200, content=b"\x89PNG fake")
            return httpx.Response(200, json=final_sweep(final))

        def from_config(url=None, token=None, config_path=None, **kw):  # noqa: ANN001, ANN003, ANN202
            return client_module.Client(
                url or "http://127.0.0.1:8000", token, transport=httpx.MockTransport(handler)
            )

        monkeypatch.setattr(client_module.Client, "from_config", staticmethod(from_config))
        return seen

    return install


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "base: {dataset: {name: digits}, training: {epochs: 2}}\n"
        "space:\n  optimizer.lr: {loguniform: [1.0e-3, 1.0e-1]}\n"
        "pruner: {name: asha}\n"
    )
    return path


@pytest.mark.parametrize(("final", "code"), [("succeeded", 0), ("failed", 3), ("cancelled", 5)])
def test_sweep_follow_prints_a_line_per_trial_event_and_exits_by_outcome(
    fake_api, sweep_file: Path, final: str, code: int
) -> None:  # noqa: ANN001
    seen = fake_api(final)
    result = runner.invoke(app, ["sweep", str(sweep_file), "--set", "max_trials=2",
                                 "--set", "space.optimizer.lr={uniform: [0.01, 0.1]}",
                                 "--follow"])  # fmt: skip
    assert result.exit_code == code, result.output
    assert (seen[0].method, seen[0].url.path) == ("POST", "/v1/sweeps")
    sent = json.loads(seen[0].content)
    assert sent["max_trials"] == 2
    assert sent["space"] == {"optimizer.lr": {"uniform": [0.01, 0.1]}}
    lines = result.stdout.splitlines()
    assert lines[0] == SWEEP_ID
    assert lines[1] == f"sweep {SWEEP_ID}: running, 3 trials, 2 at once"
    assert lines[2:7] == [
        "trial 0: queued  optimizer.lr=0.01",
        "trial 0: running",
        "trial 1: running  optimizer.lr=0.1",
        "trial 1: pruned by asha at epoch 1, val_accuracy 0.5",
        "trial 0: succeeded after 2 epochs, val_accuracy 0.96",
    ]
    assert lines[7] == (f"sweep {SWEEP_ID} {final}: 2/2 trials (1 complete, 1 pruned), 3 epochs")
    assert lines[8] == "best: trial 0: val_accuracy 0.96  optimizer.lr=0.01"
    assert "\x1b[" not in result.stdout


def test_a_spec_with_configurations_goes_to_comparisons(fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    seen = fake_api()
    spec = tmp_path / "cmp.json"
    spec.write_text(json.dumps({"configurations": [{"label": "a", "set": {}},
                                                   {"label": "b", "set": {}}]}))  # fmt: skip
    for command in ("sweep", "compare"):
        result = runner.invoke(app, [command, str(spec), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["kind"] == "comparison"
    assert [r.url.path for r in seen] == ["/v1/comparisons", "/v1/comparisons"]


def test_compare_refuses_a_spec_without_configurations(fake_api, sweep_file: Path) -> None:  # noqa: ANN001
    seen = fake_api()
    result = runner.invoke(app, ["compare", str(sweep_file)])
    assert result.exit_code == 2
    assert "a comparison needs `configurations`" in flat(result.stderr)
    assert seen == []


def test_follow_with_json_prints_only_the_final_sweep_on_stdout(fake_api) -> None:  # noqa: ANN001
    fake_api("succeeded")
    result = runner.invoke(app, ["sweep-follow", SWEEP_ID, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert "trial 1: pruned by asha at epoch 1" in result.stderr


def test_follow_on_a_terminal_draws_a_live_table(fake_api, monkeypatch) -> None:  # noqa: ANN001
    fake_api("succeeded")
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = runner.invoke(app, ["sweep-follow", SWEEP_ID])
    assert result.exit_code == 0, result.output
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)
    assert re.search(r"#\s+STATE\s+optimizer\.lr\s+val_accuracy\s+EPOCHS", text), text
    assert re.search(r"0\s+complete\s+0\.01\s+0\.96\s+2", text), text
    assert re.search(r"1\s+pruned\s+0\.1\s+0\.5\s+1", text), text
    assert "best: trial 0: val_accuracy 0.96" in text


def test_ctrl_c_while_following_leaves_the_sweep_running(fake_api) -> None:  # noqa: ANN001
    def body() -> Iterator[bytes]:
        yield _sse("sweep", 0, {"status": "running"}).encode()
        raise KeyboardInterrupt

    fake_api(body=body())
    result = runner.invoke(app, ["sweep-follow", SWEEP_ID])
    assert result.exit_code == 130, result.output
    assert f"sweep {SWEEP_ID} keeps running" in result.stderr
    assert f"descent sweep-cancel {SWEEP_ID}" in result.stderr


def test_sweep_plot_checks_kind_and_extension_then_writes(fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    seen = fake_api()
    result = runner.invoke(app, ["sweep-plot", SWEEP_ID, "--kind", "pie", "-o", "x.png"])
    assert result.exit_code == 2 and "choose one of history, parallel" in flat(result.stderr)
    result = runner.invoke(app, ["sweep-plot", SWEEP_ID, "-o", "x.pdf"])
    assert result.exit_code == 2 and "must end in .png or .svg" in flat(result.stderr)
    out = tmp_path / "imp.png"
    result = runner.invoke(app, ["sweep-plot", SWEEP_ID, "--kind", "importance", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"\x89PNG fake"
    assert seen[-1].url.path == f"/v1/sweeps/{SWEEP_ID}/plots/importance.png"


# -- the client's sweep methods ----------------------------------------------------------------


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    client = Client("http://127.0.0.1:8000", transport=httpx.MockTransport(handler))
    client._sleep = lambda _: None
    return client


def test_client_sweep_requests() -> None:
    seen: list[httpx.Request] = []

    page = {"items": [], "total": 0, "limit": 50, "offset": 0}
    importance = {"metric": "val_accuracy", "direction": "max", "method": "fanova",
                  "params": [], "trials_used": 0}  # fmt: skip
    comparison = {"metric": "val_accuracy", "direction": "max", "seeds": [],
                  "configurations": [], "tests": []}  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        # Each answer as the API gives it: the client parses it into the API's model.
        seen.append(request)
        path = request.url.path
        if path.endswith(".svg"):
            return httpx.Response(200, content=b"<svg/>")
        if path.endswith(("/trials", "/v1/sweeps")) and request.method == "GET":
            return httpx.Response(200, json=page)
        if path.endswith("/importance"):
            return httpx.Response(200, json=importance)
        if path.endswith("/comparison"):
            return httpx.Response(200, json=comparison)
        return httpx.Response(200, json=sweep_doc())

    c = mock_client(handler)
    c.create_sweep({"space": {}})
    c.create_sweep({"configurations": []})
    c.sweeps(status=["running", "succeeded"], kind="comparison", limit=5)
    c.sweep("s/1")
    c.trials("s1", state=["complete", "pruned"], sort="-value", limit=3)
    c.cancel_sweep("s1")
    c.importance("s1")
    c.comparison("s1")
    assert c.sweep_plot("s1", kind="parallel", fmt="svg") == b"<svg/>"
    with pytest.raises(ValueError, match="sweep plot kind"):
        c.sweep_plot("s1", kind="pie")
    got = [(r.method, r.url.raw_path.decode().split("?")[0], dict(r.url.params)) for r in seen]
    assert got == [
        ("POST", "/v1/sweeps", {}),
        ("POST", "/v1/comparisons", {}),
        (
            "GET",
            "/v1/sweeps",
            {"status": "running,succeeded", "kind": "comparison", "limit": "5", "offset": "0"},
        ),  # fmt: skip
        ("GET", "/v1/sweeps/s%2F1", {}),
        (
            "GET",
            "/v1/sweeps/s1/trials",
            {"state": "complete,pruned", "sort": "-value", "limit": "3", "offset": "0"},
        ),  # fmt: skip
        ("POST", "/v1/sweeps/s1/cancel", {}),
        ("GET", "/v1/sweeps/s1/importance", {}),
        ("GET", "/v1/sweeps/s1/comparison", {}),
        ("GET", "/v1/sweeps/s1/plots/parallel.svg", {}),
    ]


def test_sweep_events_resume_after_the_last_event_number() -> None:
    last_ids: list[str | None] = []
    scripts = [
        _sse("sweep", 0, {"status": "running"}) + _sse("epoch", 4, {"trial": 0, "epoch": 1}),
        _sse("epoch", 5, {"trial": 0, "epoch": 2}) + _sse("end", 5, {"status": "succeeded"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        last_ids.append(request.headers.get("last-event-id"))
        assert request.url.path == "/v1/sweeps/s1/events"
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=scripts.pop(0).encode()
        )

    events = list(mock_client(handler).sweep_events("s1"))
    assert [(e.event, e.id) for e in events] == [("sweep", 0), ("epoch", 4), ("epoch", 5),
                                                 ("end", 5)]  # fmt: skip
    assert last_ids == [None, "4"]


# -- against the real API --------------------------------------------------------------------

BASE = {"dataset": {"name": "iris"}, "training": {"epochs": 3}}
SWEEP_YAML = """\
name: iris-lr
base: {dataset: {name: iris}, training: {epochs: 3}}
space:
  optimizer.lr: {loguniform: [1.0e-3, 1.0e-1]}
sampler: {name: random, seed: 3}
objective: {metric: val_accuracy}
max_trials: 4
"""
COMPARISON_YAML = """\
name: sgd-vs-adam
base: {dataset: {name: iris}, training: {epochs: 3}}
configurations:
  - {label: sgd, set: {optimizer.name: sgd}}
  - {label: adam, set: {optimizer.name: adam}}
objective: {metric: val_accuracy}
repeats: 3
seeds: [1, 2, 3]
"""


class Live:
    """The app served by uvicorn on a SQLite database (no worker); the CLI in-process
    with DESCENT_URL and DESCENT_TOKEN, or as a subprocess."""

    def __init__(self, url: str, token: str, backend: Any, sessions: Any, tmp: Path) -> None:
        self.url, self.token, self.backend, self.sessions, self.tmp = (
            url,
            token,
            backend,
            sessions,
            tmp,
        )

    def env(self) -> dict[str, str]:
        return {
            "DESCENT_URL": self.url,
            "DESCENT_TOKEN": self.token,
            "DESCENT_CONFIG": "",
            "XDG_CONFIG_HOME": str(self.tmp / "xdg"),
        }

    def cli(self, *args: str) -> Any:
        return runner.invoke(app, list(args), env=self.env())

    def client(self) -> Client:
        return Client(self.url, self.token)

    def trial(self, sweep_id: str, number: int, params: dict, jobs: list, **kw: Any) -> list:
        from sweep_rows import add_trial

        with self.sessions() as s:
            return add_trial(s, sweep_id, number, params, jobs, **kw)

    def set_sweep(self, sweep_id: str, **values: Any) -> None:
        from service.sweeps.models import Sweep

        with self.sessions() as s, s.begin():
            sweep = s.get(Sweep, sweep_id)
            for k, v in values.items():
                setattr(sweep, k, v)

    def set_job(self, job_id: str, **values: Any) -> None:
        from service.jobs.models import Job

        with self.sessions() as s, s.begin():
            job = s.get(Job, job_id)
            for k, v in values.items():
                setattr(job, k, v)

    def epoch(self, sweep_id: str, job_id: str, epoch: int, values: dict[str, float]) -> None:
        """An epoch as a worker records it: the sweep's next event number, then the row."""
        from service.jobs.models import EpochMetric, Job
        from service.sweeps.models import Sweep

        with self.sessions() as s, s.begin():
            sweep = s.get(Sweep, sweep_id)
            sweep.event_seq += 1
            s.add(EpochMetric(job_id=job_id, epoch=epoch, values=values,
                              sweep_seq=sweep.event_seq))  # fmt: skip
            s.get(Job, job_id).epochs_completed = epoch


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from support import make_backend, make_user, serve

    from service.db import make_engine, make_sessionmaker
    from service.main import create_app

    tmp = tmp_path_factory.mktemp("cli-sweeps")
    backend = make_backend("sqlite", tmp)
    # Streams end after 3 s (followers reconnect); the hub polls often (no Redis here).
    backend.env.update(DESCENT_EVENTS_MAX_SECONDS="3", DESCENT_EVENTS_POLL_SECONDS="0.1")
    token = make_user(backend, "sweeper")
    engine = make_engine(str(backend.settings().database_url))
    try:
        with serve(create_app(backend.settings())) as url:
            yield Live(url, token, backend, make_sessionmaker(engine), tmp)
    finally:
        engine.dispose()
        backend.close()


@pytest.mark.server
def test_sweep_and_compare_create_through_the_api(live: Live, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP_YAML)
    result = live.cli("sweep", str(spec), "--set", "max_trials=6", "--set",
                      "space.optimizer.weight_decay={uniform: [0, 0.001]}", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert (created["kind"], created["status"], created["max_trials"]) == ("sweep", "running", 6)
    assert set(created["spec"]["space"]) == {"optimizer.lr", "optimizer.weight_decay"}

    cmp_spec = tmp_path / "cmp.yaml"
    cmp_spec.write_text(COMPARISON_YAML)
    result = live.cli("compare", str(cmp_spec))
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"[0-9a-f-]{36}\n", result.stdout)
    with live.client() as c:
        assert c.sweep(result.stdout.strip()).kind == "comparison"


@pytest.mark.server
def test_a_bad_sweep_spec_is_refused_naming_the_path(live: Live, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP_YAML)
    result = live.cli("sweep", str(spec), "--set", "space.optimizer.nope={uniform: [0, 1]}")
    assert result.exit_code == 1, result.output
    assert "space.optimizer.nope" in result.stderr
    result = live.cli("sweep", str(spec), "--set",
                      "space.optimizer.lr={uniform: [0.1, 0.01]}")  # fmt: skip
    assert result.exit_code == 1
    assert "space.optimizer.lr" in result.stderr and "empty or inverted" in result.stderr


@pytest.fixture(scope="module")
def finished(live: Live) -> SweepRead:
    """A sweep of four trials (two complete, one pruned, one failed) that has ended."""
    from sweep_rows import J

    with live.client() as c:
        sweep = c.create_sweep(
            {
                "name": "finished",
                "base": BASE,
                "space": {
                    "optimizer.lr": {"uniform": [0.01, 0.1]},
                    "optimizer.name": {"choice": ["sgd", "adam"]},
                },  # fmt: skip
                "objective": {"metric": "val_accuracy"},
                "max_trials": 4,
            }
        )
    sid = sweep.id
    live.trial(sid, 0, {"optimizer.lr": 0.02, "optimizer.name": "sgd"}, [J("succeeded", 0.9)])
    live.trial(sid, 1, {"optimizer.lr": 0.05, "optimizer.name": "adam"}, [J("succeeded", 0.97)])
    live.trial(sid, 2, {"optimizer.lr": 0.09, "optimizer.name": "sgd"}, [J("pruned", 0.4, 1)])
    live.trial(sid, 3, {"optimizer.lr": 0.03, "optimizer.name": "adam"}, [J("failed", None, 2)])
    from service.db import utcnow

    live.set_sweep(sid, status="succeeded", status_reason="4 trials", finished_at=utcnow())
    return sweep


@pytest.mark.server
def test_sweeps_lists_and_filters(live: Live, finished: SweepRead) -> None:
    result = live.cli("sweeps", "--status", "succeeded")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if finished.id in line)
    assert re.search(r"finished\s+sweep\s+succeeded\s+4/4\s+9\s+val_accuracy 0\.97", row), row
    result = live.cli("sweeps", "--kind", "comparison", "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert page["items"] and {s["kind"] for s in page["items"]} == {"comparison"}
    result = live.cli("sweeps", "--status", "nope")
    assert result.exit_code == 1 and "status" in result.stderr


@pytest.mark.server
def test_sweep_show_has_the_summary_best_params_and_leaderboard(
    live: Live, finished: SweepRead
) -> None:
    result = live.cli("sweep-show", finished.id, "--trials", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^status\s+succeeded$", out, re.M), out
    assert re.search(r"^trials\s+4/4 \(2 complete, 1 pruned, 1 failed\)$", out, re.M), out
    assert re.search(r"^epochs spent\s+9$", out, re.M), out
    assert re.search(r"^objective\s+val_accuracy \(max, best epoch\)$", out, re.M), out
    assert re.search(r"^best\s+trial 1: 0\.97$", out, re.M), out
    assert re.search(r"^\s+optimizer\.lr = 0\.05$", out, re.M), out
    assert re.search(r"^\s+optimizer\.name = adam$", out, re.M), out
    assert "trials (best first, 3 of 4):" in out
    board = out.split("trials (best first")[1].splitlines()[1:]
    assert re.match(r"#\s+STATE\s+optimizer\.lr\s+optimizer\.name\s+val_accuracy\s+EPOCHS",
                    board[0].strip()), board  # fmt: skip
    assert [line.split()[:2] for line in board[1:4]] == [["1", "complete"], ["0", "complete"],
                                                         ["2", "pruned"]]  # fmt: skip
    assert "comparison of" not in out  # one seed per configuration

    result = live.cli("sweep-show", finished.id, "--json")
    doc = json.loads(result.stdout)
    assert doc["sweep"]["best"]["number"] == 1 and doc["comparison"] is None
    assert [t["number"] for t in doc["trials"]["items"]] == [1, 0, 2, 3]


@pytest.mark.server
def test_sweep_show_of_a_comparison_has_the_statistics(live: Live, tmp_path: Path) -> None:
    from sweep_rows import J

    spec = tmp_path / "cmp.yaml"
    spec.write_text(COMPARISON_YAML)
    with live.client() as c:
        import yaml

        cmp = c.create_sweep(yaml.safe_load(COMPARISON_YAML))
    sid = cmp.id
    values = {0: [0.80, 0.83, 0.78], 1: [0.95, 0.97, 0.96]}
    for number, conf in enumerate(cmp.spec["configurations"]):
        jobs = [J("succeeded", v) for v in values[number]]
        live.trial(sid, number, conf["set"], jobs, record={"label": conf["label"]})
    result = live.cli("sweep-show", sid)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^kind\s+comparison$", out, re.M)
    assert re.search(r"^best\s+trial 1 \(adam\): 0\.96$", out, re.M), out
    assert "comparison of val_accuracy (max) over seeds 1, 2, 3" in out
    stats = out.split("comparison of")[1].splitlines()
    header = stats[1]
    for column in ("CONFIGURATION", "N", "MEAN ± STD", "95% CI", "p (t)", "p (wilcoxon)"):
        assert column in header, header
    adam = next(line for line in stats if "adam (best)" in line)
    assert re.search(r"3\s+0\.96 ± 0\.01\s+\[0\.9352, 0\.9848\]", adam), adam
    sgd = next(line for line in stats if " sgd " in f" {line} ")
    assert re.search(r"3\s+0\.8033 ± 0\.02517\s+\[", sgd), sgd
    from scipy import stats as sps

    p = sps.ttest_rel(values[1], values[0]).pvalue
    assert f"{p:.4f}" in sgd, sgd


def test_sweep_follow_of_an_ended_sweep_tells_every_trial_and_exits_0(
    live: Live, finished: SweepRead
) -> None:
    result = live.cli("sweep-follow", finished.id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"sweep {finished.id}: succeeded, 4 trials, 2 at once"
    assert lines[1:5] == [
        "trial 0: succeeded after 3 epochs, val_accuracy 0.9  optimizer.lr=0.02  "
        "optimizer.name=sgd",
        "trial 1: succeeded after 3 epochs, val_accuracy 0.97  optimizer.lr=0.05  "
        "optimizer.name=adam",
        "trial 2: pruned at epoch 1, val_accuracy 0.4  optimizer.lr=0.09  optimizer.name=sgd",
        "trial 3: failed after 2 epochs  optimizer.lr=0.03  optimizer.name=adam",
    ]
    assert lines[5] == (
        f"sweep {finished.id} succeeded: 4/4 trials (2 complete, 1 pruned, 1 failed), 9 epochs"
    )
    assert lines[6] == "reason: 4 trials"
    assert lines[7] == "best: trial 1: val_accuracy 0.97  optimizer.lr=0.05  optimizer.name=adam"


def test_sweep_cancel_then_follow_exits_5_and_plot_writes_a_chart(
    live: Live, tmp_path: Path
) -> None:
    from sweep_rows import J

    with live.client() as c:
        sweep = c.create_sweep({"base": BASE, "space": {"optimizer.lr": {"uniform": [0.01, 0.1]}},
                                "objective": {"metric": "val_accuracy"}})  # fmt: skip
    sid = sweep.id
    live.trial(sid, 0, {"optimizer.lr": 0.02}, [J("succeeded", 0.9)])
    live.trial(sid, 1, {"optimizer.lr": 0.04}, [J("queued", None, 0)])
    result = live.cli("sweep-cancel", sid)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"cancelled {sid} after 2 trials (1 complete, 1 cancelled)")
    result = live.cli("sweep-cancel", sid)
    assert result.exit_code == 1 and "error:" in result.stderr
    result = live.cli("sweep-follow", sid)
    assert result.exit_code == 5, result.output
    assert re.search(r"^trial 1: cancelled", result.stdout, re.M), result.stdout

    out = tmp_path / "history.svg"
    result = live.cli("sweep-plot", sid, "--kind", "history", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    assert f"wrote {out}" in result.stderr


@pytest.mark.server
def test_following_a_running_sweep_live_with_reconnects(live: Live) -> None:
    """The follower runs as a user runs it (a subprocess, stdout piped) while a stand-in
    for the workers writes a trial's job, its epochs and its end; streams close every
    3 s, so the follower resumes with Last-Event-ID along the way."""
    import subprocess
    import sys
    import threading
    import time

    from support import ROOT, wait_for
    from sweep_rows import J

    from service.db import utcnow

    with live.client() as c:
        sweep = c.create_sweep({"base": BASE, "space": {"optimizer.lr": {"uniform": [0.01, 0.1]}},
                                "objective": {"metric": "val_loss"}, "max_trials": 1})  # fmt: skip
    sid = sweep.id
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DESCENT_")}
    env.update(live.env(), PYTHONUNBUFFERED="1")
    env.pop("DESCENT_CONFIG")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "sweep-follow", sid],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(line.rstrip("\n") for line in proc.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: lines, 60, what="the follower's first line")
        [job_id] = live.trial(sid, 0, {"optimizer.lr": 0.03}, [J("running", None, 0)])
        wait_for(lambda: any(line.startswith("trial 0: running") for line in lines), 30,
                 what="the trial's start")  # fmt: skip
        for n, loss in enumerate([0.9, 0.5, 0.7], start=1):
            live.epoch(sid, job_id, n, {"val_loss": loss, "train_loss": loss})
            time.sleep(1.5)  # across at least one of the server's 3 s stream ends
        live.set_job(job_id, status="succeeded", objective=0.5, finished_at=utcnow())
        live.set_sweep(sid, status="succeeded", finished_at=utcnow())
        proc.wait(60)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, "\n".join(lines) + stderr
    assert lines[1:] == [
        "trial 0: running  optimizer.lr=0.03",
        "trial 0: succeeded after 3 epochs, val_loss 0.5",
        f"sweep {sid} succeeded: 1/1 trials (1 complete), 3 epochs",
        "best: trial 0: val_loss 0.5  optimizer.lr=0.03",
    ], lines
