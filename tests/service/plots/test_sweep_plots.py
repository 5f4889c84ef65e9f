"""A sweep's plots: the drawing functions on plain data, and the routes over HTTP on
sweeps, trials, jobs and epochs written straight into SQL as workers would leave them.

Routes: every plot kind answers PNG and SVG; an SVG names every trial's series (and marks
the pruned ones); another user's sweep is a 404 exactly like a missing id; nothing to
plot yet is a 409; a bad kind, format, metric or band is a 422 naming the parameter.
"""

from __future__ import annotations

import io
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from support import Backend, bearer, make_user

from service.db import make_engine, make_sessionmaker, session_scope, utcnow
from service.jobs.models import EpochMetric
from service.jobs.service import dataset_shape, new_job
from service.plots import sweeps as sp
from service.spec import JobSpec
from service.spec.paths import apply
from service.stats import t_quantile
from service.sweeps.models import Sweep, SweepTrial
from service.sweeps.service import max_trials_of
from service.sweeps.spec import ComparisonSpec, SweepSpec
from service.sweeps.states import SweepKind
from service.sweeps.study import JobRow, TrialRow, sample
from service.sweeps.validate import check_comparison, check_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORMATS = ["png", "svg"]


def svg_ids(svg: str) -> list[str]:
    return re.findall(r'<g id="([^"]+)"', svg)


def svg_texts(svg: str) -> list[str]:
    unescape = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)
    return [re.sub(r"&\w+;|&#\d+;", lambda m: unescape.get(m.group(), m.group()), t) for t in texts]


def png_size(content: bytes) -> tuple[int, int]:
    assert content.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(content)) as image:
        image.load()
        return image.size


# -- writing sweeps as workers would leave them -------------------------------------------


@dataclass
class TrialPlan:
    status: str  # the status of each of its jobs
    epochs: int  # epochs recorded (the last one's objective is the pruned one's)
    scale: float = 1.0


def loss_curve(epochs: int, scale: float, seed: int = 0) -> list[dict[str, float]]:
    out = []
    for e in range(1, epochs + 1):
        loss = scale / e + 0.01 * seed
        out.append(
            {
                "train_loss": 0.9 * loss,
                "val_loss": loss,
                "train_accuracy": min(1.0, 0.5 + e / 20),
                "val_accuracy": min(1.0, 0.4 + e / 20 + 0.01 * seed),
                "lr": 0.01,
            }
        )
    return out


