"""Networks built from a model spec: exactly the layers ``service/spec/models.py`` counts.

The API refuses a job by its parameter count before a worker sees it, so the modules
here must have exactly ``spec.count_parameters(shape)`` parameters (a test checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Literal, TypeVar, cast

from torch import nn

from service.spec import DatasetShape, cnn_feature_shape
from service.spec.models import CNNModel, LinearModel, MLPModel, ModelBase

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": partial(nn.LeakyReLU, 0.01),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

# The nonlinearity He initialisation scales for (torch.nn.init.calculate_gain's names).
# GELU has no gain of its own; it is close to ReLU where it matters (x > 0).
#: The name torch's initialisers give each activation's gain.
Gain = Literal["relu", "leaky_relu", "tanh", "sigmoid", "linear"]
_GAIN_NAME: dict[str | None, Gain] = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "gelu": "relu",
    None: "linear",  # the output layer: nothing follows it
}
_LEAKY_SLOPE = 0.01

Layer = nn.Linear | nn.Conv2d
_L = TypeVar("_L", nn.Linear, nn.Conv2d)
Init = Callable[[Layer, str | None], None]


def _initialiser(init_weight: Callable[[nn.Parameter, str | None], object]) -> Init:
    def init(layer: Layer, activation: str | None) -> None:
        init_weight(cast(nn.Parameter, layer.weight), activation)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

    return init


def _he(uniform: bool) -> Init:
    def init_weight(weight: nn.Parameter, activation: str | None) -> None:
        name = _GAIN_NAME[activation]
        a = _LEAKY_SLOPE if name == "leaky_relu" else 0.0
        kaiming = nn.init.kaiming_uniform_ if uniform else nn.init.kaiming_normal_
        kaiming(weight, a=a, nonlinearity=name)

    return _initialiser(init_weight)


def _keep_pytorch_default(layer: Layer, activation: str | None) -> None:
    """PyTorch already initialised the layer when it was built."""


INITS: dict[str, Init] = {
    "default": _keep_pytorch_default,
    "xavier_uniform": _initialiser(lambda w, _: nn.init.xavier_uniform_(w)),
    "xavier_normal": _initialiser(lambda w, _: nn.init.xavier_normal_(w)),
    "he_uniform": _he(uniform=True),
    "he_normal": _he(uniform=False),
    "orthogonal": _initialiser(lambda w, _: nn.init.orthogonal_(w)),
}


def _init(layer: _L, init: str, activation: str | None) -> _L:
    INITS[init](layer, activation)
    return layer


def _dense(n_in: int, hidden: list[int], n_out: int, spec: MLPModel | CNNModel) -> list[nn.Module]:
    """Per hidden width: Linear → [BatchNorm1d] → activation → [Dropout]; then the output."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers.append(_init(nn.Linear(width, h), spec.init, spec.activation))
        if spec.batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(ACTIVATIONS[spec.activation]())
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = h
    layers.append(_init(nn.Linear(width, n_out), spec.init, None))
    return layers


def _linear(spec: LinearModel, shape: DatasetShape) -> nn.Module:
    return nn.Sequential(_init(nn.Linear(shape.n_features, shape.n_outputs), spec.init, None))


def _mlp(spec: MLPModel, shape: DatasetShape) -> nn.Module:
    return nn.Sequential(*_dense(shape.n_features, spec.hidden, shape.n_outputs, spec))


def _cnn(spec: CNNModel, shape: DatasetShape) -> nn.Module:
    input_shape = spec.resolve_input_shape(shape)
    if input_shape is None or math.prod(input_shape) != shape.n_features:
        raise ValueError(
            f"model.input_shape {input_shape} does not hold the {shape.n_features} "
            "features of each sample; give [channels, height, width] whose product equals it"
        )
    # Samples arrive flat (n, C·H·W) like every other dataset; the net views them as images.
    layers: list[nn.Module] = [nn.Unflatten(1, input_shape)]
    c_in, h, w = input_shape
    k = spec.kernel_size
    for i, c in enumerate(spec.channels):
        layers.append(_init(nn.Conv2d(c_in, c, k, padding=k // 2), spec.init, spec.activation))
        if spec.batch_norm:
            layers.append(nn.BatchNorm2d(c))
        layers.append(ACTIVATIONS[spec.activation]())
        # The spec decides when to pool (only while both sides are ≥ 2); follow it exactly.
        _, h_out, w_out = cnn_feature_shape(input_shape, spec.channels[: i + 1])
        if (h_out, w_out) != (h, w):
            layers.append(nn.MaxPool2d(2))
        c_in, h, w = c, h_out, w_out
    layers.append(nn.Flatten())
    layers += _dense(c_in * h * w, spec.hidden, shape.n_outputs, spec)
    return nn.Sequential(*layers)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "linear": _linear,
    "mlp": _mlp,
    "cnn": _cnn,
}


def build_model(spec: ModelBase, shape: DatasetShape) -> nn.Module:
    """The network ``spec`` describes, for data of ``shape``, on the CPU."""
    return MODELS[spec.kind](spec, shape)  # type: ignore[attr-defined]


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
