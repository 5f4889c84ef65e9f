"""CUDA devices' utilisation and memory, read through NVML at scrape time.

NVML comes from ``nvidia-ml-py`` (the worker extra), imported on the first scrape; where
it is missing or finds no driver (a CPU machine), this collector reports nothing and
never tries again. NVML sees every device of the host, whatever ``CUDA_VISIBLE_DEVICES``
a worker process was given, so one collector covers them all.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

__all__ = ["CudaDevices"]

log = logging.getLogger(__name__)


class CudaDevices:
    """A collector: ``descent_cuda_utilization_ratio``, ``descent_cuda_memory_used_bytes``
    and ``descent_cuda_memory_total_bytes`` per device (labels ``device``, its index,
    and ``name``)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._state = "new"  # new → ready | absent
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._state == "new":
                try:
                    pynvml = importlib.import_module("pynvml")  # nvidia-ml-py, untyped
                    pynvml.nvmlInit()
                    self._nvml, self._state = pynvml, "ready"
                except Exception as exc:  # no package, no driver: a CPU machine
                    log.debug("metrics: no NVML (%s): CUDA device metrics are off", exc)
                    self._state = "absent"
            return self._nvml

    def collect(self) -> Iterable[Metric]:
        nvml = self._load()
        if nvml is None:
            return []
        labels = ["device", "name"]
        util = GaugeMetricFamily(
            "descent_cuda_utilization_ratio",
            "Share of the last sample period in which a kernel ran on the device (0-1).",
            labels=labels,
        )
        used = GaugeMetricFamily(
            "descent_cuda_memory_used_bytes", "Device memory in use.", labels=labels
        )
        total = GaugeMetricFamily(
            "descent_cuda_memory_total_bytes", "Device memory installed.", labels=labels
        )
        try:
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                name = nvml.nvmlDeviceGetName(handle)
                name = name.decode() if isinstance(name, bytes) else str(name)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                util.add_metric([str(i), name], rates.gpu / 100.0)
                used.add_metric([str(i), name], float(memory.used))
                total.add_metric([str(i), name], float(memory.total))
        except Exception as exc:  # a device fell off the bus: report what was read
            log.warning("metrics: NVML query failed: %s", exc)
        return [util, used, total]
