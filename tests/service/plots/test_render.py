"""What goes into a plot (service.plots.curves) and how it is drawn (service.plots.render)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from support import ROOT

from service.errors import Invalid
from service.plots.curves import (
    CompareJob,
    choose_log,
    choose_metrics,
    compare_plot,
    curves_plot,
    default_metrics,
    panel_key,
    to_float,
)
from service.plots.render import render_compare, render_curves


def rows(n: int, **series: Any) -> list[dict[str, Any]]:
    return [{"epoch": e, **{k: f(e) for k, f in series.items()}} for e in range(1, n + 1)]


def plot(metrics: list[str], log: set[str] | None, data: list[dict[str, Any]]):  # noqa: ANN201
    return curves_plot(
        name="job",
        job_id="3f0c2a9e-5b1d-4c7e-9a4f-0d2b6c8e1f37",
        status="succeeded",
        planned_epochs=len(data) or 1,
        best_epoch=None,
        rows=data,
        metrics=metrics,
        log=log,
    )


def test_default_metrics_by_task() -> None:
    assert default_metrics("classification") == [
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
        "lr",
    ]
    assert default_metrics("regression") == ["train_loss", "val_loss", "val_r2", "lr"]


def test_panels_group_metric_families() -> None:
    keys = [panel_key(m) for m in ("train_loss", "val_loss", "val_accuracy", "train_mse")]
    assert keys == ["loss", "loss", "accuracy", "mse"]
    assert [panel_key(m) for m in ("val_r2", "val_mae", "lr", "grad_norm")] == [
        "val_r2",
        "val_mae",
        "lr",
        "grad_norm",
    ]
    p = plot(["val_mse", "lr", "train_mse", "val_mae", "val_loss"], None, rows(3))
    assert [(panel.title, [s.key for s in panel.series]) for panel in p.panels] == [
        ("mse", ["val_mse", "train_mse"]),
        ("lr", ["lr"]),
        ("val_mae", ["val_mae"]),
        ("loss", ["val_loss"]),
    ]


def test_choose_metrics() -> None:
    assert choose_metrics("regression", []) == default_metrics("regression")
    assert choose_metrics("classification", ["lr", "lr", "val_loss"]) == ["lr", "val_loss"]
    with pytest.raises(Invalid) as err:
        choose_metrics("classification", ["val_mse"])
    assert err.value.fields[0].field == "metrics"
    assert "val_accuracy" in (err.value.fields[0].allowed or [])


def test_choose_log() -> None:
    drawn = ["val_loss", "lr"]
    assert choose_log([], drawn) is None  # automatic
    assert choose_log(["false"], drawn) == set()
    assert choose_log(["all"], drawn) == choose_log(["true"], drawn) == {"val_loss", "lr"}
    assert choose_log(["lr"], drawn) == {"lr"}
    for bad in (["val_r2"], ["nope"], ["lr", "grad_norm"]):
        with pytest.raises(Invalid) as err:
            choose_log(bad, drawn)
        assert err.value.fields[0].field == "log"


def test_automatic_log_axis_for_values_spanning_decades() -> None:
    data = rows(
        10,
        lr=lambda e: 10.0 ** (-e),  # 1e-1 … 1e-10
        val_loss=lambda e: 1 / e,  # a factor 10
        grad_norm=lambda e: 0.0 if e == 1 else 10.0**e,  # a zero: no log axis
    )
    p = plot(["lr", "val_loss", "grad_norm"], None, data)
    assert [panel.log for panel in p.panels] == [True, False, False]
    p = plot(["lr", "val_loss", "grad_norm"], set(), data)  # log=false
    assert [panel.log for panel in p.panels] == [False, False, False]
    p = plot(["lr", "val_loss", "grad_norm"], {"val_loss", "grad_norm"}, data)
    assert [panel.log for panel in p.panels] == [False, True, True]
    # Nothing positive to show: a linear axis whatever was asked.
    p = plot(["val_loss"], {"val_loss"}, rows(3, val_loss=lambda e: -1.0))
    assert not p.panels[0].log


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (0.5, 0.5),
        (None, math.nan),
        (math.inf, math.nan),
        (-math.inf, math.nan),
        (math.nan, math.nan),
        (1e308, math.nan),  # past MAX_DRAWN
        (10**400, math.nan),
        ("0.5", math.nan),
        (True, math.nan),
    ],
)
def test_to_float(value: Any, expected: float) -> None:
    got = to_float(value)
    assert got == expected or (math.isnan(got) and math.isnan(expected))


def test_the_axis_runs_to_the_planned_epochs_while_a_job_runs() -> None:
    common: dict[str, Any] = {
        "name": "j",
        "job_id": "x" * 36,
        "planned_epochs": 50,
        "best_epoch": 2,
        "rows": rows(3, val_loss=lambda e: 1 / e),
        "metrics": ["val_loss"],
        "log": None,
    }
    running = curves_plot(status="running", **common)
    assert (running.x_max, running.live, running.note) == (50, True, None)
    done = curves_plot(status="succeeded", **common)
    assert (done.x_max, done.live) == (3, False)
    assert curves_plot(**{**common, "rows": []}, status="queued").note == "no epochs recorded yet"


def test_renders_in_parallel_threads_match_one_at_a_time() -> None:
    curves = plot(
        default_metrics("classification"),
        None,
        rows(
            30,
            train_loss=lambda e: 1 / e,
            val_loss=lambda e: 1.2 / e,
            train_accuracy=lambda e: 1 - 1 / e,
            val_accuracy=lambda e: 1 - 1.2 / e,
            lr=lambda e: 0.1 * 0.9**e,
        ),
    )
    jobs = [
        CompareJob(
            f"{i:08x}-0000-4000-8000-000000000000",
            "classification",
            "succeeded",
            rows(20, val_loss=lambda e, i=i: (1 + i) / e),
        )
        for i in range(12)
    ]
    compare = compare_plot(
        jobs=jobs, labels=[f"job {i}" for i in range(12)], metric="val_loss", log=True
    )
    alone = [render_curves(curves, "svg"), render_compare(compare, "svg")]
    with ThreadPoolExecutor(4) as pool:
        together = list(
            pool.map(
                lambda i: (render_curves if i % 2 == 0 else render_compare)(
                    curves if i % 2 == 0 else compare, "svg"
                ),
                range(8),
            )
        )
    assert together == alone * 4
    svg = alone[1].decode()
    assert all(f'<g id="series-{job.id}"' in svg for job in jobs)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        render_curves(plot(["val_loss"], None, []), "gif")  # type: ignore[arg-type]


def test_an_unwritable_home_gets_a_private_matplotlib_directory() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPL", "XDG_"))}
    env["HOME"] = "/proc/no-such-home"  # not even root can make directories there
    code = (
        "import os; from service.plots.render import render_curves; "
        "from service.plots.curves import curves_plot; "
        "p = curves_plot(name='j', job_id='x'*36, status='queued', planned_epochs=3, "
        "best_epoch=None, rows=[], metrics=['val_loss'], log=None); "
        "assert render_curves(p, 'png').startswith(b'\\x89PNG'); "
        "print(os.environ['MPLCONFIGDIR'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "descent-matplotlib-" in out.stdout
    assert "Matplotlib created a temporary" not in out.stderr


def test_at_most_render_concurrency_renders_at_once() -> None:
    import threading
    import time

    import anyio

    from service.plots import router

    running, most = 0, 0
    lock = threading.Lock()

    def slow(plot: int, fmt: str) -> bytes:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return b"%d" % plot

    async def main() -> list[bytes]:
        out: list[bytes] = []

        async def one(i: int) -> None:
            response = await router.image_response(slow, i, "png", {})
            out.append(response.body)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        return out

    assert sorted(anyio.run(main)) == sorted(b"%d" % i for i in range(8))
    assert most == router.RENDER_CONCURRENCY == 2
