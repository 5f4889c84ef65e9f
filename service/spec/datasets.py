"""Datasets a job can train on: scikit-learn's bundled sets, synthetic generators, uploads.

The API must know each dataset's shape without loading it (to check batch sizes,
model sizes and image shapes before a job is queued), so the built-ins' shapes
live here as data; a worker test checks them against the real files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictFloat, StrictInt

from service.spec.common import SpecModel, Task

Scaling = Literal["none", "standard", "minmax"]
SCALINGS: tuple[str, ...] = ("none", "standard", "minmax")
TargetScaling = Literal["none", "standard"]


@dataclass(frozen=True)
class DatasetShape:
    """What the API needs to know about a dataset to validate a job against it."""

    n_samples: int
    n_features: int
    task: Task
    n_classes: int | None = None  # classification only
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width)

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "classification" and self.n_classes else 1


class DatasetBase(SpecModel):
    val_fraction: StrictFloat = Field(
        0.2, gt=0.0, lt=1.0, description="Share of samples held out for validation."
    )
    scaling: Scaling = Field(
        "standard", description="Feature scaling, fitted on the training split only."
    )
    target_scaling: TargetScaling = Field(
        "standard",
        description=(
            "Regression only: standardise the target with the training split's mean and "
            "std (metrics other than train_loss/val_loss stay in the target's units); "
            "ignored for classification."
        ),
    )
    split_seed: StrictInt = Field(0, ge=0, le=2**32 - 1, description="Seed of the train/val split.")

    description: ClassVar[str] = ""

    def split_sizes(self, n_samples: int) -> tuple[int, int]:
        """(train, val) sample counts; the worker splits with exactly these sizes."""
        n_val = max(1, round(n_samples * self.val_fraction))
        return n_samples - n_val, n_val


class BuiltinDataset(DatasetBase):
    shape: ClassVar[DatasetShape]

    def known_shape(self) -> DatasetShape:
        return self.shape


class DigitsDataset(BuiltinDataset):
    """8x8 grey-scale images of hand-written digits (scikit-learn's bundled copy of UCI)."""

    name: Literal["digits"]
    description: ClassVar[str] = "Hand-written digits, 8x8 images, 10 classes."
    shape: ClassVar[DatasetShape] = DatasetShape(1797, 64, "classification", 10, (1, 8, 8))


class IrisDataset(BuiltinDataset):
    name: Literal["iris"]
    description: ClassVar[str] = "Fisher's iris flowers, 4 measurements, 3 species."
    shape: ClassVar[DatasetShape] = DatasetShape(150, 4, "classification", 3)


class WineDataset(BuiltinDataset):
    name: Literal["wine"]
    description: ClassVar[str] = "Chemical analysis of wines from 3 cultivars, 13 features."
    shape: ClassVar[DatasetShape] = DatasetShape(178, 13, "classification", 3)


class BreastCancerDataset(BuiltinDataset):
    name: Literal["breast_cancer"]
    description: ClassVar[str] = "Wisconsin diagnostic breast cancer, 30 features, 2 classes."
    shape: ClassVar[DatasetShape] = DatasetShape(569, 30, "classification", 2)


class DiabetesDataset(BuiltinDataset):
    name: Literal["diabetes"]
    description: ClassVar[str] = "Diabetes progression after one year (regression), 10 features."
    shape: ClassVar[DatasetShape] = DatasetShape(442, 10, "regression")


NSamples = Annotated[
    StrictInt,
    Field(ge=10, le=10**9, description="Number of samples to generate (capped by the server)."),
]
Noise = Annotated[StrictFloat, Field(ge=0.0, le=10.0, description="Standard deviation of noise.")]
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1, description="Seed of the generator.")]


class SyntheticDataset(DatasetBase):
    n_samples: NSamples = 1000
    noise: Noise = 0.1
    seed: Seed = 0

    def known_shape(self) -> DatasetShape:
        raise NotImplementedError


class MoonsDataset(SyntheticDataset):
    name: Literal["moons"]
    description: ClassVar[str] = "Two interleaving half circles, 2 features, 2 classes."

    def known_shape(self) -> DatasetShape:
        return DatasetShape(self.n_samples, 2, "classification", 2)


class CirclesDataset(SyntheticDataset):
    name: Literal["circles"]
    noise: Noise = 0.05
    factor: StrictFloat = Field(0.5, gt=0.0, lt=1.0, description="Inner circle radius / outer.")
    description: ClassVar[str] = "A small circle inside a large one, 2 features, 2 classes."

    def known_shape(self) -> DatasetShape:
        return DatasetShape(self.n_samples, 2, "classification", 2)


class SpiralsDataset(SyntheticDataset):
    name: Literal["spirals"]
    noise: Noise = 0.2
    n_classes: StrictInt = Field(2, ge=2, le=10, description="Number of interleaved spiral arms.")
    turns: StrictFloat = Field(1.5, gt=0.0, le=5.0, description="Turns each arm makes.")
    description: ClassVar[str] = "Interleaved spiral arms, 2 features, one class per arm."

    def known_shape(self) -> DatasetShape:
        return DatasetShape(self.n_samples, 2, "classification", self.n_classes)


class BlobsDataset(SyntheticDataset):
    name: Literal["blobs"]
    noise: Noise = 1.0
    n_features: StrictInt = Field(2, ge=1, le=1000, description="Dimension of each sample.")
    centers: StrictInt = Field(3, ge=2, le=100, description="Number of Gaussian blobs (classes).")
    description: ClassVar[str] = (
        "Isotropic Gaussian blobs, one class each; noise is the blobs' standard deviation."
    )

    def known_shape(self) -> DatasetShape:
        return DatasetShape(self.n_samples, self.n_features, "classification", self.centers)


class XorDataset(SyntheticDataset):
    name: Literal["xor"]
    noise: Noise = 0.1
    description: ClassVar[str] = (
        "Points in the four quadrants, labelled by the sign of x*y: not linearly separable."
    )

    def known_shape(self) -> DatasetShape:
        return DatasetShape(self.n_samples, 2, "classification", 2)


class LinearRegressionDataset(SyntheticDataset):
    name: Literal["linear_regression"]
    n_features: StrictInt = Field(5, ge=1, le=1000, description="Number of input features.")
    noise: Noise = 0.1
    description: ClassVar[str] = "y = X w + b + noise with random w (a regression task)."

    def known_shape(self) -> DatasetShape:
        return DatasetShape(self.n_samples, self.n_features, "regression")


class UploadedDataset(DatasetBase):
    """A CSV uploaded through ``POST /v1/datasets``, referenced by its id."""

    name: Literal["uploaded"]
    id: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Id from POST /v1/datasets.",
    )
    description: ClassVar[str] = "A dataset uploaded through POST /v1/datasets, by id."


DatasetSpec = Annotated[
    DigitsDataset
    | IrisDataset
    | WineDataset
    | BreastCancerDataset
    | DiabetesDataset
    | MoonsDataset
    | CirclesDataset
    | SpiralsDataset
    | BlobsDataset
    | XorDataset
    | LinearRegressionDataset
    | UploadedDataset,
    Field(discriminator="name"),
]

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "iris", "wine", "breast_cancer", "diabetes")
SYNTHETIC_DATASETS: tuple[str, ...] = (
    "moons",
    "circles",
    "spirals",
    "blobs",
    "xor",
    "linear_regression",
)
DATASET_NAMES: tuple[str, ...] = (*BUILTIN_DATASETS, *SYNTHETIC_DATASETS, "uploaded")
