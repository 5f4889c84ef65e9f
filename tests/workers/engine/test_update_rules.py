"""Every optimizer's published update rule, written again in NumPy, against the engine.

The engine side is what a job runs, in the loop's order: ``build_optimizer`` from a
validated spec, ``set_rate``, forward and backward, ``decay_weights_`` and
``optimizer.step()``, on a float64 least-squares problem (torch autograd for the
gradient). The reference side never touches torch: NumPy computes the gradient, and each
rule is the paper's formula as docs/optimizers.md writes it (which says where torch, and
so Descent, departs from the paper). Both must agree within 1e-6 at each of 50 steps.

Some wrong variants, the mistakes common write-ups make, must *not* agree: that shows the
comparison can fail.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from service.spec import OPTIMIZER_NAMES, OptimizerSpec, ScheduleSpec
from service.spec.optimizers import OptimizerBase
from service.spec.regularization import Regularization
from workers.engine.optim import build_optimizer
from workers.engine.regularize import decay_weights_, weight_parameters
from workers.engine.schedules import build_schedule, set_rate

STEPS = 50
TOL = 1e-6
parse_optimizer = TypeAdapter(OptimizerSpec).validate_python
parse_schedule = TypeAdapter(ScheduleSpec).validate_python


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Twelve parameters need no thread pool; on a busy machine its hand-offs cost more
    than the arithmetic. Put back afterwards for the tests that follow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------- the problem
# Least squares with a linear layer: loss = Σ (X·Wᵀ + b − Y)² / 2n, W 2×5 and b 2, so 12
# parameters; W is a "weight" (decoupled decay touches it), b a bias (it does not).

_rng = np.random.default_rng(6)
X = _rng.normal(size=(24, 5))
Y = X @ _rng.normal(size=(5, 2)) + 0.3 * _rng.normal(size=(24, 2))
W0 = _rng.normal(size=(2, 5))
B0 = _rng.normal(size=2)

Params = list[np.ndarray]  # [W, b]
Rates = Sequence[tuple[float, float | None]]  # (η, cycled momentum or β1) per step


def numpy_gradient(params: Params) -> Params:
    w, b = params
    residual = X @ w.T + b - Y
    return [residual.T @ X / len(X), residual.sum(axis=0) / len(X)]


def constant_rates(lr: float) -> Rates:
    return [(lr, None)] * STEPS


def schedule_rates(spec: OptimizerBase, schedule: dict[str, Any]) -> Rates:
    """(η, momentum) for each of 50 steps (5 epochs × 10 batches), from the engine's schedule."""
    built = build_schedule(
        parse_schedule(schedule),
        base_lr=spec.lr,
        epochs=5,
        steps_per_epoch=10,
        has_momentum=spec.has_momentum,
    )
    return [(built.lr(e, s), built.momentum(e, s)) for e in range(5) for s in range(10)]


# --------------------------------------------------------------- the engine, as the loop drives it


def engine_path(spec: OptimizerBase, rates: Rates, weight_decay: float = 0.0) -> list[Params]:
    """The parameters after each step. ``weight_decay`` is regularization.weight_decay."""
    model = nn.Linear(5, 2, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(W0))
        model.bias.copy_(torch.from_numpy(B0))
    params = list(model.parameters())
    weights = weight_parameters(model)
    optimizer = build_optimizer(spec, params)
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    path = []
    for lr, momentum in rates:
        set_rate(optimizer, lr, momentum)
        loss = ((model(x) - y) ** 2).sum() / (2 * len(X))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        decay_weights_(weights, lr=lr, weight_decay=weight_decay)
        optimizer.step()
        path.append([p.detach().numpy().copy() for p in params])
    return path


# --------------------------------------------------------------- the references


