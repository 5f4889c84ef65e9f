"""The LR range test: its rates, its curve, its stops, its suggestions (on synthetic curves
whose answers are known), cancelling, and "auto" rates that never leak into training."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from service.spec import TIMING_METRICS, JobSpec
from service.spec.lab import RangeTest
from workers.engine import ListReporter, train
from workers.engine import lr_finder as lf
from workers.engine.lr_finder import (
    NoSuggestion,
    RangeTestCancelled,
    RangeTestResult,
    Stop,
    min_div_10,
    range_rates,
    range_test,
    resolve_auto,
    steepest,
    valley,
    with_rates,
)

NO_DIR = Path("/nonexistent")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Small models on a shared 2-core machine: one thread is faster and steadier.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def job(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {
        "dataset": {"name": "moons", "n_samples": 300},
        "model": {"kind": "mlp", "hidden": [16]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "training": {"epochs": 3, "batch_size": 16},
    }
    return JobSpec.model_validate(base | fields)


def settings(**fields: Any) -> RangeTest:
    return RangeTest.model_validate({"lr_min": 1e-4, "lr_max": 10.0, "steps": 60} | fields)


def without_timings(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in m.items() if k not in TIMING_METRICS} for m in history]


# -- the rates --------------------------------------------------------------------------


def test_exponential_rates_rise_geometrically_from_lr_min_to_lr_max() -> None:
    rates = range_rates(settings(lr_min=1e-6, lr_max=1.0, steps=61))
    assert len(rates) == 61 and rates[0] == 1e-6 and rates[-1] == 1.0
    ratios = [b / a for a, b in zip(rates, rates[1:], strict=False)]
    assert all(math.isclose(r, 10 ** (6 / 60), rel_tol=1e-12) for r in ratios)


def test_linear_rates_rise_by_equal_steps() -> None:
    rates = range_rates(settings(lr_min=0.01, lr_max=1.0, steps=100, mode="linear"))
    assert rates[0] == 0.01 and rates[-1] == 1.0
    steps = [b - a for a, b in zip(rates, rates[1:], strict=False)]
    assert all(math.isclose(s, 0.99 / 99, rel_tol=1e-9) for s in steps)


# -- suggestions on synthetic curves -----------------------------------------------------

U = [-7.0 + 0.1 * i for i in range(81)]  # log10(lr) from -7 to 1
LRS = [10**u for u in U]


def index_of(u: float) -> int:
    return min(range(len(U)), key=lambda i: abs(U[i] - u))


def test_steepest_is_where_the_loss_falls_fastest_against_log_lr() -> None:
    # A tanh step centred on log10(lr) = -3, then a blow-up past 1e-0.5.
    losses = [1.5 - math.tanh(1.5 * (u + 3)) + math.exp(4 * (u + 0.5)) for u in U]
    s = steepest(LRS, losses)
    assert s is not None and s.rule == "steepest"
    assert s.step == index_of(-3.0) + 1
    assert math.isclose(s.lr, 1e-3, rel_tol=1e-9)
    assert s.loss == losses[index_of(-3.0)]
    assert "falls fastest" in s.explanation


def test_min_div_10_is_a_tenth_of_the_rate_at_the_minimum() -> None:
    losses = [(u + 2) ** 2 + 1 for u in U]  # lowest at log10(lr) = -2
    s = min_div_10(LRS, losses, first_step=11)
    assert s is not None
    assert s.step == 11 + index_of(-2.0)
    assert math.isclose(s.lr, 1e-3, rel_tol=1e-9)
    assert s.loss == 1.0


def valley_curve(bump: bool = False) -> list[float]:
    """Flat at 2 up to log10(lr) = -5, falling linearly to 0.5 at -1, rising after."""
    losses = []
    for u in U:
        if u <= -5:
            losses.append(2.0)
        elif u <= -1:
            losses.append(2.0 - 1.5 * (u + 5) / 4)
        else:
            losses.append(0.5 + 3 * (u + 1))
    if bump:  # one point of the descent pokes up: the descent goes on around it
        losses[index_of(-2.0)] += 0.4
    return losses


def fastai_index(length: int, last: int) -> int:
    """fastai's valley index for a descent of ``length`` points ending at ``last``."""
    return last - length + length // 3 + length // 6


@pytest.mark.parametrize("bump", [False, True])
def test_valley_is_about_halfway_along_the_longest_descent(bump: bool) -> None:
    s = valley(LRS, valley_curve(bump))
    assert s is not None
    # The descent runs from -5 to -1: 41 points (one of the plateau counts: it is strictly
    # decreasing), 40 around the bump. fastai's index is a step or two before the middle.
    length = 40 if bump else 41
    assert s.step == fastai_index(length, index_of(-1.0)) + 1
    assert s.step in (index_of(-3.2) + 1, index_of(-3.1) + 1)
    assert math.isclose(s.lr, LRS[s.step - 1], rel_tol=1e-12)


def test_valley_takes_fastais_index_where_it_differs_from_the_middle() -> None:
    # A plateau, then four falling points ending at index 9, then a rise. The descent is
    # 5 points long (one of the plateau counts), indices 5 to 9, whose middle is 7.
    # fastai starts the valley one point earlier, at 9 - 5, and picks 5 // 3 + 5 // 6 = 1
    # point into it: index 5, two steps (a rate 10^0.2 = 1.6x) lower.
    losses = [3.0] * 6 + [2.5, 2.0, 1.5, 1.0] + [1.5 + 0.5 * i for i in range(10)]
    s = valley(LRS[: len(losses)], losses)
    assert s is not None
    assert s.step == fastai_index(5, 9) + 1 == 6
    assert "falls over 5 steps up to step 10" in s.explanation
    # A descent of two points from the first: fastai's index would be -1 (the curve's
    # last point, in Python); here it is the first point.
    short = valley(LRS[:3], [2.0, 1.0, 3.0])
    assert short is not None and short.step == 1


def test_valley_ignores_descents_after_the_minimum() -> None:
    # A long gentle descent, the minimum, then a longer descent that stays above it.
    losses = [3.0 - 0.01 * i for i in range(30)] + [0.1] + [2.9 - 0.001 * i for i in range(50)]
    s = valley(LRS, losses)
    assert s is not None and s.step <= 31


def test_no_suggestion_when_the_loss_never_falls() -> None:
    rising = [1.0 + 0.01 * i for i in range(len(U))]
    assert steepest(LRS, rising) is None
    assert min_div_10(LRS, rising) is None
    assert valley(LRS, rising) is None


def test_rules_refuse_malformed_curves() -> None:
    with pytest.raises(ValueError, match="same length"):
        valley([1e-3, 1e-2], [1.0])
    with pytest.raises(ValueError, match="rise strictly"):
        valley([1e-2, 1e-3, 1e-1], [1.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="finite"):
        steepest([1e-3, 1e-2, 1e-1], [1.0, math.nan, 2.0])


# -- the test on real models ------------------------------------------------------------


def test_the_curve_falls_then_blows_up_and_the_test_stops_on_divergence() -> None:
    reporter = ListReporter()
    result = range_test(
        job(), settings(lr_max=100.0, steps=200), datasets_dir=NO_DIR, reporter=reporter
    )
    assert result.status == "succeeded" and result.reason is None
    assert result.stopped.why in ("diverged", "non_finite")
    assert result.stopped.step < 200  # it stopped early
    points = result.points
    assert [p.step for p in points] == list(range(1, len(points) + 1))
    lrs = [p.lr for p in points]
    assert all(b > a for a, b in zip(lrs, lrs[1:], strict=False))
    best = result.best
    assert best is not None and best.smoothed_loss < points[0].smoothed_loss  # it fell…
    if result.stopped.why == "diverged":  # …and then rose past 4 × its best
        last = points[-1]
        assert last.step == result.stopped.step
        assert last.smoothed_loss > 4.0 * min(p.smoothed_loss for p in points[:-1])
    assert all(math.isfinite(p.loss) and math.isfinite(p.smoothed_loss) for p in points)
    # Every step reported, with no checkpoint.
    assert [e for e, _ in reporter.reports] == [p.step for p in points]
    assert set(reporter.reports[0][1]) == {"lr", "loss", "smoothed_loss"}
    assert reporter.checkpoints == [None] * len(points)
    rules = {s.rule for s in result.suggestions}
    assert rules == {"steepest", "min_div_10", "valley"}
    for s in result.suggestions:
        assert 1e-4 / 10 <= s.lr <= best.lr
    assert math.isclose(result.choose("min_div_10").lr, best.lr / 10)


def test_smoothing_is_the_bias_corrected_moving_average() -> None:
    result = range_test(job(), settings(steps=20, smoothing=0.9), datasets_dir=NO_DIR)
    average = 0.0
    for p in result.points:
        average = 0.9 * average + 0.1 * p.loss
        assert math.isclose(p.smoothed_loss, average / (1 - 0.9**p.step), rel_tol=1e-12)
    assert math.isclose(result.points[0].smoothed_loss, result.points[0].loss)


def test_the_same_spec_gives_the_same_curve() -> None:
    first = range_test(job(), settings(steps=30), datasets_dir=NO_DIR)
    second = range_test(job(), settings(steps=30), datasets_dir=NO_DIR)
    assert first.points == second.points
    other = range_test(
        job(training={"seed": 1, "batch_size": 16}), settings(steps=30), datasets_dir=NO_DIR
    )
    assert other.points != first.points


def test_a_non_finite_loss_ends_the_test_and_is_no_point(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loss that turns NaN at the 8th batch, however gently the rate rises: the real
    # ones climb past diverge_factor × their best before they overflow.
    calls = []

    def turns_nan(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = F.cross_entropy(output, target)
        return loss * math.nan if len(calls) >= 8 else loss

    monkeypatch.setitem(lf.LOSSES, "classification", turns_nan)
    reporter = ListReporter()
    result = range_test(job(), settings(steps=40), datasets_dir=NO_DIR, reporter=reporter)
    assert result.status == "succeeded"
    assert result.stopped.why == "non_finite" and result.stopped.step == 8
    assert result.stopped.text.startswith("the loss became nan at step 8 (lr ")
    assert [p.step for p in result.points] == list(range(1, 8))
    assert [e for e, _ in reporter.reports] == list(range(1, 8))
    json.dumps(result.record().model_dump(mode="json"), allow_nan=False)


def test_batches_wrap_around_the_epochs() -> None:
    # 240 training samples in batches of 64: 4 batches an epoch, 30 steps wrap 7 times.
    result = range_test(
        job(training={"batch_size": 64}), settings(steps=30, lr_max=0.01), datasets_dir=NO_DIR
    )
    assert result.stopped.why == "all_steps" and len(result.points) == 30


def test_cancelling_stops_before_the_next_step() -> None:
    reporter = ListReporter(stop_after_epoch=5)
    result = range_test(job(), settings(), datasets_dir=NO_DIR, reporter=reporter)
    assert result.status == "cancelled"
    assert result.reason == "cancelled by request after 5 step(s)"
    assert len(result.points) == 5 and result.stopped == Stop("cancelled", 5, result.reason)
    assert result.suggestions == []
    assert [e for e, _ in reporter.reports] == [1, 2, 3, 4, 5]


def test_the_result_json_is_plain_and_finite() -> None:
    result = range_test(job(), settings(steps=40), datasets_dir=NO_DIR)
    payload = result.record().model_dump(mode="json")
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text) == payload
    assert payload["kind"] == "lr_range_test" and payload["steps_run"] == len(result.points)
    assert payload["settings"]["steps"] == 40 and payload["suggestion"] is None
    assert {s["rule"] for s in payload["suggestions"]} <= {"steepest", "min_div_10", "valley"}
    curve = result.curve().model_dump()
    assert len(curve["lr"]) == len(curve["smoothed_loss"]) == len(result.points)


def test_choose_names_the_rule_it_cannot_answer() -> None:
    empty = RangeTestResult("succeeded", None, RangeTest(), [], Stop("non_finite", 1, "x"))
    with pytest.raises(NoSuggestion, match="no 'valley' suggestion"):
        empty.choose()
    with pytest.raises(ValueError, match="unknown suggestion rule"):
        empty.choose("median")


# -- "auto" -----------------------------------------------------------------------------


def test_auto_max_lr_trains_exactly_like_the_value_written_in() -> None:
    auto = job(schedule={"name": "one_cycle", "max_lr": "auto"}, range_test=settings().model_dump())
    resolved, choice = resolve_auto(auto, datasets_dir=NO_DIR)
    assert choice is not None
    record = choice.model_dump(mode="json")  # as jobs.result keeps it, under "auto_lr"
    value = record["value"]
    assert resolved.schedule.max_lr == value and resolved.auto_lr == []
    assert auto.schedule.max_lr == "auto"  # the caller's spec is untouched
    # Nothing else changed: the same spec with the value written in (and no range test).
    plain = job(schedule={"name": "one_cycle", "max_lr": value})
    assert resolved == plain
    # A one-cycle peak takes min_div_10 unless range_test.suggestion says otherwise.
    assert record["fields"] == ["schedule.max_lr"] and record["rule"] == "min_div_10"
    assert value == float(f"{record['suggested_lr']:.3g}")
    assert record["suggested_lr"] in [s["lr"] for s in record["suggestions"]]
    assert "min_div_10" in record["why"] and f"{value:g}" in record["why"]
    assert len(record["curve"]["lr"]) == record["range_test"]["steps_run"]
    json.dumps(record, allow_nan=False)
    # No leak: the range test's model, optimizer and random draws are not the job's.
    first = train(resolved, reporter=(a := ListReporter()), datasets_dir=NO_DIR)
    second = train(plain, reporter=(b := ListReporter()), datasets_dir=NO_DIR)
    assert first.status == second.status == "succeeded"
    assert without_timings(a.history) == without_timings(b.history)


def test_auto_lr_on_the_optimizer_sets_that_field() -> None:
    auto = job(optimizer={"name": "adam", "lr": "auto"})
    resolved, choice = resolve_auto(auto, datasets_dir=NO_DIR)
    assert choice is not None
    record = choice.model_dump(mode="json")
    assert record["fields"] == ["optimizer.lr"]
    assert resolved == job(optimizer={"name": "adam", "lr": record["value"]})
    assert record["range_test"]["settings"] == RangeTest().model_dump(mode="json")


def test_with_rates_sets_the_fields_and_nothing_else() -> None:
    auto = job(
        optimizer={"name": "sgd", "lr": "auto", "momentum": 0.9},
        schedule={"name": "one_cycle", "max_lr": "auto"},
        range_test={"steps": 50},
    )
    both = with_rates(auto, auto.auto_lr, 0.02)
    assert both == job(
        optimizer={"name": "sgd", "lr": 0.02, "momentum": 0.9},
        schedule={"name": "one_cycle", "max_lr": 0.02},
    )
    with pytest.raises(ValueError, match="not a learning-rate field: optimizer.momentum"):
        with_rates(auto, ["optimizer.momentum"], 0.5)


def test_a_spec_without_auto_comes_back_unchanged() -> None:
    spec = job()
    assert resolve_auto(spec, datasets_dir=NO_DIR) == (spec, None)


def test_train_refuses_an_unresolved_auto() -> None:
    with pytest.raises(ValueError, match='optimizer.lr: "auto" must be resolved'):
        train(
            job(optimizer={"name": "sgd", "lr": "auto"}),
            reporter=ListReporter(),
            datasets_dir=NO_DIR,
        )


def test_auto_is_cancelled_when_the_reporter_says_stop() -> None:
    reporter = ListReporter(stop_after_epoch=0)
    with pytest.raises(RangeTestCancelled, match="cancelled by request after 0 step"):
        resolve_auto(
            job(optimizer={"name": "sgd", "lr": "auto"}), datasets_dir=NO_DIR, reporter=reporter
        )
    assert reporter.reports == []  # the test's steps are not the job's rows


def test_auto_without_a_suggestion_names_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    def flat(spec: JobSpec, settings: RangeTest, **_: Any) -> RangeTestResult:
        return RangeTestResult("succeeded", None, settings, [], Stop("non_finite", 1, "x"))

    monkeypatch.setattr(lf, "range_test", flat)
    with pytest.raises(NoSuggestion, match=r'^optimizer.lr: "auto" found no learning rate'):
        resolve_auto(job(optimizer={"name": "sgd", "lr": "auto"}), datasets_dir=NO_DIR)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_test_runs_there() -> None:
    result = range_test(job(), settings(steps=30), datasets_dir=NO_DIR, device="cuda")
    assert result.device.startswith("cuda") and len(result.points) == 30
    cpu = range_test(job(), settings(steps=30), datasets_dir=NO_DIR, device="cpu")
    assert result.points[0].loss == pytest.approx(cpu.points[0].loss, rel=1e-4)
