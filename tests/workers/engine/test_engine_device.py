"""Telling out-of-memory errors apart from the rest, with the errors torch really raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.engine import is_out_of_memory

# More than any machine has, and more than a 64-bit process can even address, so the
# allocation fails whatever the kernel's overcommit policy.
IMPOSSIBLE_BYTES = 2**60


def raised_by(allocate) -> BaseException:  # noqa: ANN001
    with pytest.raises(BaseException) as caught:
        allocate()
    return caught.value


def test_a_failed_cpu_allocation_in_torch_is_out_of_memory() -> None:
    exc = raised_by(lambda: torch.empty(IMPOSSIBLE_BYTES, dtype=torch.uint8))
    assert isinstance(exc, RuntimeError)  # CPU torch has no class of its own for it
    assert "DefaultCPUAllocator: can't allocate memory" in str(exc)
    assert is_out_of_memory(exc)


def test_a_failed_allocation_in_numpy_is_out_of_memory() -> None:
    exc = raised_by(lambda: np.empty(IMPOSSIBLE_BYTES, dtype=np.uint8))
    assert isinstance(exc, MemoryError)
    assert is_out_of_memory(exc)


def test_torch_out_of_memory_error_is_out_of_memory() -> None:
    # The class torch raises when CUDA's caching allocator gives up.
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(MemoryError())
    # The allocator's message on Windows, and older torch's plain RuntimeError for CUDA.
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: not enough memory: you tried"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))


def test_other_errors_are_not_out_of_memory() -> None:
    shape_error = raised_by(lambda: torch.ones(2, 3) @ torch.ones(2, 3))
    assert isinstance(shape_error, RuntimeError)
    assert not is_out_of_memory(shape_error)
    assert not is_out_of_memory(ValueError("not enough memory"))  # only RuntimeErrors say it
    assert not is_out_of_memory(KeyboardInterrupt())
    assert not is_out_of_memory(RuntimeError("CUDA error: device-side assert triggered"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_failed_cuda_allocation_is_out_of_memory() -> None:
    exc = raised_by(lambda: torch.empty(IMPOSSIBLE_BYTES, dtype=torch.uint8, device="cuda"))
    assert isinstance(exc, torch.OutOfMemoryError)
    assert is_out_of_memory(exc)
