"""Our schedules against torch.optim.lr_scheduler, step by step, and the closed forms."""

from __future__ import annotations

import math
import random
import warnings

import pytest
import torch
from pydantic import TypeAdapter
from torch.optim import lr_scheduler as sched

from service.spec import ScheduleSpec
from workers.engine.schedules import Schedule, build_schedule, momentum_metric, set_rate

parse = TypeAdapter(ScheduleSpec).validate_python
LR0 = 0.3
TOL = 1e-9


def ours(fields: dict, *, epochs: int, spe: int = 3, has_momentum: bool = False) -> Schedule:
    return build_schedule(
        parse(fields), base_lr=LR0, epochs=epochs, steps_per_epoch=spe, has_momentum=has_momentum
    )


def dummy_optimizer(kind: str = "sgd", lr: float = LR0) -> torch.optim.Optimizer:
    param = [torch.zeros(1, requires_grad=True)]
    if kind == "adam":
        return torch.optim.Adam(param, lr=lr)
    return torch.optim.SGD(param, lr=lr, momentum=0.9)


def torch_epoch_lrs(make: type, epochs: int, **kwargs: object) -> list[float]:
    opt = dummy_optimizer()
    scheduler = make(opt, **kwargs)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


def epoch_lrs(schedule: Schedule, epochs: int, spe: int = 3) -> list[float]:
    """The rate of each epoch, checking it stays put across the epoch's steps."""
    out = []
    for e in range(epochs):
        rates = {schedule.lr(e, s) for s in range(spe)}
        assert len(rates) == 1, f"epoch {e} changes rate within the epoch: {rates}"
        out.append(rates.pop())
    return out


@pytest.mark.parametrize(("step_size", "gamma"), [(1, 0.5), (3, 0.1), (7, 0.9)])
def test_step_matches_steplr(step_size: int, gamma: float) -> None:
    got = epoch_lrs(ours({"name": "step", "step_size": step_size, "gamma": gamma}, epochs=30), 30)
    want = torch_epoch_lrs(sched.StepLR, 30, step_size=step_size, gamma=gamma)
    assert got == pytest.approx(want, abs=TOL, rel=TOL)


@pytest.mark.parametrize(("milestones", "gamma"), [([1], 0.1), ([2, 5, 6, 20], 0.5)])
def test_multistep_matches_multisteplr(milestones: list[int], gamma: float) -> None:
    spec = {"name": "multistep", "milestones": milestones, "gamma": gamma}
    got = epoch_lrs(ours(spec, epochs=25), 25)
    want = torch_epoch_lrs(sched.MultiStepLR, 25, milestones=milestones, gamma=gamma)
    assert got == pytest.approx(want, abs=TOL, rel=TOL)


@pytest.mark.parametrize("k", [0.0, 0.1, 1.5])
def test_exponential_and_time_based_closed_forms(k: float) -> None:
    exp = epoch_lrs(ours({"name": "exponential", "k": k}, epochs=12), 12)
    inv = epoch_lrs(ours({"name": "time_based", "k": k}, epochs=12), 12)
    for e in range(12):
        assert exp[e] == pytest.approx(LR0 * math.exp(-k * e), abs=TOL)
        assert inv[e] == pytest.approx(LR0 / (1 + k * e), abs=TOL)


def test_constant_is_constant() -> None:
    assert epoch_lrs(ours({"name": "constant"}, epochs=5), 5) == [LR0] * 5


@pytest.mark.parametrize(("t_max", "eta_min"), [(None, 0.0), (10, 0.01), (1, 0.0)])
def test_cosine_matches_cosineannealinglr(t_max: int | None, eta_min: float) -> None:
    epochs = 17
    got = epoch_lrs(
        ours({"name": "cosine", "t_max": t_max, "eta_min": eta_min}, epochs=epochs), epochs
    )
    period = t_max or epochs
    want = torch_epoch_lrs(sched.CosineAnnealingLR, epochs, T_max=period, eta_min=eta_min)
    # torch's recursive form climbs back up after T_max; ours holds eta_min there.
    n = min(epochs, period + 1)
    assert got[:n] == pytest.approx(want[:n], abs=TOL, rel=TOL)
    assert got[period:] == pytest.approx([eta_min] * (epochs - period), abs=TOL)


def test_cosine_t_max_defaults_to_the_epochs_after_warmup() -> None:
    schedule = ours({"name": "cosine", "warmup_epochs": 2}, epochs=12, spe=1)
    after_warmup = [schedule.lr(e, 0) for e in range(2, 12)]
    want = torch_epoch_lrs(sched.CosineAnnealingLR, 10, T_max=10)
    assert after_warmup == pytest.approx(want, abs=TOL)


