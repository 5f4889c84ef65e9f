"""The user's `descent` commands against a live server: a real uvicorn on a free port, a
SQLite database, one real worker process. The CLI runs as a user runs it (a subprocess,
DESCENT_URL and DESCENT_TOKEN in its environment, its stdout piped), and in-process with
typer's CliRunner where that is simpler.

The server closes every event stream after a few seconds here, so following a job
exercises the client's reconnect with Last-Event-ID, not only a single stream.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ROOT, Backend, Worker, make_backend, make_user, serve, start_worker, wait_for
from typer.testing import CliRunner

from service.client import Client
from service.jobs.schemas import JobRead

pytestmark = [pytest.mark.integration, pytest.mark.server]

#: About a second, start to end.
SMALL = {
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"kind": "mlp", "hidden": [16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "training": {"epochs": 5, "batch_size": 32},
}
SMALL_YAML = """\
dataset: {name: moons, n_samples: 200}
model:
  kind: mlp
  hidden: [16]
optimizer: {name: adam, lr: 0.01}
training: {epochs: 5, batch_size: 32}
"""
#: About a second an epoch: long enough to interrupt and cancel.
LONG = {
    "name": "long",
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [256, 256]},
    "training": {"epochs": 30, "batch_size": 8},
}
TERMINAL = {"succeeded", "failed", "cancelled", "diverged"}


@dataclass
class Live:
    url: str
    token: str
    backend: Backend
    worker: Worker
    tmp: Path

    def client(self) -> Client:
        return Client(self.url, self.token)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
        env.update(
            DESCENT_URL=self.url,
            DESCENT_TOKEN=self.token,
            # No config file and no local token file of the machine's user.
            XDG_CONFIG_HOME=str(self.tmp / "xdg"),
            DESCENT_DATA_DIR=str(self.tmp / "no-data"),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    def run(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            cwd=ROOT,
            env=env or self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A shell's background job starts with SIGINT ignored, and Python keeps an
            # ignored SIGINT ignored: restore the default so Ctrl-C (SIGINT) reaches it
            # however the suite was started.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def wait(self, job_id: str, what: str = "the job to end") -> JobRead:
        with self.client() as c:
            return wait_for(lambda: (j := c.job(job_id)).status in TERMINAL and j, 120, what=what)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from service.main import create_app

    tmp = tmp_path_factory.mktemp("cli")
    backend = make_backend("sqlite", tmp)
    backend.env.update(
        DESCENT_CANCEL_POLL_SECONDS="0.2",
        DESCENT_EVENTS_MAX_SECONDS="3",  # streams end early: followers must reconnect
    )
    token = make_user(backend, "cli-user")
    worker = start_worker(backend, tmp / "worker.log")
    try:
        with serve(create_app(backend.settings())) as url:
            yield Live(url, token, backend, worker, tmp)
    finally:
        worker.stop()
        backend.close()


@pytest.fixture(scope="module")
def done_job(live: Live) -> JobRead:
    """A small job that succeeded."""
    with live.client() as c:
        job = c.submit({**SMALL, "name": "done"})
        final = c.wait(job.id)
    assert final.status == "succeeded", final
    return final


def test_submit_a_yaml_spec_with_overrides_prints_the_job(live: Live, tmp_path: Path) -> None:
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL_YAML)
    out = live.run("submit", str(spec), "--set", "optimizer.lr=2e-2", "--set",
                   "model.hidden=[8, 4]", "--name", "from-yaml", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["name"] == "from-yaml" and job["status"] == "queued"
    assert job["spec"]["optimizer"]["lr"] == 0.02
    assert job["spec"]["model"]["hidden"] == [8, 4]

    out = live.run("submit", str(spec))
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"[0-9a-f-]{36}\n", out.stdout)
    live.wait(job["id"])
    live.wait(out.stdout.strip())


def test_submit_follow_prints_a_line_per_epoch_when_piped_and_exits_0(live: Live) -> None:
    out = live.run("submit", "-", "--follow", stdin=json.dumps(SMALL))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    job_id = lines[0]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split()[1] for e in epochs] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert all("train_loss" in e and "val_loss" in e and "val_accuracy" in e for e in epochs)
    assert "\x1b[" not in out.stdout  # no animation, no colours
    assert re.search(r"^succeeded after 5/5 epochs in [\d.:]+s?; best epoch \d", out.stdout,
                     re.M)  # fmt: skip
    assert re.search(r"^final: .*val_accuracy", out.stdout, re.M)
    with live.client() as c:
        assert c.job(job_id).status == "succeeded"


def test_following_a_diverging_job_exits_4_with_the_reason(live: Live) -> None:
    spec = ROOT / "examples" / "digits-sgd-diverges.json"
    out = live.run("submit", str(spec), "--set", "training.epochs=3", "--follow")
    assert out.returncode == 4, out.stdout + out.stderr
    assert re.search(r"^diverged after \d/3 epochs", out.stdout, re.M), out.stdout
    reason = re.search(r"^reason: (.+)$", out.stdout, re.M)
    assert reason, out.stdout
    with live.client() as c:
        assert c.job(out.stdout.split()[0]).status_reason == reason.group(1)


def test_ctrl_c_stops_following_and_cancel_ends_a_followed_job_with_5(live: Live) -> None:
    with live.client() as c:
        job = c.submit(LONG)
    job_id = job.id
    try:
        watcher = live.popen("follow", job_id)
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith(f"job {job_id}: ")  # following now
        with live.client() as c:
            wait_for(lambda: c.job(job_id).epochs_completed >= 1, 90, what="a first epoch")
        watcher.send_signal(signal.SIGINT)
        stdout, stderr = watcher.communicate(timeout=30)
        assert watcher.returncode == 130, stdout + stderr
        assert f"job {job_id} keeps running" in stderr
        assert f"`descent cancel {job_id}`" in stderr
        with live.client() as c:
            assert c.job(job_id).status == "running"

        follower = live.popen("watch", job_id)
        with live.client() as c:
            start = c.job(job_id).epochs_completed
            # Long enough for the server to have closed the follower's stream at least once.
            wait_for(lambda: c.job(job_id).epochs_completed >= start + 5, 90,
                     what="five more epochs")  # fmt: skip
        out = live.run("cancel", job_id)
        assert out.returncode == 0, out.stderr
        assert job_id in out.stdout
        stdout, stderr = follower.communicate(timeout=60)
        assert follower.returncode == 5, stdout + stderr
        assert re.search(r"^cancelled after \d+/30 epochs", stdout, re.M), stdout
        assert re.search(r"^reason: .*cancel", stdout, re.M), stdout
        # The stream was closed by the server every 3 s; no epoch was lost or repeated.
        numbers = [int(line.split()[1].split("/")[0]) for line in stdout.splitlines()
                   if line.startswith("epoch ")]  # fmt: skip
        assert numbers == list(range(1, len(numbers) + 1))
    finally:
        with live.client() as c:
            if c.job(job_id).status not in TERMINAL:
                c.cancel(job_id)
        live.wait(job_id)


def test_jobs_show_metrics_and_cancel_of_a_finished_job(live: Live, done_job: JobRead) -> None:
    job_id = done_job.id
    out = live.run("jobs", "--limit", "50")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:6] == ["ID", "NAME", "STATUS", "EPOCHS", "BEST", "CREATED"]
    row = next(line for line in out.stdout.splitlines() if line.startswith(job_id))
    assert row.split()[1:4] == ["done", "succeeded", "5/5"]

    page = json.loads(live.run("jobs", "--status", "succeeded", "--json").stdout)
    assert job_id in [j["id"] for j in page["items"]]
    assert {j["status"] for j in page["items"]} == {"succeeded"}

    out = live.run("show", job_id)
    assert out.returncode == 0, out.stderr
    facts = dict(line.split(None, 1) for line in out.stdout.splitlines())
    assert facts["status"] == "succeeded"
    assert facts["epochs"] == "5/5"
    assert facts["attempts"] == "1"
    assert facts["spec"].startswith("moons · mlp [16] relu · adam lr=0.01")
    assert "val_accuracy" in facts["final"]
    assert json.loads(live.run("show", job_id, "--json").stdout)["id"] == job_id

    out = live.run("metrics", job_id, "--names", "train_loss,val_loss")
    assert out.returncode == 0, out.stderr
    table = out.stdout.splitlines()
    assert table[0].split() == ["epoch", "train_loss", "val_loss"]
    assert [line.split()[0] for line in table[1:]] == ["1", "2", "3", "4", "5"]

    out = live.run("metrics", job_id, "--csv", "--names", "train_loss,val_loss")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert rows[0] == "epoch,train_loss,val_loss" and len(rows) == 6
    doc = json.loads(live.run("metrics", job_id, "--json").stdout)
    assert [e["epoch"] for e in doc["epochs"]] == [1, 2, 3, 4, 5]

    out = live.run("cancel", job_id)
    assert out.returncode == 1
    assert out.stdout == ""
    assert "error:" in out.stderr and "succeeded" in out.stderr


def test_plot_one_job_or_compare_several(live: Live, done_job: JobRead, tmp_path: Path) -> None:
    job_id = done_job.id
    png = tmp_path / "curves.png"
    out = live.run("plot", job_id, "-o", str(png))
    assert out.returncode == 0, out.stderr
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {png}" in out.stderr and out.stdout == ""

    svg = tmp_path / "loss.svg"
    out = live.run("plot", job_id, "-m", "train_loss", "-m", "val_loss", "--log", "val_loss",
                   "-o", str(svg))  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = svg.read_text()
    assert "<svg" in text and 'id="series-train_loss"' in text and 'id="series-lr"' not in text

    with live.client() as c:
        other = c.submit({**SMALL, "optimizer": {"name": "sgd", "lr": 0.1}}).id
    svg = tmp_path / "compare.svg"
    out = live.run("plot", job_id, other, "-m", "val_accuracy", "-o", str(svg))
    assert out.returncode == 0, out.stderr
    text = svg.read_text()
    assert f'id="series-{job_id}"' in text and f'id="series-{other}"' in text
    live.wait(other)

    out = live.run("plot", job_id, "-m", "val_r2", "-o", str(png))
    assert out.returncode == 1
    assert "val_r2" in out.stderr


def test_catalog_as_tables_and_json(live: Live) -> None:
    out = live.run("catalog")
    assert out.returncode == 0, out.stderr
    for title in ("datasets", "models", "optimizers", "schedules"):
        assert re.search(rf"^\s*{title}\s*$", out.stdout, re.M), title
    for name in ("moons", "mlp", "adamw", "one_cycle"):
        assert re.search(rf"\b{name}\b", out.stdout), name
    doc = json.loads(live.run("catalog", "--json").stdout)
    assert {"datasets", "models", "optimizers", "schedules"} <= set(doc)


def test_a_bad_spec_exits_1_naming_the_field(live: Live) -> None:
    out = live.run("submit", "-", stdin='{"dataset": {"name": "moons"}, "optimizer": '
                   '{"name": "adamx"}}')  # fmt: skip
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == (
        "error: optimizer.name: unknown name 'adamx'; allowed: sgd, adagrad, rmsprop, adam, "
        "adamw, nadam, adamax\n"
    )
    out = live.run("submit", "-", stdin='{"dataset": {"name": "moons", "n_samples": 1}, '
                   '"optimizer": {"name": "sgd", "lr": -1}}')  # fmt: skip
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert lines[0] == "error: 2 problems with the request (invalid_spec):"
    assert sorted(line.split(":")[0] for line in lines[1:]) == [
        "  dataset.n_samples",
        "  optimizer.lr",
    ]


def test_an_unreachable_server_exits_1_with_a_clear_message(live: Live) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    out = live.run("jobs", env=live.env(DESCENT_URL=url))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"error: cannot reach {url}: connection refused — is `descent up` running?"
    )


def test_descent_url_points_the_cli_at_a_server_on_any_port(live: Live, tmp_path: Path) -> None:
    # The live server is on a free port, not the default 8000; a config file names another
    # server, and DESCENT_URL wins over it (as `descent up --port` tells a user to set it).
    config = tmp_path / "xdg" / "descent" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('url = "http://127.0.0.1:9"\n')
    env = live.env(XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert env["DESCENT_URL"] == live.url and not live.url.endswith(":8000")
    out = live.run("job", "list", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert "items" in json.loads(out.stdout)


def test_no_token_says_how_to_get_one(live: Live) -> None:
    out = live.run("jobs", env=live.env(DESCENT_TOKEN=""))
    assert out.returncode == 1
    assert (
        "needs an API token and none is configured" in out.stderr
        and "`descent token`" in out.stderr
    )


def test_the_config_file_and_the_local_token_file_are_found(live: Live, tmp_path: Path) -> None:
    config = tmp_path / "xdg" / "descent" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{live.url}"\ntoken = "{live.token}"\n')
    env = live.env(DESCENT_URL="", DESCENT_TOKEN="", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    out = live.run("jobs", "--json", env=env)
    assert out.returncode == 0, out.stderr

    data = tmp_path / "data"
    data.mkdir()
    (data / "token").write_text(live.token + "\n")
    env = live.env(DESCENT_TOKEN="", DESCENT_DATA_DIR=str(data))
    out = live.run("jobs", "--json", env=env)
    assert out.returncode == 0, out.stderr


def test_the_commands_run_in_process_too(live: Live, done_job: JobRead) -> None:
    from service.cli import app

    result = CliRunner().invoke(
        app, ["show", done_job.id, "--url", live.url, "--token", live.token]
    )
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout
