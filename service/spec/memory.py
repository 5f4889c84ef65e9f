"""How much memory a job needs on its device, estimated from the spec alone (no torch).

The API refuses a job whose estimate is above the server's cap (``Limits.max_memory_bytes``)
before a worker ever sees it. The estimate counts what the training loop keeps on the
device, all float32 (4 bytes) but the int64 class labels:

- the weights, their gradients, the optimizer's state (``state_slots`` tensors the size of
  the weights: Adam's two moments, SGD's momentum buffer, …) and, when early stopping
  restores the best epoch's weights, a copy of those;
- the whole dataset (the loop keeps it on the device and indexes batches out of it);
- the activations of one training batch: each layer's output per sample
  (``activation_values``), kept for the backward pass, which needs as much again for the
  gradients flowing back through them.

It is an estimate: allocator overhead, the CUDA context and temporary buffers come on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.spec.datasets import DatasetShape
from service.spec.training import JobSpec

#: float32
VALUE_BYTES = 4
#: int64 class indices (classification targets)
LABEL_BYTES = 8


@dataclass(frozen=True)
class MemoryEstimate:
    """The parts of :func:`estimate_memory_bytes`, in bytes."""

    parameters: int
    """weights, gradients, optimizer state and a best-weights copy"""
    data: int
    """the dataset's features and targets"""
    activations: int
    """one training batch through the model, forward and backward"""

    @property
    def total(self) -> int:
        return self.parameters + self.data + self.activations


def parameter_copies(spec: JobSpec) -> int:
    """Tensors the size of the weights that training keeps: the weights, their gradients,
    the optimizer's state, and the best weights when early stopping restores them."""
    es = spec.regularization.early_stopping
    best = 1 if es is not None and es.restore_best_weights else 0
    return 2 + spec.optimizer.state_slots + best


def estimate_memory(spec: JobSpec, shape: DatasetShape) -> MemoryEstimate:
    """The parts of the memory ``spec`` needs to train on a dataset of ``shape``."""
    n_params = spec.model.count_parameters(shape)
    target_bytes = LABEL_BYTES if shape.task == "classification" else VALUE_BYTES
    data = shape.n_samples * (shape.n_features * VALUE_BYTES + target_bytes)
    n_train, _ = spec.dataset.split_sizes(shape.n_samples)
    batch = min(spec.training.resolve_batch_size(n_train), max(n_train, 1))
    activations = 2 * batch * spec.model.activation_values(shape) * VALUE_BYTES
    return MemoryEstimate(
        parameters=n_params * parameter_copies(spec) * VALUE_BYTES,
        data=data,
        activations=activations,
    )


def estimate_memory_bytes(spec: JobSpec, shape: DatasetShape) -> int:
    """Bytes ``spec`` needs on its device to train on a dataset of ``shape`` (an estimate)."""
    return estimate_memory(spec, shape).total