@pytest.mark.parametrize(("t_0", "t_mult", "eta_min"), [(3, 1, 0.0), (2, 2, 0.01), (1, 3, 0.0)])
def test_cosine_restarts_match_cosineannealingwarmrestarts(
    t_0: int, t_mult: int, eta_min: float
) -> None:
    spec = {"name": "cosine", "t_0": t_0, "t_mult": t_mult, "eta_min": eta_min}
    got = epoch_lrs(ours(spec, epochs=60), 60)
    want = torch_epoch_lrs(
        sched.CosineAnnealingWarmRestarts, 60, T_0=t_0, T_mult=t_mult, eta_min=eta_min
    )
    assert got == pytest.approx(want, abs=TOL, rel=TOL)


ONE_CYCLE_CASES = [
    {},
    {"anneal_strategy": "linear"},
    {"three_phase": True},
    {"three_phase": True, "anneal_strategy": "linear", "pct_start": 0.25},
    {"max_lr": 2.0, "pct_start": 0.5, "div_factor": 10.0, "final_div_factor": 100.0},
    {"base_momentum": 0.5, "max_momentum": 0.99, "pct_start": 0.05},
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("spe", [1, 7])
@pytest.mark.parametrize("fields", ONE_CYCLE_CASES, ids=str)
def test_one_cycle_matches_onecyclelr(fields: dict, spe: int, optimizer: str) -> None:
    epochs = 9
    spec = parse({"name": "one_cycle", **fields})
    schedule = ours({"name": "one_cycle", **fields}, epochs=epochs, spe=spe, has_momentum=True)
    opt = dummy_optimizer(optimizer)
    torch_sched = sched.OneCycleLR(
        opt,
        max_lr=spec.max_lr or LR0,
        total_steps=epochs * spe,
        pct_start=spec.pct_start,
        anneal_strategy=spec.anneal_strategy,
        cycle_momentum=True,
        base_momentum=spec.base_momentum,
        max_momentum=spec.max_momentum,
        div_factor=spec.div_factor,
        final_div_factor=spec.final_div_factor,
        three_phase=spec.three_phase,
    )
    key = momentum_metric(opt)
    for e in range(epochs):
        for s in range(spe):
            group = opt.param_groups[0]
            want_m = group["betas"][0] if key == "beta1" else group["momentum"]
            assert schedule.lr(e, s) == pytest.approx(group["lr"], abs=TOL, rel=TOL)
            assert schedule.momentum(e, s) == pytest.approx(want_m, abs=TOL, rel=TOL)
            opt.step()
            torch_sched.step()


def test_one_cycle_cycles_momentum_only_when_asked_or_available() -> None:
    assert ours({"name": "one_cycle"}, epochs=3, has_momentum=True).momentum(0, 0) == 0.95
    assert ours({"name": "one_cycle"}, epochs=3, has_momentum=False).momentum(0, 0) is None
    off = ours({"name": "one_cycle", "cycle_momentum": False}, epochs=3, has_momentum=True)
    assert off.momentum(1, 1) is None
    with pytest.raises(ValueError, match="cycle_momentum"):
        ours({"name": "one_cycle", "cycle_momentum": True}, epochs=3, has_momentum=False)


def test_one_cycle_survives_a_zero_length_phase() -> None:
    # pct_start·T = 1 puts the end of phase 1 at step 0, where torch divides by zero.
    schedule = ours({"name": "one_cycle", "pct_start": 0.1}, epochs=10, spe=1)
    rates = [schedule.lr(e, 0) for e in range(10)]
    assert rates[0] == pytest.approx(LR0)
    assert all(math.isfinite(r) for r in rates) and rates[-1] < rates[1]


def plateau_metrics(mode: str, n: int = 60) -> list[float]:
    rng = random.Random(1)
    value, out = 1.0, []
    for i in range(n):
        if i % 12 < 4:  # improving stretches, then 8-epoch plateaus with noise
            value *= 0.9 if mode == "min" else 1.1
        out.append(value * (1 + rng.uniform(-2e-4, 2e-4)))
    return out


PLATEAU_CASES = [
    {"monitor": "val_loss"},
    {"monitor": "val_loss", "patience": 0, "factor": 0.5},
    {"monitor": "val_accuracy", "patience": 2, "threshold": 0.01},
    {"monitor": "val_loss", "patience": 1, "cooldown": 2, "min_lr": 0.01},
    {"monitor": "train_loss", "mode": "max", "patience": 0, "threshold": 0.0},
]


@pytest.mark.parametrize("fields", PLATEAU_CASES, ids=str)
def test_reduce_on_plateau_matches_reducelronplateau(fields: dict) -> None:
    spec = parse({"name": "reduce_on_plateau", **fields})
    mode = spec.mode if spec.mode != "auto" else ("max" if "accuracy" in spec.monitor else "min")
    schedule = ours({"name": "reduce_on_plateau", **fields}, epochs=60)
    opt = dummy_optimizer()
    torch_sched = sched.ReduceLROnPlateau(
        opt,
        mode=mode,
        factor=spec.factor,
        patience=spec.patience,
        threshold=spec.threshold,
        cooldown=spec.cooldown,
        min_lr=spec.min_lr,
    )
    seen = set()
    for e, value in enumerate(plateau_metrics(mode)):
        assert epoch_lrs(schedule, e + 1)[e] == pytest.approx(opt.param_groups[0]["lr"], abs=TOL)
        seen.add(opt.param_groups[0]["lr"])
        schedule.on_epoch_end(value)
        torch_sched.step(value)
    assert len(seen) > 2  # the case really exercised reductions


def test_reduce_on_plateau_state_round_trips() -> None:
    fields = {"name": "reduce_on_plateau", "patience": 1, "cooldown": 1}
    first = ours(fields, epochs=40)
    values = plateau_metrics("min", 40)
    for v in values[:20]:
        first.on_epoch_end(v)
    second = ours(fields, epochs=40)
    second.load_state_dict(first.state_dict())
    for e, v in enumerate(values[20:], start=20):
        assert second.lr(e, 0) == first.lr(e, 0)
        first.on_epoch_end(v)
        second.on_epoch_end(v)
    assert first.state_dict() == second.state_dict()


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "constant", "warmup_epochs": 2},
        {"name": "step", "step_size": 1, "gamma": 0.5, "warmup_epochs": 2},
        {"name": "one_cycle", "warmup_epochs": 2},
        {"name": "reduce_on_plateau", "warmup_epochs": 2},
    ],
    ids=lambda f: f["name"],
)
def test_warmup_rises_linearly_to_the_schedules_first_rate(fields: dict) -> None:
    spe, epochs = 4, 6
    warm = ours(fields, epochs=epochs, spe=spe, has_momentum=True)
    plain = ours({**fields, "warmup_epochs": 0}, epochs=epochs - 2, spe=spe, has_momentum=True)
    first = plain.lr(0, 0)
    w = 2 * spe
    for t in range(w):
        e, s = divmod(t, spe)
        assert warm.lr(e, s) == pytest.approx(first * (t + 1) / w, abs=TOL)
        assert warm.momentum(e, s) == plain.momentum(0, 0)  # not warmed up
    for e in range(epochs - 2):  # then the schedule itself, counted from e = 0
        for s in range(spe):
            assert warm.lr(e + 2, s) == pytest.approx(plain.lr(e, s), abs=TOL)
            assert warm.momentum(e + 2, s) == plain.momentum(e, s)