class Sweeps:
    """Writes sweeps of the API's user (or of another) straight into the database."""

    def __init__(self, backend: Backend, owner: str) -> None:
        self.settings = backend.settings()
        self.engine = make_engine(str(self.settings.database_url))
        self.sessions = make_sessionmaker(self.engine)
        self.owner = owner

    def close(self) -> None:
        self.engine.dispose()

    def _store(self, session: Any, kind: str, name: str, stored: dict[str, Any], task: str) -> str:
        sweep_id = str(uuid.uuid4())
        session.add(
            Sweep(
                id=sweep_id,
                owner_id=self.owner,
                name=name,
                kind=kind,
                status="succeeded",
                spec=stored,
                task=task,
                max_trials=max_trials_of(kind, stored),
            )
        )
        session.flush()
        return sweep_id

    def _jobs(
        self,
        session: Any,
        sweep_id: str,
        stored: dict[str, Any],
        number: int,
        params: dict[str, Any],
        plan: TrialPlan,
    ) -> list[JobRow]:
        rows = []
        metric = stored["objective"]["metric"]
        for repeat, seed in enumerate(stored["seeds"]):
            body = apply(stored["base"], params | {"training.seed": seed})
            spec = JobSpec.model_validate(body)
            shape = dataset_shape(session=session, spec=spec, owner=self.owner)
            job = new_job(
                spec, shape, self.owner, sweep_id=sweep_id, trial_number=number, repeat=repeat
            )
            epochs = loss_curve(plan.epochs, plan.scale, repeat)
            best = None
            intermediate: dict[str, float] = {}
            for e, values in enumerate(epochs, start=1):
                v = values[metric]
                best = v if best is None else min(best, v)
                intermediate[str(e)] = best
            job.status = plan.status
            job.epochs_completed = plan.epochs
            job.objective = best
            job.intermediate = intermediate
            if plan.status not in ("queued", "running"):
                job.finished_at = utcnow()
            session.add(job)
            session.flush()  # the job before its epochs (no ORM relationship orders them)
            for e, values in enumerate(epochs, start=1):
                session.add(EpochMetric(job_id=job.id, epoch=e, values=values))
            rows.append(JobRow(job.id, job.status, repeat, best, intermediate, {}, plan.epochs))
        return rows

    def search(self, plans: list[TrialPlan], name: str = "lr sweep", **extra: Any) -> str:
        spec = SweepSpec.model_validate(
            {
                "name": name,
                "base": {"dataset": {"name": "iris"}, "training": {"epochs": 6}},
                "space": {
                    "optimizer.name": {"choice": ["sgd", "adam"]},
                    "optimizer.lr": {"loguniform": [1e-4, 1e-1]},
                    "optimizer.weight_decay": {"uniform": [0.0, 0.001]},
                },
                "sampler": {"name": "random", "seed": 3},
                "pruner": {"name": "asha", "grace": 1},
                "objective": {"metric": "val_loss"},
                "max_trials": max(len(plans), 1),
                **extra,
            }
        )
        with session_scope(self.sessions) as session:
            stored, task = check_sweep(
                spec, session=session, settings=self.settings, owner=self.owner
            )
            sweep_id = self._store(session, SweepKind.SEARCH, name, stored, task)
            parsed = SweepSpec.model_validate(stored)
            trials: list[TrialRow] = []
            for number, plan in enumerate(plans):
                params, record = sample(sweep_id, parsed, stored["sampler"]["seed"], trials, number)
                session.add(
                    SweepTrial(sweep_id=sweep_id, number=number, params=params, optuna=record)
                )
                jobs = self._jobs(session, sweep_id, stored, number, params, plan)
                trials.append(TrialRow(number, params, record, jobs))
        return sweep_id

    def comparison(self, epochs: int = 5) -> str:
        spec = ComparisonSpec.model_validate(
            {
                "name": "optimizers",
                "base": {"dataset": {"name": "iris"}, "training": {"epochs": epochs}},
                "configurations": [
                    {"label": "plain sgd", "set": {"optimizer.name": "sgd"}},
                    {"set": {"optimizer.name": "adam"}},
                ],
                "repeats": 3,
                "objective": {"metric": "val_loss"},
            }
        )
        with session_scope(self.sessions) as session:
            stored, task = check_comparison(
                spec, session=session, settings=self.settings, owner=self.owner
            )
            sweep_id = self._store(session, SweepKind.COMPARISON, "optimizers", stored, task)
            for number, conf in enumerate(stored["configurations"]):
                session.add(
                    SweepTrial(
                        sweep_id=sweep_id,
                        number=number,
                        params=conf["set"],
                        optuna={"label": conf["label"]},
                    )
                )
                plan = TrialPlan("succeeded", epochs, scale=1.0 + number)
                self._jobs(session, sweep_id, stored, number, conf["set"], plan)
        return sweep_id

    def set_status(self, sweep_id: str, status: str) -> None:
        with session_scope(self.sessions) as session:
            sweep = session.get(Sweep, sweep_id)
            assert sweep is not None
            sweep.status = status


@pytest.fixture
def sweeps(api: TestClient, sqlite_backend: Backend) -> Iterator[Sweeps]:
    owner = api.get("/v1/me").json()["id"]
    made = Sweeps(sqlite_backend, owner)
    yield made
    made.close()


#: 0-2, 5, 6 complete; 3 pruned; 4 failed; 7 running.
PLANS = [
    TrialPlan("succeeded", 6, 1.0),
    TrialPlan("succeeded", 6, 0.6),
    TrialPlan("succeeded", 6, 1.4),
    TrialPlan("pruned", 2, 3.0),
    TrialPlan("failed", 0),
    TrialPlan("succeeded", 6, 0.5),
    TrialPlan("succeeded", 6, 0.9),
    TrialPlan("running", 3, 0.8),
]


@pytest.fixture
def searched(sweeps: Sweeps) -> str:
    return sweeps.search(PLANS)


@pytest.fixture
def compared(sweeps: Sweeps) -> str:
    return sweeps.comparison()


def get(api: TestClient, sweep_id: str, plot: str, **params: Any) -> Any:
    return api.get(f"/v1/sweeps/{sweep_id}/plots/{plot}", params=params)


# -- the routes ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["history", "parallel", "intermediate", "importance"])
def test_every_search_plot_is_a_png_and_an_svg(api: TestClient, searched: str, kind: str) -> None:
    png = get(api, searched, f"{kind}.png")
    assert png.status_code == 200, png.text
    assert png.headers["content-type"] == "image/png"
    assert png.headers["cache-control"] == "private, max-age=300"  # the sweep has ended
    assert f'-{kind}.png"' in png.headers["content-disposition"]
    width, height = png_size(png.content)
    assert width >= 600 and height >= 200
    svg = get(api, searched, f"{kind}.svg")
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "DejaVuSans-" not in svg.text  # text is <text>, not glyph outlines
    assert any("lr sweep" in t for t in svg_texts(svg.text))


def test_history_marks_each_state_and_the_best_so_far(api: TestClient, searched: str) -> None:
    svg = get(api, searched, "history.svg").text
    ids = svg_ids(svg)
    for gid in ("series-complete", "series-pruned", "series-fail", "series-running"):
        assert gid in ids
    assert "best-so-far" in ids
    texts = svg_texts(svg)
    assert "trial" in texts
    assert "val_loss (lower is better)" in texts
    assert "complete: 5" in texts and "pruned (objective when stopped): 1" in texts
    # The best complete trial is #5 (the smallest loss scale).
    assert any("best #5" in t for t in texts), texts
    assert png_size(get(api, searched, "history.png").content) == sp.PIXELS["history"]


def test_parallel_coordinates_draws_every_trial_on_the_space_axes(
    api: TestClient, searched: str
) -> None:
    svg = get(api, searched, "parallel.svg").text
    ids = svg_ids(svg)
    for n in range(len(PLANS)):
        assert f"series-{n}" in ids
    for i in range(4):  # three parameters and the objective
        assert f"axis-{i}" in ids
    texts = svg_texts(svg)
    for label in ("optimizer.name", "optimizer.lr", "optimizer.weight_decay", "sgd", "adam"):
        assert label in texts, label
    assert "log" in texts  # the loguniform axis says so
    assert "not complete (no final value)" in texts


def test_intermediate_values_draw_every_trial_and_mark_the_pruned(
    api: TestClient, searched: str
) -> None:
    svg = get(api, searched, "intermediate.svg").text
    ids = svg_ids(svg)
    with_epochs = [n for n, plan in enumerate(PLANS) if plan.epochs]
    # Every trial with an epoch, once (the best is drawn last, on top).
    drawn = [i for i in ids if re.fullmatch(r"series-\d+", i)]
    assert sorted(drawn) == sorted(f"series-{n}" for n in with_epochs)
    assert drawn[-1] == "series-5"
    assert [i for i in ids if i.startswith("pruned-")] == ["pruned-3"]
    texts = svg_texts(svg)
    assert "pruned (× where it stopped): 1" in texts
    assert "complete: 5" in texts and "running: 1" in texts
    assert "epoch" in texts
    assert any(t.startswith("best: #5") for t in texts), texts


def test_importance_ranks_the_parameters(api: TestClient, searched: str) -> None:
    svg = get(api, searched, "importance.svg").text
    ids = svg_ids(svg)
    bars = [i for i in ids if re.fullmatch(r"series-\d+", i)]
    assert bars == [f"series-{i}" for i in range(len(bars))] and 1 <= len(bars) <= 3
    texts = svg_texts(svg)
    assert any(t.startswith("optimizer.") for t in texts), texts
    assert "importance" in texts


def test_comparison_shows_mean_curves_with_bands(api: TestClient, compared: str) -> None:
    r = get(api, compared, "comparison.svg")
    assert r.status_code == 200, r.text
    ids = svg_ids(r.text)
    for n in (0, 1):
        assert f"series-{n}" in ids and f"band-{n}" in ids
    texts = svg_texts(r.text)
    assert "plain sgd (n=3)" in texts and "adam (n=3)" in texts
    assert any("95% CI of the mean (t)" in t for t in texts), texts
    assert "val_loss" in texts
    std = get(api, compared, "comparison.svg", band="std", metric="val_accuracy")
    assert std.status_code == 200, std.text
    assert any("± 1 standard deviation" in t for t in svg_texts(std.text))
    assert "val_accuracy" in svg_texts(std.text)
    png = get(api, compared, "comparison.png")
    assert png_size(png.content) == sp.PIXELS["comparison"]
    # The other plots of a comparison work too, labelled by configuration.
    history = get(api, compared, "intermediate.svg")
    assert history.status_code == 200, history.text
    assert any("plain sgd" in t for t in svg_texts(history.text))


def test_the_charts_band_is_the_tables_confidence_interval(api: TestClient, compared: str) -> None:
    """The comparison's table and its chart take their statistics from one function
    (service.stats.spread): on the same values — each seed's objective is its last
    epoch's val_loss here — the chart's band at that epoch is the table's ci95."""
    table = api.get(f"/v1/sweeps/{compared}/comparison").json()
    trials = api.get(f"/v1/sweeps/{compared}/trials", params={"sort": "number"}).json()
    configs = []
    for trial in trials["items"]:
        runs = []
        for job in trial["jobs"]:
            r = api.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "val_loss"})
            runs.append([(row["epoch"], row["val_loss"]) for row in r.json()["epochs"]])
        configs.append(sp.ConfigRuns(trial["number"], trial["label"], runs))
    info_ = info(metric="val_loss", direction="min")
    ci = sp.comparison_plot(info_, configs, "val_loss", "ci95", total=len(configs))
    std = sp.comparison_plot(info_, configs, "val_loss", "std", total=len(configs))
    rows = {c["number"]: c for c in table["configurations"]}
    assert len(ci.bands) == len(rows) == 2
    for band, spread in zip(ci.bands, std.bands, strict=True):
        row = rows[band.number]
        assert row["n"] == band.seeds == 3 and band.epochs[-1] == 5
        assert spread.mean[-1] == band.mean[-1] == row["mean"]
        assert [band.low[-1], band.high[-1]] == row["ci95"]
        assert band.low[-1] < row["mean"] < band.high[-1]
        assert spread.high[-1] - row["mean"] == pytest.approx(row["std"])


def test_a_running_sweep_is_not_cached(api: TestClient, sweeps: Sweeps, searched: str) -> None:
    sweeps.set_status(searched, "running")
    r = get(api, searched, "history.png")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"


# -- nothing to plot ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["history", "parallel", "intermediate", "importance"])
def test_a_sweep_without_trials_is_a_409(api: TestClient, sweeps: Sweeps, kind: str) -> None:
    empty = sweeps.search([], name="empty")
    r = get(api, empty, f"{kind}.png")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "nothing_to_plot"
    assert "nothing to plot yet" in error["message"]


def test_no_complete_trial_is_a_409_where_a_value_is_needed(
    api: TestClient, sweeps: Sweeps
) -> None:
    sweep_id = sweeps.search([TrialPlan("pruned", 2, 2.0), TrialPlan("running", 1, 1.0)])
    for kind in ("parallel", "importance"):
        r = get(api, sweep_id, f"{kind}.svg")
        assert r.status_code == 409, (kind, r.text)
    # History and intermediate values already have something to show.
    for kind in ("history", "intermediate"):
        assert get(api, sweep_id, f"{kind}.svg").status_code == 200


