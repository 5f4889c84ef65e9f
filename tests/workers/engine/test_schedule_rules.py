"""The schedules Descent defines, from their formulas alone, against the engine's Schedule.

test_engine_schedules.py compares the engine with torch.optim.lr_scheduler; here each rate
is computed again from the closed form docs/optimizers.md gives (exponential lr₀·e^(−k·e),
time-based lr₀/(1 + k·e), step lr₀·γ^⌊e/s⌋, multistep, cosine with and without warm
restarts, the linear warm-up per batch step, 1cycle's phases and its momentum), for every
batch step of whole runs with several steps per epoch, within 1e-12 relative.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import TypeAdapter

from service.spec import SCHEDULE_NAMES, ScheduleSpec
from service.spec.schedules import OneCycle
from workers.engine.schedules import build_schedule

parse = TypeAdapter(ScheduleSpec).validate_python
LR0 = 0.2
REL = 1e-12
ABS = 1e-15  # a rate that should be exactly 0 may come out as ±1e-17

Rates = list[tuple[float, float | None]]  # (η, momentum or None) per batch step

# --------------------------------------------------------------- the formulas


def epoch_rate(spec: Any, e: int, *, epochs_after_warmup: int) -> float:
    """η at epoch e (counted from 0 after warm-up) of an epoch-stepped schedule."""
    match spec.name:
        case "constant":
            return LR0
        case "step":
            return LR0 * spec.gamma ** math.floor(e / spec.step_size)
        case "multistep":
            return LR0 * spec.gamma ** len([m for m in spec.milestones if m <= e])
        case "exponential":
            return LR0 * math.exp(-spec.k * e)
        case "time_based":
            return LR0 / (1 + spec.k * e)
        case "cosine" if spec.t_0 is None:
            t_max = spec.t_max or epochs_after_warmup
            return half_cosine(spec.eta_min, min(e, t_max), t_max)
        case "cosine":
            t_cur, t_i = sgdr_position(e, spec.t_0, spec.t_mult)
            return half_cosine(spec.eta_min, t_cur, t_i)
    raise AssertionError(f"no formula for {spec.name}")


def half_cosine(eta_min: float, t_cur: int, t: int) -> float:
    """η_min + ½(η₀ − η_min)(1 + cos(π·T_cur/T))."""
    return eta_min + 0.5 * (LR0 - eta_min) * (1 + math.cos(math.pi * t_cur / t))


def sgdr_position(e: int, t_0: int, t_mult: int) -> tuple[int, int]:
    """(T_cur, T_i) at epoch e: cycle i lasts t_0·t_mult^i epochs (Loshchilov & Hutter 2017)."""
    if t_mult == 1:
        return e % t_0, t_0
    # Cycle i starts at t_0·(t_mult^i − 1)/(t_mult − 1): solve for i, then settle it in
    # integers so a float logarithm cannot put e in the neighbouring cycle.
    i = int(math.log(e * (t_mult - 1) / t_0 + 1, t_mult))

    def start(i: int) -> int:
        return t_0 * (t_mult**i - 1) // (t_mult - 1)

    while start(i + 1) <= e:
        i += 1
    while start(i) > e:
        i -= 1
    return e - start(i), t_0 * t_mult**i


def one_cycle_at(
    spec: OneCycle, u: int, *, max_lr: float, total: int, phase_end_shift: int = 1
) -> tuple[float, float]:
    """(η, momentum) at step u of ``total`` (after warm-up), as Smith's 1cycle with torch's
    phase boundaries: knots where each phase ends, values the phases run between."""
    low = max_lr / spec.div_factor
    final = low / spec.final_div_factor
    hi_m, lo_m = spec.max_momentum, spec.base_momentum
    rise = spec.pct_start * total - phase_end_shift
    if spec.three_phase:
        knots = [0.0, rise, 2 * spec.pct_start * total - 2 * phase_end_shift, total - 1.0]
        lrs, moms = [low, max_lr, low, final], [hi_m, lo_m, hi_m, hi_m]
    else:
        knots, lrs, moms = [0.0, rise, total - 1.0], [low, max_lr, final], [hi_m, lo_m, hi_m]
    k = next((k for k in range(len(knots) - 2) if u <= knots[k + 1]), len(knots) - 2)
    p = (u - knots[k]) / (knots[k + 1] - knots[k])

    def anneal(a: float, b: float) -> float:
        if spec.anneal_strategy == "cos":
            return b + (a - b) * (1 + math.cos(math.pi * p)) / 2
        return a + (b - a) * p

    return anneal(lrs[k], lrs[k + 1]), anneal(moms[k], moms[k + 1])


def reference_rates(
    fields: dict[str, Any],
    *,
    epochs: int,
    spe: int,
    has_momentum: bool = False,
    warmup_shift: int = 1,
    reset_epochs_after_warmup: bool = True,
    phase_end_shift: int = 1,
) -> Rates:
    """(η, momentum) at every batch step t of the run. The keyword-only ``*_shift`` and
    ``reset_*`` arguments exist to show the comparison catches their wrong values."""
    spec = parse(fields)
    warm = spec.warmup_epochs * spe  # W warm-up steps
    after = epochs - spec.warmup_epochs
    cycles = spec.name == "one_cycle" and (
        has_momentum if spec.cycle_momentum is None else spec.cycle_momentum
    )

    def after_warmup(u: int) -> tuple[float, float | None]:
        """The schedule's own (η, momentum) at step u counted from the end of warm-up."""
        if spec.name == "one_cycle":
            lr, m = one_cycle_at(
                spec,
                u,
                max_lr=spec.max_lr or LR0,
                total=after * spe,
                phase_end_shift=phase_end_shift,
            )
            return lr, m if cycles else None
        e = u // spe if reset_epochs_after_warmup else (u + warm) // spe
        return epoch_rate(spec, e, epochs_after_warmup=after), None

    rates: Rates = []
    for t in range(epochs * spe):
        if t < warm:
            target, m = after_warmup(0)  # momentum holds its first value while warming up
            rates.append((target * (t + warmup_shift) / warm, m))
        else:
            rates.append(after_warmup(t - warm))
    return rates