def test_reduce_on_plateau_ignores_warmup_epochs() -> None:
    schedule = ours({"name": "reduce_on_plateau", "patience": 0, "warmup_epochs": 3}, epochs=9)
    for _ in range(3):
        schedule.on_epoch_end(1.0)  # flat during warm-up: no reduction
    assert schedule.lr(3, 0) == LR0
    schedule.on_epoch_end(1.0)  # first real epoch sets the best
    schedule.on_epoch_end(1.0)  # no improvement, patience 0: reduce
    assert schedule.lr(5, 0) == pytest.approx(LR0 * 0.1)


def test_warmup_must_leave_epochs_for_the_schedule() -> None:
    with pytest.raises(ValueError, match="warmup_epochs"):
        ours({"name": "constant", "warmup_epochs": 3}, epochs=3)


def test_set_rate_writes_lr_and_the_right_momentum_field() -> None:
    sgd, adam = dummy_optimizer("sgd"), dummy_optimizer("adam")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_rate(sgd, 0.01, 0.8)
        set_rate(adam, 0.02, 0.85)
    assert sgd.param_groups[0]["lr"] == 0.01 and sgd.param_groups[0]["momentum"] == 0.8
    assert adam.param_groups[0]["betas"] == (0.85, 0.999)
    set_rate(adam, 0.03, None)
    assert adam.param_groups[0]["betas"] == (0.85, 0.999) and adam.param_groups[0]["lr"] == 0.03
    assert (momentum_metric(sgd), momentum_metric(adam)) == ("momentum", "beta1")