def test_importance_needs_two_complete_trials(api: TestClient, sweeps: Sweeps) -> None:
    sweep_id = sweeps.search([TrialPlan("succeeded", 3), TrialPlan("failed", 0)])
    r = get(api, sweep_id, "importance.png")
    assert r.status_code == 409
    assert "at least 2 complete trials" in r.json()["error"]["message"]


def test_comparison_plot_needs_repeats(api: TestClient, searched: str, compared: str) -> None:
    r = get(api, searched, "comparison.png")
    assert r.status_code == 409
    assert "repeats" in r.json()["error"]["message"]
    r = get(api, compared, "importance.png")
    assert r.status_code == 409
    assert "comparison" in r.json()["error"]["message"]


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plot", "params", "field", "allowed"),
    [
        ("nonsense.png", {}, "kind", "history"),
        ("history.gif", {}, "format", "svg"),
        ("comparison.png", {"metric": "nonsense"}, "metric", "val_loss"),
        ("comparison.png", {"metric": "val_r2"}, "metric", "val_accuracy"),  # not this task's
        ("comparison.png", {"band": "sem"}, "band", "ci95"),
    ],
)
def test_a_bad_kind_format_metric_or_band_is_a_422(
    api: TestClient, compared: str, plot: str, params: dict[str, str], field: str, allowed: str
) -> None:
    r = get(api, compared, plot, **params)
    assert r.status_code == 422, r.text
    (error,) = r.json()["error"]["fields"]
    assert error["field"] == field
    assert allowed in error["allowed"]


