"""The files ``GET /v1/jobs/{id}/model`` answers with: the weights, the ONNX export, or
the whole bundle as a zip built here (no torch: the files are only read and packed).

A succeeded job's folder holds ``model.pt`` and, since bundles exist, ``model.onnx`` and
``model.json`` (service/spec/bundle.py). A job trained before bundles has ``model.pt``
only, and says so with ``has_bundle`` false.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.errors import Conflict, NotFound
from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.spec.bundle import MANIFEST, ONNX, WEIGHTS, ModelManifest
from service.text import safe_filename

ModelFormat = Literal["state_dict", "onnx", "bundle", "manifest"]

#: What the route's OpenAPI description says of each format.
FORMATS_DOC = (
    "`format=state_dict` (the default, as before bundles): `model.pt`, a PyTorch state "
    "dict; load it with `torch.load(path, weights_only=True)`. For regression jobs trained "
    'with `dataset.target_scaling: "standard"` (the default) it also holds `target_shift` '
    "and `target_scale`: pop them before `load_state_dict`, and predict with "
    "`model(x) * target_scale + target_shift`. "
    "`format=onnx`: `model.onnx`, the network with its preprocessing folded in: input "
    "`features` (float32, rows × n_features of raw values), output `probabilities` "
    "(classification) or `prediction` (regression, in the target's units). "
    "`format=bundle`: a zip of `model.json` (the manifest: architecture, input "
    "signature, fitted preprocessing, class labels, saved epoch), `model.pt`, "
    "`model.onnx` and a README; `descent.load_model` reads it. Jobs trained before "
    "bundles existed have `model.pt` only (`has_bundle` false): `onnx`, `bundle` and "
    "`manifest` answer 404 for them. `format=manifest`: `model.json` alone, as JSON (what a "
    "client reads to learn the features a model takes). See docs/models.md."
)

README = """\
A trained Descent model: job {job_id} ({job_name}).

  model.json  the manifest: model spec, input signature (feature names, order),
              preprocessing with its fitted values, class labels in output order,
              the epoch these weights come from and its metrics, versions.
  model.pt    the weights: a PyTorch state dict.
  model.onnx  the network with the preprocessing folded in: raw float32 features
              (input "features", rows x {n_features}) -> "{output}".

Load it in Python (needs torch):

    import descent
    model = descent.load_model("{zip_name}")
    model.predict(rows)          # raw rows -> labels / values in the target's units

Or with onnxruntime alone:

    import numpy as np, onnxruntime
    session = onnxruntime.InferenceSession("model.onnx")
    session.run(None, {{"features": np.asarray(rows, dtype=np.float32)}})

docs/models.md in Descent describes every field.
"""


@dataclass(frozen=True)
class ModelFile:
    path: Path
    media_type: str
    filename: str
    temporary: bool = False  # built for this request: delete it once sent


def locate(job: Job, jobs_dir: Path, fmt: ModelFormat) -> tuple[Path, str]:
    """The job's folder and the download's base name, after checking that ``fmt`` can be
    served: 409 unless it succeeded, 404 (naming why) when the files are not there."""
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(f"job {job.id} is {job.status}; weights are kept for succeeded jobs")
    folder = jobs_dir / job.id
    if not job.has_model or not (folder / WEIGHTS).is_file():
        raise NotFound(f"the weights of job {job.id} are missing from the artifact store")
    if fmt != "state_dict":
        if not job.has_bundle:
            raise NotFound(
                f"job {job.id} has no model bundle: it was trained before bundles existed "
                "(or its manifest could not be written), so it has model.pt only; download "
                "that with format=state_dict, or train the job again for a bundle"
            )
        if not (folder / MANIFEST).is_file():
            raise NotFound(f"the model.json of job {job.id} is missing from the artifact store")
    if fmt == "onnx" and not (folder / ONNX).is_file():
        manifest = ModelManifest.read((folder / MANIFEST).read_bytes())
        why = manifest.onnx_error or "model.onnx is missing from the artifact store"
        raise NotFound(
            f"job {job.id} has no ONNX export ({why}); its weights and manifest are "
            "complete: download format=bundle or format=state_dict"
        )
    return folder, f"{safe_filename(job.name)}-{job.id[:8]}"


def model_file(folder: Path, base: str, fmt: ModelFormat) -> ModelFile:
    """The file to send (a zip is built in a temporary file: blocking, run it in a
    thread)."""
    if fmt == "state_dict":
        return ModelFile(folder / WEIGHTS, "application/octet-stream", f"{base}.pt")
    if fmt == "onnx":
        return ModelFile(folder / ONNX, "application/octet-stream", f"{base}.onnx")
    if fmt == "manifest":
        return ModelFile(folder / MANIFEST, "application/json", f"{base}.json")
    return ModelFile(_zip(folder, f"{base}.zip"), "application/zip", f"{base}.zip", True)


def _zip(folder: Path, zip_name: str) -> Path:
    manifest = ModelManifest.read((folder / MANIFEST).read_bytes())
    readme = README.format(
        job_id=manifest.job_id,
        job_name=manifest.job_name,
        n_features=manifest.input.n_features,
        output=manifest.onnx.output if manifest.onnx else "(no ONNX export)",
        zip_name=zip_name,
    )
    fd, name = tempfile.mkstemp(prefix="descent-bundle-", suffix=".zip")
    try:
        # Stored, not deflated: weights barely compress, and the zip is built per request.
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
            for member in (MANIFEST, WEIGHTS, ONNX):
                if (folder / member).is_file():
                    zf.write(folder / member, member)
            zf.writestr("README.txt", readme)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
