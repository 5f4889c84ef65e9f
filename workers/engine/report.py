"""How the training loop talks to whoever runs it: one report per epoch, a cancel flag.

The loop knows nothing about SQL, Celery or pub/sub; the worker hands it a
``Reporter`` that writes the metrics and the checkpoint where they belong and says when
the user asked to stop. Tests hand it a ``ListReporter``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from workers.engine.checkpoint import Checkpoint


class StopTraining(Exception):
    """Raised by a reporter to end the run at once, e.g. when its lease was taken over.

    ``train`` lets it propagate unchanged: no result, no model saved, nothing more
    reported. Whoever raised it knows why and what to record.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PruneTrial(Exception):
    """Raised by a reporter's ``report`` to end the run as ``pruned`` after this epoch: a
    sweep's pruner judged it worse than its peers.

    Raise it only once the epoch's report is durable (its metrics and checkpoint
    recorded): ``train`` catches it and returns the outcome ``pruned`` with ``reason``,
    the weights unsaved. Only training is pruned; the lab's job kinds let it propagate.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Reporter(Protocol):
    """Receives each epoch's metrics and checkpoint, and answers whether to stop.

    ``report`` is called once per completed epoch (epochs are 1-based), after the
    epoch's validation and before the next epoch starts, so a metric is durable by the
    time the next one is computed. ``checkpoint`` is the state after that epoch (its
    ``metrics`` are the same values); resuming from it continues at ``epoch + 1``, so
    the reporter should make the metrics and the checkpoint durable together. The lab's
    job kinds report rows that have no checkpoint (``None``): a range test one per step,
    a landscape one per row of its grid, numbered from 1 in the ``epoch`` argument.
    ``report`` may raise ``PruneTrial`` once the epoch is recorded — a sweep's pruner
    judged it worse than its peers — and the run then ends as ``pruned``.
    ``should_stop`` is called at every batch boundary, thousands of times a second for
    small models: an implementation that asks a database must throttle itself (answer
    from memory between polls). Either may raise ``StopTraining`` to end the run now.
    """

    def report(
        self, epoch: int, metrics: dict[str, float], checkpoint: Checkpoint | None
    ) -> None: ...

    def should_stop(self) -> bool: ...


@dataclass
class ListReporter:
    """Keeps every report and checkpoint in memory (``None`` for the lab's rows); asks to
    stop once ``stop_after_epoch`` reports are in."""

    stop_after_epoch: int | None = None
    reports: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    checkpoints: list[Checkpoint | None] = field(default_factory=list)
    stop_checks: int = 0

    #: end the run as pruned after this epoch (``PruneTrial``, once it is kept)
    prune_after_epoch: int | None = None

    def report(self, epoch: int, metrics: dict[str, float], checkpoint: Checkpoint | None) -> None:
        self.reports.append((epoch, dict(metrics)))
        self.checkpoints.append(checkpoint)
        if self.prune_after_epoch is not None and epoch >= self.prune_after_epoch:
            raise PruneTrial(f"pruned after epoch {epoch}")

    def should_stop(self) -> bool:
        self.stop_checks += 1
        return self.stop_after_epoch is not None and len(self.reports) >= self.stop_after_epoch

    @property
    def history(self) -> list[dict[str, float]]:
        """The reported metrics, oldest first."""
        return [metrics for _, metrics in self.reports]