@pytest.mark.parametrize("kind", sp.KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_another_users_sweep_is_a_404_like_a_missing_one(
    api: TestClient, sqlite_backend: Backend, compared: str, kind: str, fmt: str
) -> None:
    stranger = bearer(make_user(sqlite_backend, "stranger"))
    theirs = api.get(f"/v1/sweeps/{compared}/plots/{kind}.{fmt}", headers=stranger)
    missing_id = str(uuid.uuid4())
    missing = api.get(f"/v1/sweeps/{missing_id}/plots/{kind}.{fmt}", headers=stranger)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text.replace(missing_id, compared)
    assert get(api, "not-a-uuid", f"{kind}.{fmt}").status_code == 422


# -- the drawing functions on plain data ------------------------------------------------------


def info(**kw: Any) -> sp.SweepInfo:
    base: dict[str, Any] = {
        "id": "0123456789abcdef",
        "name": "demo",
        "kind": "sweep",
        "status": "succeeded",
        "metric": "val_accuracy",
        "direction": "max",
        "space": {
            "optimizer.name": {
                "choice": [
                    {"value": "sgd", "space": {"optimizer.momentum": {"uniform": [0.0, 0.99]}}},
                    "adam",
                ]
            },
            "optimizer.lr": {"loguniform": [1e-4, 1e-1]},
            "model.hidden.0": {"int": [8, 128], "step": 8},
        },
    }
    return sp.SweepInfo(**(base | kw))


def trial(number: int, state: str, value: float | None, **params: Any) -> sp.TrialInfo:
    steps = tuple((e, (value or 0.5) * e / 3) for e in range(1, 4))
    return sp.TrialInfo(number, state, value, params, sp.trial_label(number, params), steps)


TRIALS = [
    trial(0, "complete", 0.8, **{"optimizer.name": "sgd", "optimizer.momentum": 0.9,
                                 "optimizer.lr": 0.01, "model.hidden.0": 64}),
    trial(1, "complete", 0.9, **{"optimizer.name": "adam", "optimizer.lr": 0.001,
                                 "model.hidden.0": 32}),
    trial(2, "pruned", 0.3, **{"optimizer.name": "adam", "optimizer.lr": 0.1,
                               "model.hidden.0": 8}),
    trial(3, "fail", None, **{"optimizer.name": "sgd", "optimizer.momentum": 0.1,
                              "optimizer.lr": 0.0001, "model.hidden.0": 128}),
    trial(4, "complete", 0.85, **{"optimizer.name": "adam", "optimizer.lr": 0.003,
                                  "model.hidden.0": 16}),
]  # fmt: skip


def test_trial_label_names_values_by_their_last_part() -> None:
    label = sp.trial_label(3, {"optimizer.name": "sgd", "optimizer.lr": 0.001, "x.betas.0": 0.9})
    assert label == "#3 sgd lr=0.001 betas.0=0.9"
    assert sp.trial_label(2, {"optimizer.name": "sgd"}, "plain") == "#2 plain"


def test_trial_info_from_a_trial_row() -> None:
    jobs = [
        JobRow("a", "succeeded", 0, 0.5, {"1": 0.7, "2": 0.5}),
        JobRow("b", "succeeded", 1, 0.7, {"1": 0.9, "2": 0.7}),
    ]
    t = sp.trial_info(TrialRow(4, {"optimizer.lr": 0.1}, {}, jobs))
    assert (t.state, t.value) == ("complete", pytest.approx(0.6))
    assert t.intermediate == ((1, pytest.approx(0.8)), (2, pytest.approx(0.6)))
    pruned = sp.trial_info(TrialRow(5, {}, {}, [JobRow("c", "pruned", 0, 0.9, {"1": 0.9})]))
    assert (pruned.state, pruned.value) == ("pruned", 0.9)  # its objective when stopped
    queued = sp.trial_info(TrialRow(6, {}, {}, []))
    assert (queued.state, queued.value, queued.intermediate) == ("running", None, ())


def test_history_follows_the_direction() -> None:
    plot = sp.history_plot(info(), TRIALS)
    assert plot.best_so_far == ((0, 0.8), (1, 0.9), (2, 0.9), (3, 0.9), (4, 0.9))
    assert plot.points["pruned"] == ((2, 0.3),) and plot.points["fail"] == ((3, None),)
    low = sp.history_plot(info(direction="min", metric="val_loss"), TRIALS)
    assert low.best_so_far[-1] == (4, 0.8)
    assert "lower is better" in low.ylabel
    with pytest.raises(Exception, match="nothing to plot yet"):
        sp.history_plot(info(), [trial(0, "fail", None)])


def test_parallel_axes_follow_the_space() -> None:
    plot = sp.parallel_plot(info(), TRIALS)
    names = [a.name for a in plot.axes]
    assert names[:4] == ["optimizer.name", "optimizer.momentum", "optimizer.lr", "model.hidden.0"]
    axes = dict(zip(names, plot.axes, strict=False))
    assert axes["optimizer.name"].scale == "category"
    assert axes["optimizer.name"].categories == ("sgd", "adam")
    assert axes["optimizer.lr"].scale == "log"
    assert (axes["optimizer.lr"].low, axes["optimizer.lr"].high) == (1e-4, 1e-1)
    assert axes["model.hidden.0"].scale == "linear"
    # adam trials have no momentum: they sit at "n/a" on that axis.
    assert axes["optimizer.momentum"].has_missing
    # Incomplete first, then the complete from worst to best (the best drawn last).
    assert plot.numbers == (2, 3, 0, 4, 1)
    assert plot.values == (None, None, 0.8, 0.85, 0.9)
    by_number = dict(zip(plot.numbers, range(5), strict=True))
    lr = axes["optimizer.lr"].positions
    assert lr[by_number[3]] == 0.0 and lr[by_number[2]] == 1.0
    assert lr[by_number[0]] == pytest.approx(2 / 3)  # 0.01 on a log axis 1e-4..1e-1
    objective = plot.axes[-1].positions
    assert objective[by_number[1]] == 1.0 and objective[by_number[0]] == 0.0
    assert objective[by_number[2]] == sp.MISSING_Y


def test_intermediate_keeps_every_trial_with_steps() -> None:
    plot = sp.intermediate_plot(info(step_measure="progress"), TRIALS)
    assert [c.number for c in plot.curves] == [0, 1, 2, 3, 4]
    assert plot.best == 1
    assert plot.xlabel.startswith("progress")


def test_importance_is_sorted() -> None:
    plot = sp.importance_plot(info(), {"a": 0.1, "b": 0.6, "c": 0.3}, 5)
    assert [n for n, _ in plot.items] == ["b", "c", "a"]
    svg = sp.render_importance(plot, "svg").decode()
    assert [i for i in svg_ids(svg) if i.startswith("series-")] == [
        "series-0",
        "series-1",
        "series-2",
    ]


def test_t_quantiles() -> None:
    # Tables' values; the quantile is SciPy's (service.stats), the one every statistic uses.
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 40) == pytest.approx(2.0211, abs=1e-4)
    assert t_quantile(0.975, 120) == pytest.approx(1.9799, abs=1e-4)
    with pytest.raises(ValueError, match="degree of freedom"):
        t_quantile(0.975, 0)


