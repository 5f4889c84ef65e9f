"""Optimizers. The worker builds each with ``torch.optim`` under the same name and
arguments; ``update_rule`` is what that class computes, in words a student can check.

Notation: θ parameters, g the gradient (plus λθ when weight_decay λ is coupled),
η the learning rate, t the step number starting at 1.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictBool, StrictFloat, model_validator

from service.spec.common import SpecModel

LR = Annotated[
    Annotated[StrictFloat, Field(gt=0.0, le=1000.0)] | Literal["auto"],
    Field(
        description='Learning rate η, or "auto": an LR range test (the job\'s `range_test` '
        "settings) runs first and its suggestion is used."
    ),
]


def resolved(rate: float | Literal["auto"], field: str) -> float:
    """``rate`` once an ``"auto"`` value has been set by its range test; a ValueError
    naming ``field`` when it has not (a bug of whoever runs the job)."""
    if rate == "auto":
        raise ValueError(f'{field} is still "auto": its range test must set it first')
    return rate


WeightDecay = Annotated[
    StrictFloat,
    Field(ge=0.0, le=10.0, description="L2 penalty coupled into the gradient (g + λθ)."),
]
Eps = Annotated[StrictFloat, Field(gt=0.0, le=1.0, description="Term added to denominators.")]
Beta = Annotated[StrictFloat, Field(ge=0.0, lt=1.0)]
Betas = Annotated[
    tuple[Beta, Beta],
    Field(description="(β1, β2): decay rates of the first- and second-moment averages."),
]


class OptimizerBase(SpecModel):
    lr: LR = 0.01
    weight_decay: WeightDecay = 0.0

    description: ClassVar[str] = ""
    update_rule: ClassVar[str] = ""

    def torch_kwargs(self) -> dict[str, Any]:
        """Arguments for the ``torch.optim`` class of the same name."""
        return self.model_dump(exclude={"name"})

    @property
    def has_momentum(self) -> bool:
        """Whether the optimizer uses a momentum or β1 that a schedule can cycle."""
        return False

    @property
    def state_slots(self) -> int:
        """Tensors the size of the parameters that the optimizer keeps between steps."""
        return 0


class SGD(OptimizerBase):
    name: Literal["sgd"]
    momentum: StrictFloat = Field(0.0, ge=0.0, lt=1.0, description="Momentum factor μ.")
    dampening: StrictFloat = Field(0.0, ge=0.0, le=1.0, description="Dampening τ of the momentum.")
    nesterov: StrictBool = Field(False, description="Nesterov momentum (needs μ > 0, τ = 0).")

    description: ClassVar[str] = (
        "Stochastic gradient descent with optional (Nesterov) momentum. Full-batch GD, "
        "SGD with batch size 1 and mini-batch GD are this optimizer with different "
        "training.batch_size."
    )
    update_rule: ClassVar[str] = (
        "b_t = μ·b_{t-1} + (1−τ)·g_t  (b_1 = g_1); "
        "d_t = g_t + μ·b_t if nesterov else b_t (d_t = g_t when μ = 0); θ_t = θ_{t-1} − η·d_t"
    )

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGD:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0")
        return self

    @property
    def has_momentum(self) -> bool:
        return self.momentum > 0

    @property
    def state_slots(self) -> int:
        return 1 if self.momentum > 0 else 0  # momentum_buffer


class Adagrad(OptimizerBase):
    name: Literal["adagrad"]
    lr_decay: StrictFloat = Field(
        0.0, ge=0.0, le=1.0, description="η_t = η / (1 + (t−1)·lr_decay)."
    )
    eps: Eps = 1e-10
    initial_accumulator_value: StrictFloat = Field(0.0, ge=0.0, le=1e6)

    description: ClassVar[str] = (
        "Per-parameter rates that shrink with the sum of past squared gradients; "
        "good for sparse features, its rate decays for ever."
    )
    update_rule: ClassVar[str] = (
        "s_t = s_{t-1} + g_t² (s_0 = initial_accumulator_value);  "
        "θ_t = θ_{t-1} − η_t·g_t / (√s_t + ε),  η_t = η / (1 + (t−1)·lr_decay)"
    )

    @property
    def state_slots(self) -> int:
        return 1  # sum of squared gradients


class RMSprop(OptimizerBase):
    name: Literal["rmsprop"]
    alpha: StrictFloat = Field(
        0.99, ge=0.0, lt=1.0, description="Smoothing constant of the average."
    )
    eps: Eps = 1e-8
    momentum: StrictFloat = Field(0.0, ge=0.0, lt=1.0)
    centered: StrictBool = Field(False, description="Normalise by the estimated variance.")

    description: ClassVar[str] = (
        "Divides the step by a moving root-mean-square of recent gradients (Hinton's "
        "lecture 6e); fixes AdaGrad's ever-shrinking rate."
    )
    update_rule: ClassVar[str] = (
        "v_t = α·v_{t-1} + (1−α)·g_t²  (an average, not a sum); "
        "centered: m_t = α·m_{t-1} + (1−α)·g_t and v'_t = v_t − m_t², else v'_t = v_t; "
        "with momentum μ > 0: b_t = μ·b_{t-1} + g_t/(√v'_t + ε), θ_t = θ_{t-1} − η·b_t; "
        "else θ_t = θ_{t-1} − η·g_t/(√v'_t + ε)"
    )

    @property
    def has_momentum(self) -> bool:
        return self.momentum > 0

    @property
    def state_slots(self) -> int:
        # square_avg, + grad_avg when centered, + momentum_buffer with momentum
        return 1 + int(self.centered) + int(self.momentum > 0)


class _AdamFamily(OptimizerBase):
    lr: LR = 0.001
    betas: Betas = (0.9, 0.999)
    eps: Eps = 1e-8

    @property
    def has_momentum(self) -> bool:
        return True

    @property
    def state_slots(self) -> int:
        return 2  # first and second moments (Adamax: the infinity norm u_t)


class Adam(_AdamFamily):
    name: Literal["adam"]
    amsgrad: StrictBool = Field(
        False, description="AMSGrad: the running maximum of v, bias-corrected."
    )

    description: ClassVar[str] = (
        "Adaptive moment estimation (Kingma & Ba, 2015): momentum on the gradient and "
        "RMSprop-style scaling, both bias-corrected. weight_decay here is coupled L2; "
        "use adamw for decoupled decay."
    )
    update_rule: ClassVar[str] = (
        "m_t = β1·m_{t-1} + (1−β1)·g_t;  v_t = β2·v_{t-1} + (1−β2)·g_t²;  "
        "m̂_t = m_t/(1−β1^t);  v̂_t = v_t/(1−β2^t) (amsgrad: v̂_t = max_{s≤t} v_s / (1−β2^t), "
        "the running maximum of v, not of v̂);  θ_t = θ_{t-1} − η·m̂_t/(√v̂_t + ε)"
    )

    @property
    def state_slots(self) -> int:
        return 3 if self.amsgrad else 2  # + the running maximum of v̂


class AdamW(_AdamFamily):
    name: Literal["adamw"]
    weight_decay: StrictFloat = Field(
        0.01, ge=0.0, le=10.0, description="Decoupled decay λ: θ ← θ − η·λ·θ each step."
    )
    amsgrad: StrictBool = False

    description: ClassVar[str] = (
        "Adam with decoupled weight decay (Loshchilov & Hutter, 2019): the decay shrinks "
        "the weights directly instead of passing through the adaptive scaling."
    )
    update_rule: ClassVar[str] = (
        "θ_{t-1} ← θ_{t-1}·(1 − η·λ);  then Adam's step with g_t (no λθ in the gradient)"
    )

    @property
    def state_slots(self) -> int:
        return 3 if self.amsgrad else 2


class NAdam(_AdamFamily):
    name: Literal["nadam"]
    lr: LR = 0.002
    momentum_decay: StrictFloat = Field(0.004, ge=0.0, le=1.0, description="ψ in the μ_t schedule.")
    decoupled_weight_decay: StrictBool = Field(
        False, description="AdamW-style decay instead of L2."
    )

    description: ClassVar[str] = "Adam with Nesterov momentum (Dozat, 2016)."
    update_rule: ClassVar[str] = (
        "(decoupled_weight_decay: θ_{t-1} ← θ_{t-1}·(1 − η·λ) as in AdamW, no λθ in g_t);  "
        "μ_t = β1·(1 − ½·0.96^(t·ψ));  m_t, v_t as in Adam;  "
        "θ_t = θ_{t-1} − η·[μ_{t+1}·m_t/(1−∏_{i≤t+1}μ_i) + (1−μ_t)·g_t/(1−∏_{i≤t}μ_i)]"
        " / (√(v_t/(1−β2^t)) + ε)"
    )


class Adamax(_AdamFamily):
    name: Literal["adamax"]
    lr: LR = 0.002

    description: ClassVar[str] = "Adam with the infinity norm in place of the L2 norm."
    update_rule: ClassVar[str] = (
        "m_t = β1·m_{t-1} + (1−β1)·g_t;  u_t = max(β2·u_{t-1}, |g_t| + ε);  "
        "θ_t = θ_{t-1} − η·m_t / ((1−β1^t)·u_t)"
    )


OptimizerSpec = Annotated[
    SGD | Adagrad | RMSprop | Adam | AdamW | NAdam | Adamax, Field(discriminator="name")
]
OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax")
