"""Model architectures, and their parameter counts computed without torch.

The worker builds exactly the layers described here; a worker test checks that
``count_parameters`` equals the built module's parameter count.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator

from service.spec.common import SpecModel
from service.spec.datasets import DatasetShape

Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]
ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
Init = Literal[
    "default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "orthogonal"
]
INITS: tuple[str, ...] = (
    "default",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "orthogonal",
)

Width = Annotated[StrictInt, Field(ge=1, le=65536)]
ImageSide = Annotated[StrictInt, Field(ge=1, le=65536)]
Dropout = Annotated[StrictFloat, Field(ge=0.0, lt=1.0, description="Dropout probability.")]
InitField = Annotated[
    Init,
    Field(
        description="Weight initialisation; biases start at zero except with `default` "
        "(PyTorch's own)."
    ),
]


class ModelBase(SpecModel):
    init: InitField = "default"
    description: ClassVar[str] = ""

    def count_parameters(self, shape: DatasetShape) -> int:
        raise NotImplementedError

    def activation_values(self, shape: DatasetShape) -> int:
        """Values one sample's forward pass keeps for the backward pass: the input and
        every layer's output (the worker's exact layers; see ``workers/engine/models.py``)."""
        raise NotImplementedError


class LinearModel(ModelBase):
    kind: Literal["linear"]
    description: ClassVar[str] = (
        "One affine layer: linear regression, or (multinomial) logistic regression "
        "with a softmax cross-entropy loss."
    )

    def count_parameters(self, shape: DatasetShape) -> int:
        return (shape.n_features + 1) * shape.n_outputs

    def activation_values(self, shape: DatasetShape) -> int:
        return shape.n_features + shape.n_outputs


def _dense_parameters(n_in: int, hidden: list[int], n_out: int, batch_norm: bool) -> int:
    total, width = 0, n_in
    for h in hidden:
        total += (width + 1) * h + (2 * h if batch_norm else 0)
        width = h
    return total + (width + 1) * n_out


def _dense_activations(hidden: list[int], n_out: int, batch_norm: bool, dropout: float) -> int:
    """Per hidden width: the Linear, [BatchNorm], activation and [Dropout] outputs; then
    the output layer's."""
    per_width = 2 + int(batch_norm) + int(dropout > 0)
    return per_width * sum(hidden) + n_out


class MLPModel(ModelBase):
    kind: Literal["mlp"]
    hidden: list[Width] = Field(
        default_factory=lambda: [64], max_length=32, description="Widths of the hidden layers."
    )
    activation: Activation = "relu"
    batch_norm: StrictBool = Field(False, description="BatchNorm1d after each hidden linear layer.")
    dropout: Dropout = 0.0
    description: ClassVar[str] = (
        "Fully connected layers: Linear → [BatchNorm] → activation → [Dropout], per hidden layer."
    )

    def count_parameters(self, shape: DatasetShape) -> int:
        return _dense_parameters(shape.n_features, self.hidden, shape.n_outputs, self.batch_norm)

    def activation_values(self, shape: DatasetShape) -> int:
        dense = _dense_activations(self.hidden, shape.n_outputs, self.batch_norm, self.dropout)
        return shape.n_features + dense  # the batch itself, sliced out of the data


def cnn_feature_shape(
    input_shape: tuple[int, int, int], channels: list[int]
) -> tuple[int, int, int]:
    """Shape after the conv blocks: each keeps H×W ('same' padding), then halves it with a
    2×2 max-pool while both sides are at least 2."""
    _, h, w = input_shape
    for _ in channels:
        if h >= 2 and w >= 2:
            h, w = h // 2, w // 2
    return (channels[-1], h, w)


class CNNModel(ModelBase):
    kind: Literal["cnn"]
    channels: list[Annotated[StrictInt, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [16, 32],
        min_length=1,
        max_length=6,
        description="Output channels of each conv block (Conv → [BatchNorm] → act → MaxPool).",
    )
    kernel_size: StrictInt = Field(3, ge=1, le=7, description="Odd kernel size; 'same' padding.")
    hidden: list[Width] = Field(
        default_factory=lambda: [64], max_length=8, description="Fully connected widths."
    )
    activation: Activation = "relu"
    batch_norm: StrictBool = False
    dropout: Dropout = 0.0
    input_shape: tuple[ImageSide, ImageSide, ImageSide] | None = Field(
        None,
        description="(channels, height, width) of each sample; known for `digits`, "
        "required for other datasets.",
    )
    description: ClassVar[str] = (
        "A small conv net for image-shaped data (e.g. digits 8×8): conv blocks, then "
        "fully connected layers."
    )

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("kernel_size must be odd (1, 3, 5 or 7) so padding keeps the size")
        return v

    def resolve_input_shape(self, shape: DatasetShape) -> tuple[int, int, int] | None:
        return self.input_shape or shape.image_shape

    def count_parameters(self, shape: DatasetShape) -> int:
        input_shape = self.resolve_input_shape(shape)
        if input_shape is None:
            return 0
        total, c_in, k = 0, input_shape[0], self.kernel_size
        for c in self.channels:
            total += c_in * c * k * k + c + (2 * c if self.batch_norm else 0)
            c_in = c
        c, h, w = cnn_feature_shape(input_shape, self.channels)
        return total + _dense_parameters(c * h * w, self.hidden, shape.n_outputs, self.batch_norm)

    def activation_values(self, shape: DatasetShape) -> int:
        input_shape = self.resolve_input_shape(shape)
        if input_shape is None:
            return shape.n_features + shape.n_outputs
        total = math.prod(input_shape)
        per_map = 2 + int(self.batch_norm)  # Conv, [BatchNorm], activation
        _, h, w = input_shape
        for i, c in enumerate(self.channels):
            total += per_map * c * h * w
            _, h_out, w_out = cnn_feature_shape(input_shape, self.channels[: i + 1])
            if (h_out, w_out) != (h, w):
                total += c * h_out * w_out  # MaxPool
            h, w = h_out, w_out
        # Flatten is a view of the last map, so the dense layers add only their outputs.
        dense = _dense_activations(self.hidden, shape.n_outputs, self.batch_norm, self.dropout)
        return total + dense


ModelSpec = Annotated[LinearModel | MLPModel | CNNModel, Field(discriminator="kind")]
MODEL_KINDS: tuple[str, ...] = ("linear", "mlp", "cnn")