def engine_rates(fields: dict[str, Any], *, epochs: int, spe: int, has_momentum: bool) -> Rates:
    schedule = build_schedule(
        parse(fields),
        base_lr=LR0,
        epochs=epochs,
        steps_per_epoch=spe,
        has_momentum=has_momentum,
    )
    return [(schedule.lr(e, s), schedule.momentum(e, s)) for e in range(epochs) for s in range(spe)]


def assert_same_rates(got: Rates, want: Rates) -> None:
    assert len(got) == len(want)
    for t, ((lr, m), (ref_lr, ref_m)) in enumerate(zip(got, want, strict=True)):
        assert lr == pytest.approx(ref_lr, rel=REL, abs=ABS), f"lr at step {t}"
        if ref_m is None:
            assert m is None, f"momentum at step {t}: {m}, expected none cycled"
        else:
            assert m == pytest.approx(ref_m, rel=REL, abs=ABS), f"momentum at step {t}"


# --------------------------------------------------------------- the runs

# id: (schedule fields, epochs, the optimizer has a momentum / β1)
CASES: dict[str, tuple[dict[str, Any], int, bool]] = {
    "constant": ({"name": "constant"}, 6, False),
    "constant-warmup": ({"name": "constant", "warmup_epochs": 2}, 6, False),
    "step": ({"name": "step", "step_size": 3, "gamma": 0.5}, 12, False),
    "step-warmup": ({"name": "step", "step_size": 2, "gamma": 0.3, "warmup_epochs": 2}, 12, False),
    "multistep": ({"name": "multistep", "milestones": [2, 5, 9], "gamma": 0.3}, 12, False),
    "multistep-defaults-warmup": ({"name": "multistep", "warmup_epochs": 1}, 20, False),
    "exponential": ({"name": "exponential", "k": 0.3}, 12, False),
    "exponential-k0": ({"name": "exponential", "k": 0.0}, 5, False),
    "exponential-warmup": ({"name": "exponential", "k": 1.5, "warmup_epochs": 1}, 8, False),
    "time_based": ({"name": "time_based", "k": 0.5}, 12, False),
    "time_based-warmup": ({"name": "time_based", "warmup_epochs": 3}, 12, False),
    "cosine": ({"name": "cosine"}, 12, False),
    "cosine-t_max-eta_min": ({"name": "cosine", "t_max": 5, "eta_min": 0.01}, 12, False),
    "cosine-warmup": ({"name": "cosine", "warmup_epochs": 2, "eta_min": 0.001}, 12, False),
    "cosine-restarts": ({"name": "cosine", "t_0": 3}, 14, False),
    "cosine-restarts-t_mult2": (
        {"name": "cosine", "t_0": 2, "t_mult": 2, "eta_min": 1e-3},
        40,
        False,
    ),
    "cosine-restarts-t_mult3-warmup": (
        {"name": "cosine", "t_0": 1, "t_mult": 3, "warmup_epochs": 1},
        45,
        False,
    ),
    "one_cycle": ({"name": "one_cycle"}, 20, True),
    "one_cycle-no-momentum": ({"name": "one_cycle"}, 20, False),
    "one_cycle-not-cycled": ({"name": "one_cycle", "cycle_momentum": False}, 20, True),
    "one_cycle-linear": ({"name": "one_cycle", "anneal_strategy": "linear"}, 20, True),
    "one_cycle-three_phase": ({"name": "one_cycle", "three_phase": True}, 20, True),
    "one_cycle-three_phase-linear": (
        {"name": "one_cycle", "three_phase": True, "anneal_strategy": "linear", "pct_start": 0.4},
        20,
        True,
    ),
    "one_cycle-settings": (
        {
            "name": "one_cycle",
            "max_lr": 1.0,
            "pct_start": 0.25,
            "div_factor": 10.0,
            "final_div_factor": 100.0,
            "base_momentum": 0.8,
            "max_momentum": 0.99,
        },
        20,
        True,
    ),
    "one_cycle-warmup": ({"name": "one_cycle", "warmup_epochs": 2}, 20, True),
}


