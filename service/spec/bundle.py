"""A trained model's manifest (``model.json``): everything needed to use its weights.

A succeeded training job keeps, in ``<artifacts>/jobs/<id>/``:

- ``model.pt``: the weights, a PyTorch state dict (with ``target_shift``/``target_scale``
  for a regression job whose targets were standardised, as before bundles existed);
- ``model.onnx``: the same network with the preprocessing folded into the graph: it takes
  raw features (float32, ``(rows, n_features)``, input ``features``) and returns class
  probabilities (output ``probabilities``, ``(rows, n_classes)``) or predictions in the
  target's own units (output ``prediction``, ``(rows, 1)``);
- ``model.json``: this manifest.

The worker writes the manifest (``workers/engine/bundle.py``), the API reads it to check
and answer predictions without torch (``service/predict``), and ``descent.load_model``
rebuilds the network from it. Pydantic only: layer 1, like the rest of the job language.
A manifest from a newer ``format_version`` is refused rather than misread.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Bumped when a reader of an older version would misread a newer manifest.
FORMAT_VERSION = 1

MANIFEST, WEIGHTS, ONNX = "model.json", "model.pt", "model.onnx"
#: The ONNX graph's input, and its output by task.
ONNX_INPUT = "features"
ONNX_OUTPUT: dict[str, str] = {"classification": "probabilities", "regression": "prediction"}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSignature(_Frozen):
    """What one row of raw input is."""

    n_features: int = Field(ge=1)
    feature_names: list[str] = Field(
        description="In column order: a CSV upload's headers, scikit-learn's names for its "
        "bundled sets, `x0`, `x1`, … for generated data."
    )
    image_shape: tuple[int, int, int] | None = Field(
        None,
        description="(channels, height, width) of each flat row, row-major: the shape a CNN "
        "views it as, else the dataset's own image shape (digits); null for tabular data.",
    )
    dtype: Literal["float32"] = "float32"


class FeatureScaling(_Frozen):
    """``x' = (x − shift) / scale`` per feature, fitted on the training split."""

    step: Literal["feature_scaling"] = "feature_scaling"
    method: Literal["none", "standard", "minmax"]
    shift: list[float] = Field(description="Per feature: the mean (standard) or minimum.")
    scale: list[float] = Field(
        description="Per feature: the std (standard) or max − min; 1 where that was 0."
    )


class TargetScaling(_Frozen):
    """The network predicts ``(y − shift) / scale``; ``y = output · scale + shift``."""

    step: Literal["target_scaling"] = "target_scaling"
    method: Literal["none", "standard"]
    shift: float = 0.0
    scale: float = 1.0


class SavedWeights(_Frozen):
    """Which epoch's weights ``model.pt`` holds, and that epoch's metrics."""

    epoch: int = Field(ge=0)
    reason: Literal["last_epoch", "best_epoch"] = Field(
        description="`best_epoch`: early stopping's `restore_best_weights` put them back."
    )
    metrics: dict[str, float | None]


class OnnxExport(_Frozen):
    file: str = ONNX
    opset: int
    input: str = ONNX_INPUT
    output: str
    #: Checked at export: onnxruntime against PyTorch on the validation split's raw rows.
    max_abs_diff: float | None = None
    rows_checked: int = 0


class ModelManifest(_Frozen):
    format_version: int = FORMAT_VERSION
    job_id: str
    job_name: str
    task: Literal["classification", "regression"]
    #: The resolved model section of the spec (every default filled in).
    model: dict[str, Any]
    #: The whole job spec, as stored (``"auto"`` rates as the range test chose them).
    spec: dict[str, Any]
    input: InputSignature
    #: Applied in this order to a raw row before the network; target scaling after it.
    preprocessing: list[FeatureScaling]
    target_scaling: TargetScaling | None = None
    class_labels: list[str] | None = Field(
        None, description="Classification: the label of each output, in output order."
    )
    n_outputs: int = Field(ge=1)
    n_parameters: int = Field(ge=0)
    saved: SavedWeights
    weights: str = WEIGHTS
    onnx: OnnxExport | None = Field(
        None, description="The ONNX export; null when it failed (see `onnx_error`)."
    )
    onnx_error: str | None = Field(
        None, description="Why the ONNX export failed; the weights are good regardless."
    )
    versions: dict[str, str] = Field(description="descent, torch, onnx: what wrote it.")
    created_at: str = Field(description="ISO 8601, UTC.")

    @classmethod
    def read(cls, text: str | bytes) -> ModelManifest:
        """Parse a manifest; a newer ``format_version`` than this code knows is refused."""
        import json

        doc = json.loads(text)
        version = doc.get("format_version") if isinstance(doc, dict) else None
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"model.json has format_version {version!r}; this version of Descent reads "
                f"up to {FORMAT_VERSION}: upgrade descent"
            )
        return cls.model_validate(doc)
