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
