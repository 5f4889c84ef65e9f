"""How the training loop talks to whoever runs it: one report per epoch, a cancel flag.

The loop knows nothing about SQL, Celery or pub/sub; the worker hands it a
``Reporter`` that writes the metrics where they belong and says when the user asked
to stop. Tests hand it a ``ListReporter``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Reporter(Protocol):
    """Receives each epoch's metrics and answers whether training should stop.

    ``report`` is called once per completed epoch (epochs are 1-based), after the
    epoch's validation and before the next epoch starts, so a metric is durable by the
    time the next one is computed. ``should_stop`` is called at every batch boundary,
    thousands of times a second for small models: an implementation that asks a
    database must throttle itself (answer from memory between polls).
    """

    def report(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def should_stop(self) -> bool: ...


@dataclass
class ListReporter:
    """Keeps every report in memory; asks to stop once ``stop_after_epoch`` epochs are in."""

    stop_after_epoch: int | None = None
    reports: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    stop_checks: int = 0

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        self.reports.append((epoch, dict(metrics)))

    def should_stop(self) -> bool:
        self.stop_checks += 1
        return self.stop_after_epoch is not None and len(self.reports) >= self.stop_after_epoch

    @property
    def history(self) -> list[dict[str, float]]:
        """The reported metrics, oldest first."""
        return [metrics for _, metrics in self.reports]
