"""Built networks have exactly the parameters the spec counts, and the layers it describes."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from service.spec import ACTIVATIONS, INITS, DatasetShape, ModelSpec
from workers.engine.models import build_model

parse = TypeAdapter(ModelSpec).validate_python

DIGITS = DatasetShape(1797, 64, "classification", 10, (1, 8, 8))
BINARY = DatasetShape(100, 2, "classification", 2)
REGRESSION = DatasetShape(442, 10, "regression")
IMAGE_RGB = DatasetShape(50, 60, "classification", 3)  # 3×5×4, given as input_shape
SHAPES = {"digits": DIGITS, "binary": BINARY, "regression": REGRESSION}

MODEL_SPECS = [
    {"kind": "linear"},
    {"kind": "mlp", "hidden": []},
    {"kind": "mlp", "hidden": [5]},
    {"kind": "mlp", "hidden": [7, 3], "dropout": 0.5},
    {"kind": "mlp", "hidden": [33, 17, 9], "activation": "gelu"},
]
CNN_SPECS = [
    ({"kind": "cnn"}, DIGITS),
    ({"kind": "cnn", "channels": [4], "kernel_size": 1, "hidden": []}, DIGITS),
    ({"kind": "cnn", "channels": [2, 3, 4, 5], "kernel_size": 5}, DIGITS),  # pools stop at 1×1
    ({"kind": "cnn", "channels": [6, 4], "hidden": [8, 8], "input_shape": [3, 5, 4]}, IMAGE_RGB),
    ({"kind": "cnn", "channels": [3, 3], "kernel_size": 7, "input_shape": [1, 1, 10]}, REGRESSION),
]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("fields", MODEL_SPECS, ids=lambda f: str(f))
def test_dense_models_count_matches(fields: dict, shape_name: str, batch_norm: bool) -> None:
    shape = SHAPES[shape_name]
    if fields["kind"] == "mlp":
        fields = {**fields, "batch_norm": batch_norm}
    spec = parse(fields)
    model = build_model(spec, shape)
    assert n_params(model) == spec.count_parameters(shape)
    out = model.eval()(torch.randn(4, shape.n_features))
    assert out.shape == (4, shape.n_outputs)


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize(("fields", "shape"), CNN_SPECS, ids=lambda f: str(f))
def test_cnn_count_matches(fields: dict, shape: DatasetShape, batch_norm: bool) -> None:
    spec = parse({**fields, "batch_norm": batch_norm})
    model = build_model(spec, shape)
    assert n_params(model) == spec.count_parameters(shape) > 0
    out = model.eval()(torch.randn(3, shape.n_features))
    assert out.shape == (3, shape.n_outputs)


def test_cnn_blocks_follow_the_spec_layer_order() -> None:
    spec = parse({"kind": "cnn", "channels": [4, 8], "batch_norm": True, "dropout": 0.2})
    kinds = [type(m).__name__ for m in build_model(spec, DIGITS)]
    assert kinds == [
        "Unflatten",
        *["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2,
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
    ]


def test_cnn_refuses_an_input_shape_that_does_not_hold_the_features() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        build_model(parse({"kind": "cnn"}), BINARY)
    with pytest.raises(ValueError, match="input_shape"):
        build_model(parse({"kind": "cnn", "input_shape": [1, 3, 3]}), BINARY)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_and_init_builds_and_runs(activation: str, init: str) -> None:
    for fields in (
        {"kind": "mlp", "hidden": [16, 8]},
        {"kind": "cnn", "channels": [4], "hidden": [8]},
    ):
        spec = parse({**fields, "activation": activation, "init": init})
        torch.manual_seed(0)
        model = build_model(spec, DIGITS)
        assert torch.isfinite(model(torch.randn(5, 64))).all()
        layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        biases_zero = all(torch.count_nonzero(m.bias) == 0 for m in layers)
        # PyTorch's default draws biases; every other init starts them at zero.
        assert biases_zero == (init != "default")


@pytest.mark.parametrize(
    ("init", "activation", "expected_std"),
    [
        ("he_normal", "relu", math.sqrt(2 / 400)),
        ("he_uniform", "tanh", 5 / 3 / math.sqrt(400)),
        ("he_normal", "leaky_relu", math.sqrt(2 / (1 + 0.01**2) / 400)),
        ("xavier_normal", "relu", math.sqrt(2 / (400 + 300))),
        ("orthogonal", "relu", 1 / math.sqrt(400)),  # a 300×400 orthogonal matrix
    ],
)
def test_init_scales_hidden_weights(init: str, activation: str, expected_std: float) -> None:
    shape = DatasetShape(10, 400, "classification", 2)
    torch.manual_seed(0)
    spec = parse({"kind": "mlp", "hidden": [300], "init": init, "activation": activation})
    hidden = build_model(spec, shape)[0]
    assert hidden.weight.std().item() == pytest.approx(expected_std, rel=0.03)


def test_he_init_treats_the_output_layer_as_linear() -> None:
    torch.manual_seed(0)
    shape = DatasetShape(10, 50, "classification", 400)
    spec = parse({"kind": "mlp", "hidden": [800], "init": "he_normal"})
    output = build_model(spec, shape)[-1]
    assert output.weight.std().item() == pytest.approx(1 / math.sqrt(800), rel=0.03)