@pytest.mark.parametrize("spe", [1, 3, 7])
@pytest.mark.parametrize("case", list(CASES))
def test_schedule_rule(case: str, spe: int) -> None:
    fields, epochs, has_momentum = CASES[case]
    got = engine_rates(fields, epochs=epochs, spe=spe, has_momentum=has_momentum)
    want = reference_rates(fields, epochs=epochs, spe=spe, has_momentum=has_momentum)
    assert_same_rates(got, want)


def test_every_schedule_we_define_has_cases() -> None:
    # reduce_on_plateau depends on the metrics seen, not on the step: test_engine_schedules
    # checks it against torch's ReduceLROnPlateau.
    named = {fields["name"] for fields, _, _ in CASES.values()}
    assert named == set(SCHEDULE_NAMES) - {"reduce_on_plateau"}


def test_warmup_reaches_the_target_on_its_last_step() -> None:
    # The closed form, spelt out: η_t = η_target·(t+1)/W, so step W−1 is the target itself
    # and the first step already moves (η₀/W, not 0).
    rates = engine_rates(
        {"name": "constant", "warmup_epochs": 2}, epochs=4, spe=5, has_momentum=False
    )
    assert rates[0][0] == pytest.approx(LR0 / 10, rel=REL)
    assert rates[9][0] == pytest.approx(LR0, rel=REL)
    assert all(b > a for (a, _), (b, _) in zip(rates[:9], rates[1:10], strict=True))


# --------------------------------------------------------------- the check has teeth

TEETH: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # η_target·t/W: the first step gets no rate at all, the last falls short of the target
    "warmup-off-by-one": ({"name": "cosine", "warmup_epochs": 2}, {"warmup_shift": 0}),
    # e counted from the start of the run: the schedule would begin already decayed
    "epochs-counted-through-warmup": (
        {"name": "step", "step_size": 2, "warmup_epochs": 1},
        {"reset_epochs_after_warmup": False},
    ),
    # the peak at step pct_start·T instead of pct_start·T − 1 (torch counts from 0)
    "one_cycle-peak-one-step-late": ({"name": "one_cycle"}, {"phase_end_shift": 0}),
}


@pytest.mark.parametrize("case", list(TEETH))
def test_a_wrong_formula_is_caught(case: str) -> None:
    fields, mistake = TEETH[case]
    got = engine_rates(fields, epochs=10, spe=3, has_momentum=True)
    assert_same_rates(got, reference_rates(fields, epochs=10, spe=3, has_momentum=True))
    with pytest.raises(AssertionError):
        assert_same_rates(
            got, reference_rates(fields, epochs=10, spe=3, has_momentum=True, **mistake)
        )
