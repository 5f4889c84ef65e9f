"""Model architectures, and their parameter counts computed without torch.

The worker builds exactly the layers described here; a worker test checks that
``count_parameters`` equals the built module's parameter count.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

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

Width = Annotated[int, Field(ge=1, le=65536)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0, description="Dropout probability.")]
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


class LinearModel(ModelBase):
    kind: Literal["linear"]
    description: ClassVar[str] = (
        "One affine layer: linear regression, or (multinomial) logistic regression "
        "with a softmax cross-entropy loss."
    )

    def count_parameters(self, shape: DatasetShape) -> int:
        return (shape.n_features + 1) * shape.n_outputs


def _dense_parameters(n_in: int, hidden: list[int], n_out: int, batch_norm: bool) -> int:
    total, width = 0, n_in
    for h in hidden:
        total += (width + 1) * h + (2 * h if batch_norm else 0)
        width = h
    return total + (width + 1) * n_out


class MLPModel(ModelBase):
    kind: Literal["mlp"]
    hidden: list[Width] = Field(
        default_factory=lambda: [64], max_length=32, description="Widths of the hidden layers."
    )
    activation: Activation = "relu"
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden linear layer.")
    dropout: Dropout = 0.0
    description: ClassVar[str] = (
        "Fully connected layers: Linear → [BatchNorm] → activation → [Dropout], per hidden layer."
    )

    def count_parameters(self, shape: DatasetShape) -> int:
        return _dense_parameters(shape.n_features, self.hidden, shape.n_outputs, self.batch_norm)


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
    channels: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [16, 32],
        min_length=1,
        max_length=6,
        description="Output channels of each conv block (Conv → [BatchNorm] → act → MaxPool).",
    )
    kernel_size: int = Field(3, ge=1, le=7, description="Odd kernel size; 'same' padding.")
    hidden: list[Width] = Field(
        default_factory=lambda: [64], max_length=8, description="Fully connected widths."
    )
    activation: Activation = "relu"
    batch_norm: bool = False
    dropout: Dropout = 0.0
    input_shape: tuple[int, int, int] | None = Field(
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

    @field_validator("input_shape")
    @classmethod
    def _positive(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and min(v) < 1:
            raise ValueError("every dimension of input_shape must be at least 1")
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


ModelSpec = Annotated[LinearModel | MLPModel | CNNModel, Field(discriminator="kind")]
MODEL_KINDS: tuple[str, ...] = ("linear", "mlp", "cnn")