def test_comparison_band_is_the_t_interval_or_the_std() -> None:
    runs = [[(1, 1.0), (2, 0.5)], [(1, 2.0), (2, 0.7)], [(1, 3.0)]]
    config = sp.ConfigRuns(0, "sgd", runs)
    ci = sp.comparison_plot(info(), [config], "val_loss", "ci95", total=1).bands[0]
    assert ci.epochs == (1, 2) and ci.seeds == 3
    assert ci.mean == (2.0, pytest.approx(0.6))
    half = t_quantile(0.975, 2) * 1.0 / math.sqrt(3)  # sd of 1, 2, 3 is 1
    assert ci.low[0] == pytest.approx(2.0 - half) and ci.high[0] == pytest.approx(2.0 + half)
    std = sp.comparison_plot(info(), [config], "val_loss", "std", total=1).bands[0]
    assert std.low[0] == pytest.approx(1.0) and std.high[0] == pytest.approx(3.0)
    one_seed = sp.ConfigRuns(1, "adam", [[(1, 1.0), (2, float("nan"))]])
    only = sp.comparison_plot(info(), [one_seed], "val_loss", "ci95", total=4)
    assert math.isnan(only.bands[0].low[0]) and only.bands[0].epochs == (1,)
    assert "best 1 of 4 configurations" in only.title
    with pytest.raises(Exception, match="nothing to plot yet"):
        sp.comparison_plot(info(), [sp.ConfigRuns(0, "x", [[]])], "val_loss", "ci95", total=1)


RenderCase = tuple[Callable[[Any, Any], bytes], Callable[[], Any]]
RENDERS: dict[str, RenderCase] = {
    "history": (sp.render_history, lambda: sp.history_plot(info(), TRIALS)),
    "parallel": (sp.render_parallel, lambda: sp.parallel_plot(info(), TRIALS)),
    "intermediate": (sp.render_intermediate, lambda: sp.intermediate_plot(info(), TRIALS)),
    "importance": (
        sp.render_importance,
        lambda: sp.importance_plot(info(), {"optimizer.lr": 0.7, "$x$": 0.3}, 3),
    ),
    "comparison": (
        sp.render_comparison,
        lambda: sp.comparison_plot(
            info(),
            [sp.ConfigRuns(0, "$sgd$", [[(1, 1.0), (2, 0.5)], [(1, 1.2), (2, 0.6)]])],
            "val_loss",
            "ci95",
            total=1,
        ),
    ),
}


@pytest.mark.parametrize("kind", list(RENDERS))
def test_renders_are_images_and_repeatable(kind: str) -> None:
    render, make = RENDERS[kind]
    plot = make()
    png = render(plot, "png")
    width, height = png_size(png)
    if kind in sp.PIXELS:
        assert (width, height) == sp.PIXELS[kind]
    svg = render(plot, "svg")
    assert svg == render(plot, "svg")  # the same plot, the same bytes
    text = svg.decode()
    assert text.lstrip().startswith("<?xml")
    # Text users wrote is not TeX: "$x$" stays as written.
    if kind in ("importance", "comparison"):
        assert any("$" in t for t in svg_texts(text))
