"""``descent lab …`` and ``descent job result`` against a fake API: what they send, the
choices they refuse before sending, what they print and write."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import flat, job_answer, sse
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()
#: A range test's result as GET /v1/jobs/{id}/result serves it (a typed record).
RANGE_TEST = {
    "kind": "lr_range_test",
    "status": "succeeded",
    "reason": None,
    "settings": {"lr_min": 1e-07, "lr_max": 10.0, "steps": 100, "mode": "exponential",
                 "smoothing": 0.98, "diverge_factor": 4.0, "suggestion": None},
    "steps_run": 92,
    "stopped": {"why": "diverged", "step": 92,
                "text": "the smoothed loss exceeded 4 × its best at step 92"},
    "best": {"smoothed_loss": 1.322, "lr": 1.42, "step": 86},
    "suggestions": [
        {"rule": "steepest", "lr": 0.175, "step": 71, "loss": 1.9,
         "explanation": "falls fastest at step 71"},
        {"rule": "valley", "lr": 0.0163, "step": 60, "loss": 2.1,
         "explanation": "its longest descent"},
    ],
    "suggestion": None,
    "device": "cpu",
    "seconds": 1.5,
    "curve": {"step": [1], "lr": [1e-07], "loss": [2.3], "smoothed_loss": [2.3]},
}  # fmt: skip


def test_landscape_sends_its_settings_and_refuses_unknown_choices(fake_api) -> None:  # noqa: ANN001
    seen = fake_api({("POST", "/v1/jobs"): job_answer(kind="landscape", status="queued")})
    result = runner.invoke(
        app,
        [
            "lab",
            "landscape",
            "job-0",
            "--directions",
            "pca",
            "--split",
            "train",
            "--resolution",
            "11",
            "--name",
            "[my] landscape",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "job-1\n"
    assert json.loads(seen[0].content) == {
        "kind": "landscape",
        "landscape": {
            "job_id": "job-0",
            "split": "train",
            "resolution": 11,
            "span": 1.0,
            "directions": "pca",
            "seed": 0,
        },  # fmt: skip
        "name": "[my] landscape",
    }
    for option, value, allowed in (
        ("--directions", "hessian", "random, pca"),
        ("--split", "test", "val, train"),
    ):
        result = runner.invoke(app, ["landscape", "job-0", option, value])
        assert result.exit_code == 2
        assert f"'{value}': choose one of {allowed}" in flat(result.stderr)
    assert len(seen) == 1


def test_lab_plot_checks_the_view_then_writes_the_chart(fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    seen = fake_api({("GET", "/v1/jobs/job-1/plots/contour.svg"): b"<svg/>"})
    result = runner.invoke(app, ["lab", "plot", "job-1", "--view", "pie", "-o", "x.png"])
    assert result.exit_code == 2
    assert "'pie': choose one of range_test, interpolation, contour, surface" in flat(result.stderr)
    out = tmp_path / "contour.svg"
    result = runner.invoke(app, ["lab", "plot", "job-1", "--view", "contour", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"<svg/>" and f"wrote {out} (6 bytes)" in result.stderr
    assert [r.url.path for r in seen] == ["/v1/jobs/job-1/plots/contour.svg"]


def test_lr_find_follow_tells_the_suggestions_and_writes_the_chart(
    fake_api, tmp_path: Path
) -> None:  # noqa: ANN001
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: {name: digits}\n")
    chart = tmp_path / "range.png"
    job = {"kind": "lr_range_test", "epochs": 100, "epochs_completed": 92, "best_epoch": None}
    found = {"job_id": "job-1", "kind": "lr_range_test", "status": "succeeded",
             "result": RANGE_TEST}  # fmt: skip
    fake_api(
        {
            ("POST", "/v1/jobs"): job_answer(**job, status="queued"),
            ("GET", "/v1/jobs/job-1"): job_answer(**job),
            ("GET", "/v1/jobs/job-1/events"): sse(
                ("status", 0, {"status": "running", "attempt": 1}),
                ("epoch", 1, {"epoch": 1, "epochs": 100, "metrics": {"lr": 1e-7, "loss": 2.3}}),
                ("end", 1, {"status": "succeeded"}),
            ),
            ("GET", "/v1/jobs/job-1/result"): found,
            ("GET", "/v1/jobs/job-1/plots/range_test.png"): b"\x89PNG",
        }
    )
    result = runner.invoke(app, ["lab", "lr-find", str(spec), "--follow", "-o", str(chart)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "step 1/100  lr 1e-07  loss 2.3" in lines
    assert lines[-8:] == [
        "stopped: the smoothed loss exceeded 4 × its best at step 92",
        "lowest smoothed loss 1.322 at lr 1.42 (step 86)",
        "suggestion steepest   lr 0.175",
        "  falls fastest at step 71",
        "suggestion valley     lr 0.0163",
        "  its longest descent",
        '"auto" takes valley for optimizer.lr, min_div_10 for one_cycle.max_lr',
        f"wrote {chart} (4 bytes)",
    ]
    assert chart.read_bytes() == b"\x89PNG"

    result = runner.invoke(app, ["job", "result", "job-1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2] == "suggestion steepest   lr 0.175"
    result = runner.invoke(app, ["result", "job-1", "--json"])
    assert json.loads(result.stdout) == found
