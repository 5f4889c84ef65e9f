"""Which device a job trains on."""

from __future__ import annotations

import torch


class DeviceUnavailable(RuntimeError):
    """The job asked for a device this worker does not have."""


def resolve_device(requested: str) -> torch.device:
    """``auto`` → the GPU when there is one, else the CPU; ``cuda`` only where CUDA works."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f'training.device is "{requested}" but this worker has no CUDA device '
            '(torch.cuda.is_available() is False); use "auto" or "cpu"'
        )
    return torch.device(requested)


# What CPU allocators say when malloc fails: c10's DefaultCPUAllocator on Linux/macOS
# ("can't allocate memory") and on Windows ("not enough memory"). Older torch raised
# CUDA and MPS exhaustion as plain RuntimeErrors too.
_OUT_OF_MEMORY_MESSAGES = (
    "DefaultCPUAllocator: can't allocate memory",
    "not enough memory",
    "CUDA out of memory",
    "MPS backend out of memory",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device or the host ran out of memory.

    Recognises ``torch.OutOfMemoryError`` (CUDA), Python's ``MemoryError`` (numpy's
    allocation failures derive from it) and the RuntimeError torch raises when a CPU
    allocation fails. Retrying such a job on the same worker would fail the same way.
    """
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OUT_OF_MEMORY_MESSAGES)
