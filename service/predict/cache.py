"""Trained models loaded for predictions: an onnxruntime session per job, kept in a
bounded least-recently-used cache.

Loading a bundle (reading ``model.json``, building the onnxruntime session) costs tens
of milliseconds; running it on a few rows, tens of microseconds. So each job's model is
loaded once and kept, up to ``capacity`` models per API process; the least recently used
one is dropped to make room.

A bundle never changes once its job has succeeded, but the key still holds the
manifest's modification time and size (the manifest is written last, and names the ONNX
file): a bundle written again (a re-export) is loaded again rather than served stale.

Thread safety: :meth:`ModelCache.get` is called from request threads at once. A hit
takes the cache's lock only to look up and reorder; a miss loads outside it, under a
second lock, so two requests for the same new model load it once, and hits on other
models never wait for a load. onnxruntime's ``InferenceSession.run`` may be called from
several threads at once. onnxruntime is imported on the first load, not with the API.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import Conflict, NotFound
from service.spec.bundle import MANIFEST, ONNX_INPUT, ONNX_OUTPUT, ModelManifest

__all__ = ["CacheStats", "LoadedModel", "ModelCache"]


@dataclass(frozen=True)
class LoadedModel:
    """One job's model, ready to run: the session and what the manifest says of it."""

    job_id: str
    manifest: ModelManifest
    session: Any  # onnxruntime.InferenceSession
    output: str

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest.input.feature_names)

    @property
    def n_features(self) -> int:
        return self.manifest.input.n_features

    @property
    def labels(self) -> list[str] | None:
        return None if self.manifest.class_labels is None else list(self.manifest.class_labels)

    def run(self, features: Any) -> Any:
        """The model's output for float32 ``features`` of shape (rows, n_features)."""
        return self.session.run([self.output], {ONNX_INPUT: features})[0]


@dataclass(frozen=True)
class CacheStats:
    """What the cache has done since the process started (tests read it)."""

    size: int
    capacity: int
    hits: int
    loads: int
    evictions: int


Key = tuple[str, int, int]


class ModelCache:
    """At most ``capacity`` loaded models; see the module docstring."""

    def __init__(self, capacity: int, *, threads: int = 1) -> None:
        if capacity < 1:
            raise ValueError("a model cache holds at least one model")
        self.capacity = capacity
        self.threads = threads
        self._models: OrderedDict[Key, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # guards _models and the counters
        self._loading = threading.Lock()  # one load at a time
        self._hits = self._loads = self._evictions = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                len(self._models), self.capacity, self._hits, self._loads, self._evictions
            )

    def get(self, job_id: str, folder: Path) -> LoadedModel:
        """The model of ``job_id`` whose bundle is in ``folder``, loaded if need be.

        Raises :class:`NotFound` when the bundle's files are missing, :class:`Conflict`
        when they cannot be read as a bundle this version of Descent serves.
        """
        key = self._key(job_id, folder)
        found = self._lookup(key)
        if found is not None:
            return found
        with self._loading:
            found = self._lookup(key)  # loaded by another request meanwhile
            if found is not None:
                return found
            model = _load(job_id, folder, threads=self.threads)
            with self._lock:
                self._loads += 1
                # Versions of this job's bundle under older keys will never be asked for.
                for stale in [k for k in self._models if k[0] == job_id]:
                    del self._models[stale]
                self._models[key] = model
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
                    self._evictions += 1
            return model

    def _lookup(self, key: Key) -> LoadedModel | None:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                self._hits += 1
            return model

    @staticmethod
    def _key(job_id: str, folder: Path) -> Key:
        try:
            stat = (folder / MANIFEST).stat()
        except OSError:
            raise _missing(job_id) from None
        return job_id, stat.st_mtime_ns, stat.st_size


def _missing(job_id: str) -> NotFound:
    return NotFound(f"the model files of job {job_id} are missing from the artifact store")


def _unreadable(job_id: str, why: str) -> Conflict:
    return Conflict(
        f"the model bundle of job {job_id} cannot be served: {why}", code="bundle_unreadable"
    )


def _load(job_id: str, folder: Path, *, threads: int) -> LoadedModel:
    try:
        text = (folder / MANIFEST).read_bytes()
    except OSError:
        raise _missing(job_id) from None
    try:
        manifest = ModelManifest.read(text)
    except ValueError as exc:  # pydantic's ValidationError is one; so is a newer version
        first = str(exc).splitlines()[0]
        raise _unreadable(job_id, f"{MANIFEST}: {first}") from None
    if manifest.onnx is None:
        raise _unreadable(job_id, f"{MANIFEST} names no ONNX export")
    if Path(manifest.onnx.file).name != manifest.onnx.file:
        raise _unreadable(job_id, f"{MANIFEST} names an ONNX file outside its folder")
    output = ONNX_OUTPUT[manifest.task]
    import onnxruntime  # untyped: pyproject lets mypy pass it by

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: a served model's warnings are not news
    path = folder / manifest.onnx.file
    if not path.is_file():
        raise _missing(job_id)
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise _unreadable(job_id, f"{manifest.onnx.file}: {exc}") from None
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if ONNX_INPUT not in inputs or output not in outputs:
        raise _unreadable(
            job_id, f"the ONNX graph has no input {ONNX_INPUT!r} or no output {output!r}"
        )
    width = inputs[ONNX_INPUT].shape[-1] if inputs[ONNX_INPUT].shape else None
    if isinstance(width, int) and width != manifest.input.n_features:
        raise _unreadable(
            job_id,
            f"the ONNX graph takes {width} features, {MANIFEST} says {manifest.input.n_features}",
        )
    return LoadedModel(job_id=job_id, manifest=manifest, session=session, output=output)