class Rule:
    """One optimizer's update of one parameter array, from the formulas alone.

    ``hp`` holds the spec's hyperparameters; ``state`` is one dict per parameter array,
    empty before the first step; ``t`` counts steps from 1. ``momentum``, when a schedule
    cycles it, replaces the spec's momentum (SGD, RMSprop) or β1 (Adam family).
    """

    def __init__(self, hp: dict[str, Any]) -> None:
        self.hp = hp
        self.t = 0
        self.state: list[dict[str, Any]] = []

    def step(self, params: Params, grads: Params, lr: float, momentum: float | None) -> Params:
        self.t += 1
        if not self.state:
            self.state = [{} for _ in params]
        return [
            self.update(p, g, s, lr, momentum)
            for p, g, s in zip(params, grads, self.state, strict=True)
        ]

    def update(
        self, p: np.ndarray, g: np.ndarray, s: dict, lr: float, momentum: float | None
    ) -> np.ndarray:
        raise NotImplementedError

    def l2(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Coupled weight decay: the gradient of λ/2·‖θ‖² added to g."""
        return g + self.hp["weight_decay"] * p


class SGDRule(Rule):
    # PyTorch's documented form (Sutskever et al. 2013 with the velocity scaled by 1/η):
    # b_t = μ·b_{t−1} + (1−τ)·g_t with b_1 = g_1; Nesterov looks ahead with g_t + μ·b_t.
    def update(self, p, g, s, lr, momentum):
        mu = self.hp["momentum"] if momentum is None else momentum
        g = self.l2(p, g)
        if mu == 0:
            return p - lr * g
        s["b"] = g.copy() if "b" not in s else mu * s["b"] + (1 - self.hp["dampening"]) * g
        direction = g + mu * s["b"] if self.hp["nesterov"] else s["b"]
        return p - lr * direction


class AdagradRule(Rule):
    # Duchi, Hazan & Singer (2011), diagonal form, ε outside the root; torch adds
    # lr_decay (η_t = η / (1 + (t−1)·lr_decay)) and a starting value of the sum.
    def update(self, p, g, s, lr, momentum):
        g = self.l2(p, g)
        start = s.get("sum", np.full_like(p, self.hp["initial_accumulator_value"]))
        s["sum"] = start + g * g
        eta = lr / (1 + (self.t - 1) * self.hp["lr_decay"])
        return p - eta * g / (self.denominator(s["sum"]))

    def denominator(self, total: np.ndarray) -> np.ndarray:
        return np.sqrt(total) + self.hp["eps"]


class RMSpropRule(Rule):
    # Hinton's lecture 6e: divide by the root of a moving *average* of g²; centered
    # (Graves 2013) subtracts the squared moving average of g; momentum accumulates the
    # scaled step.
    def update(self, p, g, s, lr, momentum):
        alpha, eps = self.hp["alpha"], self.hp["eps"]
        mu = self.hp["momentum"] if momentum is None else momentum
        g = self.l2(p, g)
        s["v"] = self.average(s.get("v", np.zeros_like(p)), g * g)
        if self.hp["centered"]:
            s["m"] = alpha * s.get("m", np.zeros_like(p)) + (1 - alpha) * g
            scale = np.sqrt(s["v"] - s["m"] ** 2) + eps
        else:
            scale = np.sqrt(s["v"]) + eps
        if mu > 0:
            s["b"] = mu * s.get("b", np.zeros_like(p)) + g / scale
            return p - lr * s["b"]
        return p - lr * g / scale

    def average(self, v: np.ndarray, g2: np.ndarray) -> np.ndarray:
        return self.hp["alpha"] * v + (1 - self.hp["alpha"]) * g2


class AdamRule(Rule):
    # Kingma & Ba (2015), Algorithm 1; AMSGrad (Reddi et al. 2018) keeps the running
    # maximum of v (not of v̂) and bias-corrects it with the current step, as torch does.
    # AdamW (Loshchilov & Hutter 2019): θ ← θ·(1 − η·λ) before the step, no λθ in g.
    def decoupled(self) -> bool:
        return self.hp["name"] == "adamw"

    def update(self, p, g, s, lr, momentum):
        b1 = self.hp["betas"][0] if momentum is None else momentum
        b2, t = self.hp["betas"][1], self.t
        if self.decoupled():
            p = p * (1 - lr * self.hp["weight_decay"])
        else:
            g = self.l2(p, g)
        s["m"] = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
        s["v"] = b2 * s.get("v", np.zeros_like(p)) + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1**t)
        if self.hp["amsgrad"]:
            s["v_max"] = np.maximum(s.get("v_max", np.zeros_like(p)), s["v"])
            v_hat = s["v_max"] / (1 - b2**t)
        else:
            v_hat = s["v"] / (1 - b2**t)
        return p - lr * m_hat / self.denominator(v_hat)

    def denominator(self, v_hat: np.ndarray) -> np.ndarray:
        return np.sqrt(v_hat) + self.hp["eps"]


class NAdamRule(Rule):
    # Dozat (2016): a momentum schedule μ_t = β1·(1 − ½·0.96^(t·ψ)) and a Nesterov look-ahead
    # mixing the bias-corrected m_t (with μ_{t+1}) and the current gradient (with μ_t).
    def update(self, p, g, s, lr, momentum):
        b1 = self.hp["betas"][0] if momentum is None else momentum
        b2, t, psi = self.hp["betas"][1], self.t, self.hp["momentum_decay"]
        if self.hp["decoupled_weight_decay"]:
            p = p * (1 - lr * self.hp["weight_decay"])
        else:
            g = self.l2(p, g)
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        s["prod"] = s.get("prod", 1.0) * mu_t  # ∏_{i≤t} μ_i
        s["m"] = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
        s["v"] = b2 * s.get("v", np.zeros_like(p)) + (1 - b2) * g * g
        m_bar = mu_next * s["m"] / (1 - s["prod"] * mu_next) + (1 - mu_t) * g / (1 - s["prod"])
        v_hat = s["v"] / (1 - b2**t)
        return p - lr * m_bar / (np.sqrt(v_hat) + self.hp["eps"])


class AdamaxRule(Rule):
    # Kingma & Ba (2015), Algorithm 2 (the infinity norm); torch puts ε inside the max.
    def update(self, p, g, s, lr, momentum):
        b1 = self.hp["betas"][0] if momentum is None else momentum
        b2, eps = self.hp["betas"][1], self.hp["eps"]
        g = self.l2(p, g)
        s["m"] = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
        s["u"] = np.maximum(b2 * s.get("u", np.zeros_like(p)), np.abs(g) + eps)
        return p - lr / (1 - b1**self.t) * s["m"] / s["u"]


RULES: dict[str, type[Rule]] = {
    "sgd": SGDRule,
    "adagrad": AdagradRule,
    "rmsprop": RMSpropRule,
    "adam": AdamRule,
    "adamw": AdamRule,
    "nadam": NAdamRule,
    "adamax": AdamaxRule,
}


def reference_path(
    spec: OptimizerBase, rates: Rates, weight_decay: float = 0.0, rule: type[Rule] | None = None
) -> list[Params]:
    """The parameters after each step, by the formulas. ``weight_decay`` is the engine's
    decoupled decay, θ ← θ·(1 − η·λ) on weights only, after the gradient, before the step."""
    update = (rule or RULES[spec.name])(spec.model_dump())  # type: ignore[attr-defined]
    params = [W0.copy(), B0.copy()]
    path = []
    for lr, momentum in rates:
        grads = numpy_gradient(params)
        params = [p * (1 - lr * weight_decay) if p.ndim > 1 else p for p in params]
        params = update.step(params, grads, lr, momentum)
        path.append([p.copy() for p in params])
    return path


def max_gap(a: list[Params], b: list[Params]) -> float:
    return max(
        float(np.max(np.abs(x - y)))
        for pa, pb in zip(a, b, strict=True)
        for x, y in zip(pa, pb, strict=True)
    )


def assert_same_path(engine: list[Params], reference: list[Params]) -> None:
    assert len(engine) == len(reference) == STEPS
    for t, (got, want) in enumerate(zip(engine, reference, strict=True), start=1):
        for name, a, b in zip(("weight", "bias"), got, want, strict=True):
            assert np.all(np.isfinite(a)), f"step {t}: the engine's {name} is not finite"
            gap = float(np.max(np.abs(a - b)))
            assert gap <= TOL, f"step {t}, {name}: |engine − reference| = {gap:.3g}"
    # A rule that left the parameters where they were would agree with anything idle.
    moved = max(
        float(np.max(np.abs(engine[-1][0] - W0))), float(np.max(np.abs(engine[-1][1] - B0)))
    )
    assert moved > 0.01, f"the parameters barely moved ({moved:.3g}): the run checks nothing"


# --------------------------------------------------------------- the settings

CASES: dict[str, dict[str, Any]] = {
    "sgd-plain": {"name": "sgd", "lr": 0.1},
    "sgd-momentum": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "sgd-dampening": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.5},
    "sgd-nesterov": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "sgd-weight_decay": {"name": "sgd", "lr": 0.1, "weight_decay": 0.05},
    "sgd-momentum-weight_decay": {"name": "sgd", "lr": 0.05, "momentum": 0.8, "weight_decay": 0.1},
    "adagrad-defaults": {"name": "adagrad", "lr": 0.5},
    "adagrad-lr_decay": {"name": "adagrad", "lr": 0.5, "lr_decay": 0.05},
    "adagrad-initial_accumulator": {
        "name": "adagrad",
        "lr": 0.5,
        "initial_accumulator_value": 0.5,
        "eps": 1e-3,
    },
    "adagrad-all": {
        "name": "adagrad",
        "lr": 0.5,
        "lr_decay": 0.02,
        "initial_accumulator_value": 0.1,
        "weight_decay": 0.05,
    },
    "rmsprop-plain": {"name": "rmsprop", "lr": 0.01},
    "rmsprop-alpha-eps": {"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "eps": 1e-3},
    "rmsprop-momentum": {"name": "rmsprop", "lr": 0.005, "momentum": 0.9},
    "rmsprop-centered": {"name": "rmsprop", "lr": 0.01, "centered": True},
    "rmsprop-centered-momentum": {
        "name": "rmsprop",
        "lr": 0.005,
        "centered": True,
        "momentum": 0.8,
    },
    "rmsprop-weight_decay": {"name": "rmsprop", "lr": 0.01, "weight_decay": 0.1},
    "adam-plain": {"name": "adam", "lr": 0.05},
    "adam-defaults": {"name": "adam"},
    "adam-betas-eps": {"name": "adam", "lr": 0.05, "betas": [0.8, 0.99], "eps": 1e-4},
    "adam-amsgrad": {"name": "adam", "lr": 0.05, "amsgrad": True},
    "adam-weight_decay": {"name": "adam", "lr": 0.05, "weight_decay": 0.1},
    "adam-amsgrad-weight_decay": {
        "name": "adam",
        "lr": 0.05,
        "amsgrad": True,
        "weight_decay": 0.1,
    },
    "adamw-defaults": {"name": "adamw", "lr": 0.05},
    "adamw-decay": {"name": "adamw", "lr": 0.05, "weight_decay": 0.5},
    "adamw-amsgrad": {"name": "adamw", "lr": 0.05, "weight_decay": 0.5, "amsgrad": True},
    "nadam-plain": {"name": "nadam", "lr": 0.02},
    "nadam-momentum_decay": {"name": "nadam", "lr": 0.02, "momentum_decay": 0.05},
    "nadam-weight_decay": {"name": "nadam", "lr": 0.02, "weight_decay": 0.1},
    "nadam-decoupled": {
        "name": "nadam",
        "lr": 0.05,
        "weight_decay": 0.5,
        "decoupled_weight_decay": True,
    },
    "adamax-plain": {"name": "adamax", "lr": 0.05},
    "adamax-betas-weight_decay": {
        "name": "adamax",
        "lr": 0.05,
        "betas": [0.8, 0.99],
        "weight_decay": 0.1,
    },
}


def test_every_optimizer_has_a_reference_and_cases() -> None:
    assert set(RULES) == set(OPTIMIZER_NAMES)
    assert {fields["name"] for fields in CASES.values()} == set(OPTIMIZER_NAMES)


@pytest.mark.parametrize("case", list(CASES))
def test_update_rule(case: str) -> None:
    spec = parse_optimizer(CASES[case])
    rates = constant_rates(spec.lr)
    assert_same_path(engine_path(spec, rates), reference_path(spec, rates))


# regularization.weight_decay: the engine's own decoupled decay, in front of any optimizer.
DECOUPLED: dict[str, tuple[dict[str, Any], float]] = {
    "sgd": ({"name": "sgd", "lr": 0.1}, 0.5),
    "sgd-momentum": ({"name": "sgd", "lr": 0.05, "momentum": 0.9}, 0.5),
    "adam": ({"name": "adam", "lr": 0.05}, 0.5),
    "adam-amsgrad": ({"name": "adam", "lr": 0.05, "amsgrad": True}, 0.2),
}


@pytest.mark.parametrize("case", list(DECOUPLED))
def test_decoupled_weight_decay(case: str) -> None:
    fields, decay = DECOUPLED[case]
    spec = parse_optimizer(fields)
    reg = Regularization.model_validate({"weight_decay": decay})
    rates = constant_rates(spec.lr)
    engine = engine_path(spec, rates, reg.weight_decay)
    assert_same_path(engine, reference_path(spec, rates, reg.weight_decay))
    # The decay really acted: without it the weights end elsewhere (the bias is untouched
    # by the decay itself, only through the coupled problem).
    assert max_gap(engine, engine_path(spec, rates)) > 1e-3


# A rate (and momentum / β1) that changes every step, as schedules set it through set_rate.
SCHEDULED: dict[str, tuple[dict[str, Any], dict[str, Any], float]] = {
    "sgd-momentum-cosine-warmup": (
        {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        {"name": "cosine", "warmup_epochs": 1},
        0.0,
    ),
    "sgd-nesterov-one_cycle": (
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"name": "one_cycle"},
        0.0,
    ),
    "sgd-one_cycle-decoupled": (
        {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        {"name": "one_cycle", "anneal_strategy": "linear", "three_phase": True},
        0.5,
    ),
    "adagrad-step": (
        {"name": "adagrad", "lr": 0.5, "lr_decay": 0.01},
        {"name": "step", "step_size": 2},
        0.0,
    ),
    "rmsprop-momentum-one_cycle": (
        {"name": "rmsprop", "lr": 0.01, "momentum": 0.9, "centered": True},
        {"name": "one_cycle"},
        0.0,
    ),
    "adam-one_cycle-decoupled": ({"name": "adam", "lr": 0.05}, {"name": "one_cycle"}, 0.5),
    "adam-amsgrad-time_based": (
        {"name": "adam", "lr": 0.05, "amsgrad": True},
        {"name": "time_based", "k": 1.0, "warmup_epochs": 1},
        0.0,
    ),
    "adamw-exponential": (
        {"name": "adamw", "lr": 0.05, "weight_decay": 0.5},
        {"name": "exponential", "k": 0.5},
        0.0,
    ),
    "nadam-one_cycle": (
        {"name": "nadam", "lr": 0.02, "decoupled_weight_decay": True, "weight_decay": 0.2},
        {"name": "one_cycle", "three_phase": True},
        0.0,
    ),
    "adamax-multistep": (
        {"name": "adamax", "lr": 0.05},
        {"name": "multistep", "milestones": [1, 3]},
        0.0,
    ),
}


@pytest.mark.parametrize("case", list(SCHEDULED))
def test_update_rule_with_a_varying_rate(case: str) -> None:
    fields, schedule, decay = SCHEDULED[case]
    spec = parse_optimizer(fields)
    rates = schedule_rates(spec, schedule)
    assert len({lr for lr, _ in rates}) >= 3, "the rate should change along the run"
    assert_same_path(engine_path(spec, rates, decay), reference_path(spec, rates, decay))


# --------------------------------------------------------------- the check has teeth


class RMSpropSum(RMSpropRule):
    """A common mistake: v_t = α·v_{t−1} + g_t², a decaying *sum* instead of an average."""

    def average(self, v, g2):
        return self.hp["alpha"] * v + g2


class AdamNoRoot(AdamRule):
    """A common mistake: dividing by v̂_t + ε, forgetting the square root."""

    def denominator(self, v_hat):
        return v_hat + self.hp["eps"]


class AdamNoBiasCorrection(AdamRule):
    """A common mistake: m_t / (√v_t + ε), the bias correction forgotten."""

    def update(self, p, g, s, lr, momentum):
        b1, b2 = self.hp["betas"]
        s["m"] = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
        s["v"] = b2 * s.get("v", np.zeros_like(p)) + (1 - b2) * g * g
        return p - lr * s["m"] / (np.sqrt(s["v"]) + self.hp["eps"])


class AmsgradOfCorrected(AdamRule):
    """A tempting reading of AMSGrad: the running maximum of the bias-corrected v̂_t."""

    def update(self, p, g, s, lr, momentum):
        b1, b2 = self.hp["betas"]
        t = self.t
        s["m"] = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
        s["v"] = b2 * s.get("v", np.zeros_like(p)) + (1 - b2) * g * g
        s["v_hat_max"] = np.maximum(s.get("v_hat_max", np.zeros_like(p)), s["v"] / (1 - b2**t))
        return p - lr * s["m"] / (1 - b1**t) / (np.sqrt(s["v_hat_max"]) + self.hp["eps"])


class AdamL2AsDecoupled(AdamRule):
    """Adam's weight_decay read as AdamW's: decoupled where torch's Adam couples it."""

    def decoupled(self) -> bool:
        return True


class AdamWDecayWithoutRate(AdamRule):
    """AdamW's decay without the rate, θ ← θ·(1 − λ) (the paper's form when its schedule
    multiplier is 1), where torch, and so Descent, decays by θ·(1 − η·λ)."""

    def update(self, p, g, s, lr, momentum):
        adam = AdamRule({**self.hp, "name": "adam", "weight_decay": 0.0})
        adam.t = self.t
        return adam.update(p * (1 - self.hp["weight_decay"]), g, s, lr, momentum)


class AdagradEpsInside(AdagradRule):
    """√(s_t + ε) instead of √s_t + ε: harmless at ε = 1e-10, visible at a large ε."""

    def denominator(self, total):
        return np.sqrt(total + self.hp["eps"])


class AdamaxWithoutEps(AdamaxRule):
    """The paper's u_t = max(β2·u_{t−1}, |g_t|), where torch adds ε inside the max."""

    def update(self, p, g, s, lr, momentum):
        b1, b2 = self.hp["betas"]
        s["m"] = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
        s["u"] = np.maximum(b2 * s.get("u", np.zeros_like(p)), np.abs(g))
        return p - lr / (1 - b1**self.t) * s["m"] / s["u"]


class SutskeverMomentum(SGDRule):
    """Momentum as a velocity, v_t = μ·v_{t−1} − η_t·g_t, θ_t = θ_{t−1} + v_t: the same as
    torch's b-form while η is constant, not when a schedule changes it."""

    def update(self, p, g, s, lr, momentum):
        mu = self.hp["momentum"] if momentum is None else momentum
        s["v"] = mu * s.get("v", np.zeros_like(p)) - lr * g
        return p + s["v"]


TEETH: dict[str, tuple[dict[str, Any], dict[str, Any] | None, type[Rule]]] = {
    "rmsprop-sum-not-average": ({"name": "rmsprop", "lr": 0.01}, None, RMSpropSum),
    "adam-no-square-root": ({"name": "adam", "lr": 0.05}, None, AdamNoRoot),
    "adam-no-bias-correction": ({"name": "adam", "lr": 0.05}, None, AdamNoBiasCorrection),
    "amsgrad-max-of-v-hat": (
        {"name": "adam", "lr": 0.05, "amsgrad": True},
        None,
        AmsgradOfCorrected,
    ),
    "adam-l2-read-as-decoupled": (
        {"name": "adam", "lr": 0.05, "weight_decay": 0.5},
        None,
        AdamL2AsDecoupled,
    ),
    "adamw-decay-without-rate": (
        {"name": "adamw", "lr": 0.05, "weight_decay": 0.1},
        None,
        AdamWDecayWithoutRate,
    ),
    "adagrad-eps-inside-root": ({"name": "adagrad", "lr": 0.5, "eps": 0.1}, None, AdagradEpsInside),
    "adamax-without-eps": ({"name": "adamax", "lr": 0.05, "eps": 0.1}, None, AdamaxWithoutEps),
    "momentum-as-velocity-with-varying-rate": (
        {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        {"name": "cosine", "warmup_epochs": 1},
        SutskeverMomentum,
    ),
}


@pytest.mark.parametrize("case", list(TEETH))
def test_a_wrong_rule_is_caught(case: str) -> None:
    fields, schedule, wrong = TEETH[case]
    spec = parse_optimizer(fields)
    rates = constant_rates(spec.lr) if schedule is None else schedule_rates(spec, schedule)
    engine = engine_path(spec, rates)
    assert_same_path(engine, reference_path(spec, rates))
    gap = max_gap(engine, reference_path(spec, rates, rule=wrong))
    assert gap > 100 * TOL, f"{wrong.__name__} stays within {gap:.3g} of the engine"
