"""Loss landscapes of a finished job: the loss along the line from its initial to its
final weights, and on a 2-D grid around its final weights (Li et al., 2018,
"Visualizing the Loss Landscape of Neural Nets").

Every loss here is the one the job's ``val_loss`` came from: ``metrics.evaluate`` on the
data the job loaded (same split, same scaling), in eval mode (dropout off, batch norm
on its running statistics), in float64. So the centre of the grid, the final weights
themselves, is the job's final ``val_loss`` on split ``val``; on ``train`` it is the
same evaluation over the training split. Beside the loss, each point has the task's
quality metric: accuracy for classification, R² for regression (in the target's units).

- **1-D** (Goodfellow et al., 2015): θ(α) = (1−α)·θ_initial + α·θ_final. θ_initial is
  rebuilt with the training loop's own setup (``loop.initial_model``: the same seed, the
  same construction), so it is bit for bit what the job started from. Every
  floating-point entry of the state dict moves along the line, batch norm's running
  mean and variance included: at α = 0 and α = 1 the model is exactly the initial and
  the final one, and in between neither model's statistics are pretended to fit the
  other's weights.
- **2-D, random directions**: θ_final + x·δ + y·η. δ and η are Gaussian (seeded by
  ``seed``) and filter-wise normalised: for each weight tensor (≥ 2 dims), each filter
  (row of a linear layer's matrix, output channel of a convolution) is rescaled to the
  norm of the same filter of θ_final, so a step of 1 is the size of the weights
  themselves, layer by layer and filter by filter. Biases and batch norm's scale and
  shift (1-D) get zero, as the reference code's ``--xignore biasbn`` sets them (its
  default, ``--xignore ''``, perturbs them like the weights), and
  batch norm's running statistics stay those of the final weights (its code's
  ``dir_type='weights'``: buffers are not directions). Evaluation in eval mode then uses
  those statistics at every grid point.
- **2-D, PCA directions**: the first two principal components of the saved trajectory
  [θ_epoch − θ_final] over every parameter (biases and batch norm's included), centred
  as PCA is; their share of the trajectory's variance; each epoch's coordinates, its
  projection d·v (the final weights at (0, 0)), and each epoch's own loss (its whole
  state dict, running statistics included: the surface under a point differs from it
  by whatever the projection leaves out). The grid is symmetric about the final
  weights, reaching past the farthest epoch by ``PCA_MARGIN`` on each axis. Running
  statistics stay the final ones here too.

The grid is evaluated row by row (one y per row, every x), each row reported as
``report(row, {"row", "loss_min", "loss_max"}, None)`` (rows from 1) after a
``should_stop`` check. ``surface.loss[i][j]`` is the loss at (x[j], y[i]), the layout
matplotlib's ``contour(x, y, z)`` takes. The principal components come from the
trajectory's Gram matrix (epochs × epochs), so no epochs × parameters matrix is ever
built.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from service.spec import JobSpec
from service.spec.lab import Landscape
from service.spec.results import LandscapeRecord
from workers.engine.bundle import TARGET_KEYS
from workers.engine.data import SplitData, load_dataset
from workers.engine.device import resolve_device
from workers.engine.loop import initial_model
from workers.engine.metrics import evaluate
from workers.engine.report import Reporter

__all__ = ["PCA_MARGIN", "LandscapeResult", "filter_normalized", "landscape", "pca_directions"]

log = logging.getLogger(__name__)

#: With PCA directions the grid reaches this fraction past the farthest epoch.
PCA_MARGIN = 0.25
#: Largest block of a parameter tensor turned into float64 at once for the Gram matrix.
_CHUNK = 1 << 20

Tensors = list[torch.Tensor]


# -- directions ---------------------------------------------------------------------------


def filter_normalized(
    weights: Tensors, generator: torch.Generator, *, eps: float = 1e-10
) -> Tensors:
    """A Gaussian direction like ``weights`` (CPU float32 tensors), each filter (slice
    along dim 0) of each tensor of ≥ 2 dims rescaled to the norm of the same filter of
    ``weights``; zero for 1-D tensors (biases, batch norm)."""
    direction = []
    for w in weights:
        if w.dim() < 2:
            direction.append(torch.zeros_like(w))
            continue
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype)
        w_norm = w.reshape(len(w), -1).norm(dim=1)
        d_norm = d.reshape(len(d), -1).norm(dim=1)
        scale = w_norm / (d_norm + eps)
        direction.append(d * scale.reshape(-1, *([1] * (w.dim() - 1))))
    return direction


def _chunks(t: torch.Tensor) -> Iterator[slice]:
    n = t.numel()
    for lo in range(0, n, _CHUNK):
        yield slice(lo, min(lo + _CHUNK, n))


@dataclass
class PCA:
    directions: tuple[Tensors, Tensors]  # unit vectors, float32, like the parameters
    explained_variance: tuple[float, float]  # shares of the trajectory's variance
    coordinates: list[tuple[float, float]]  # each epoch's projection


def pca_directions(final: Tensors, snapshots: list[Tensors]) -> PCA:
    """The first two principal components of [θ_e − θ_final] over ``snapshots`` (each a
    list of CPU tensors like ``final``), their explained variance and each snapshot's
    coordinates (θ_e − θ_final)·v. Signs are chosen so the first snapshot lies at x ≤ 0
    and y ≤ 0.

    Works on the n × n Gram matrix G = D·Dᵀ of the differences D (n snapshots), in
    float64: centring C = I − 11ᵀ/n, C·G·C = U·Λ·Uᵀ; then v_k = Dᵀ·C·u_k / √λ_k (unit
    vectors) and the coordinates D·v_k = G·C·u_k / √λ_k.
    """
    n = len(snapshots)
    if n < 3:
        raise ValueError(f"pca directions need at least 3 saved epochs of the trajectory, not {n}")
    gram = torch.zeros(n, n, dtype=torch.float64)
    for k, f in enumerate(final):
        flat_f = f.reshape(-1)
        for part in _chunks(flat_f):
            d = torch.stack([s[k].reshape(-1)[part] for s in snapshots]).double()
            d -= flat_f[part].double()
            gram += d @ d.T
    centre = torch.eye(n, dtype=torch.float64) - 1.0 / n
    values, vectors = torch.linalg.eigh(centre @ gram @ centre)  # ascending
    total = float(values.clamp(min=0).sum())
    top = [n - 1, n - 2]
    if total <= 0 or float(values[top[1]]) <= 1e-12 * total:
        raise ValueError(
            "pca directions need a trajectory that moves in at least two directions; "
            "its saved weights barely differ"
        )
    coefficients, coordinates, shares = [], [], []
    for i in top:
        lam = float(values[i])
        c = centre @ vectors[:, i] / math.sqrt(lam)  # v = Dᵀ·c
        proj = gram @ c
        if proj[0] > 0:
            c, proj = -c, -proj
        coefficients.append(c)
        coordinates.append(proj)
        shares.append(lam / total)
    directions = []
    for c in coefficients:
        v = []
        for k, f in enumerate(final):
            acc = torch.zeros(f.shape, dtype=torch.float64)
            for e, s in enumerate(snapshots):
                acc += float(c[e]) * (s[k].double() - f.double())
            v.append(acc.to(f.dtype))
        directions.append(v)
    coords = [(float(coordinates[0][e]), float(coordinates[1][e])) for e in range(n)]
    return PCA((directions[0], directions[1]), (shares[0], shares[1]), coords)


# -- measuring ----------------------------------------------------------------------------


class _Probe:
    """The job's evaluation on one split, of whatever weights the model holds."""

    def __init__(self, model: nn.Module, data: SplitData, split: str) -> None:
        self.model = model
        self.data = data
        on_val = split == "val"
        self.x, self.y = (data.x_val, data.y_val) if on_val else (data.x_train, data.y_train)
        self.quality = "val_accuracy" if data.task == "classification" else "val_r2"
        self.params = [p for _, p in model.named_parameters()]

    def measure(self) -> tuple[float, float]:
        out = evaluate(
            self.model,
            self.x,
            self.y,
            self.data.task,
            target_shift=self.data.target_shift,
            target_scale=self.data.target_scale,
        )
        return out["val_loss"], out[self.quality]

    @torch.no_grad()
    def set_params(self, values: Tensors) -> None:
        for p, v in zip(self.params, values, strict=True):
            p.copy_(v)


def _state(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"{what} does not fit this job's model ({first})") from exc


# -- the result ---------------------------------------------------------------------------


def _json_float(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _json(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


@dataclass
class LandscapeResult:
    """What a landscape job measured; ``record`` is the job's result."""

    status: Literal["succeeded", "cancelled"]
    reason: str | None
    split: str
    metrics: dict[str, str]  # {"loss": "val_loss", "quality": "val_accuracy"}
    n_samples: int
    centre: dict[str, float]  # loss and quality at the final weights
    interpolation: dict[str, Any]
    surface: dict[str, Any]  # x, y, loss[i][j] at (x[j], y[i]), quality likewise
    directions: dict[str, Any]
    explained_variance: list[float] | None = None
    trajectory: dict[str, list[Any]] | None = None
    device: str = "cpu"
    seconds: float = 0.0
    source_job: str | None = None

    def record(self) -> LandscapeRecord:
        """The job's result, each non-finite measurement as null."""
        found = _json(
            {
                "status": self.status,
                "reason": self.reason,
                "source_job": self.source_job,
                "split": self.split,
                "n_samples": self.n_samples,
                "metrics": self.metrics,
                "centre": self.centre,
                "interpolation": self.interpolation,
                "surface": self.surface,
                "directions": self.directions,
                "explained_variance": self.explained_variance,
                "trajectory": self.trajectory,
                "device": self.device,
                "seconds": round(self.seconds, 3),
            }
        )
        return LandscapeRecord.model_validate(found)


# -- the job ------------------------------------------------------------------------------


def _axis(extent: float, resolution: int) -> list[float]:
    """``resolution`` points over −extent…extent, the middle one exactly 0."""
    c = (resolution - 1) // 2
    return [extent * (j - c) / c for j in range(resolution)]


def _interpolate(
    model: nn.Module,
    probe: _Probe,
    initial: dict[str, torch.Tensor],
    final: dict[str, torch.Tensor],
    alphas: list[float],
) -> list[tuple[float, float]]:
    live = model.state_dict()  # the model's own tensors: writing them moves the model
    moving = [k for k, v in live.items() if v.is_floating_point()]
    out = []
    with torch.no_grad():
        for k, v in live.items():
            if not v.is_floating_point():
                v.copy_(final[k])  # batch norm's step counter: unused in eval mode
        for a in alphas:
            for k in moving:
                live[k].copy_((1.0 - a) * initial[k] + a * final[k])
            out.append(probe.measure())
    return out


def landscape(
    spec: JobSpec,
    *,
    final_state: dict[str, torch.Tensor],
    trajectory: list[tuple[int, dict[str, torch.Tensor]]] | None,
    datasets_dir: Path,
    device: str | None = None,
    reporter: Reporter | None = None,
) -> LandscapeResult:
    """The landscape ``spec.landscape`` asks for, of the job whose dataset, model,
    optimizer, regularization and training sections ``spec`` carries.

    ``final_state`` is the job's saved model (``TARGET_KEYS`` are ignored);
    ``trajectory`` its saved epochs (``loop.load_trajectory``), needed for ``directions:
    pca``. ``device`` overrides ``spec.training.device``. Each grid row is reported
    (see the module's docstring); ``should_stop`` before each row ends the job as
    ``cancelled`` with the rows done so far (the rest null). Raises ``ValueError`` when
    the weights do not fit the model or the trajectory cannot give PCA directions.
    """
    settings: Landscape | None = spec.landscape
    if settings is None:
        raise ValueError("a landscape job needs its `landscape` settings")
    clock = time.perf_counter()
    dev = resolve_device(device or spec.training.device)
    data = load_dataset(spec.dataset, datasets_dir=datasets_dir, device=dev)
    model, _ = initial_model(spec, data, dev)
    model.eval()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    final_cpu = {k: v for k, v in final_state.items() if k not in TARGET_KEYS}
    _state(model, final_cpu, "the job's saved model")
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}  # on dev
    probe = _Probe(model, data, settings.split)
    names = [name for name, _ in model.named_parameters()]
    final_params = [final[name] for name in names]
    quality_name = probe.quality.removeprefix("val_")
    metrics = {"loss": f"{settings.split}_loss", "quality": f"{settings.split}_{quality_name}"}
    n_samples = len(probe.y)

    centre_loss, centre_quality = probe.measure()
    centre = {"loss": centre_loss, "quality": centre_quality}

    # -- 1-D: initial → final ------------------------------------------------------------
    ip = settings.interpolation
    n = ip.points
    alphas = [ip.alpha_min + (ip.alpha_max - ip.alpha_min) * i / (n - 1) for i in range(n)]
    line = _interpolate(model, probe, initial, final, [*alphas, 0.0, 1.0])
    interpolation = {
        "alpha": alphas,
        "loss": [loss for loss, _ in line[:n]],
        "quality": [q for _, q in line[:n]],
        "initial": {"loss": line[n][0], "quality": line[n][1]},
        "final": {"loss": line[n + 1][0], "quality": line[n + 1][1]},
    }
    _state(model, final, "the job's saved model")

    # -- 2-D: the directions -----------------------------------------------------------
    res = settings.resolution
    explained: list[float] | None = None
    path: dict[str, list[Any]] | None = None
    final_cpu_params = [t.detach().cpu() for t in final_params]
    if settings.directions == "random":
        gen = torch.Generator().manual_seed(settings.seed)
        d1 = filter_normalized(final_cpu_params, gen)
        d2 = filter_normalized(final_cpu_params, gen)
        xs, ys = _axis(settings.span, res), _axis(settings.span, res)
        directions: dict[str, Any] = {
            "kind": "random",
            "seed": settings.seed,
            "normalization": "filter",
            "span": settings.span,
            "zeroed": "biases and batch-norm parameters (1-D)",
        }
    else:
        if not trajectory:
            raise ValueError(
                "directions pca needs the job's trajectory: train it with "
                "training.save_trajectory true"
            )
        epochs = [e for e, _ in trajectory]
        snapshots = []
        for e, state in trajectory:
            missing = [name for name in names if name not in state]
            if missing:
                raise ValueError(f"the trajectory's epoch {e} lacks {', '.join(missing[:3])}")
            pairs = zip(names, final_cpu_params, strict=True)
            snapshots.append([state[name].detach().cpu().to(f.dtype) for name, f in pairs])
        pca = pca_directions(final_cpu_params, snapshots)
        d1, d2 = pca.directions
        explained = list(pca.explained_variance)
        reach_x = max(abs(x) for x, _ in pca.coordinates)
        reach_y = max(abs(y) for _, y in pca.coordinates)
        reach_y = reach_y or reach_x
        xs = _axis(reach_x * (1 + PCA_MARGIN), res)
        ys = _axis(reach_y * (1 + PCA_MARGIN), res)
        directions = {"kind": "pca", "epochs": epochs, "margin": PCA_MARGIN}
        losses = []
        for _, state in trajectory:
            _state(model, {k: v for k, v in state.items() if k not in TARGET_KEYS}, "an epoch")
            losses.append(probe.measure()[0])
        _state(model, final, "the job's saved model")
        path = {
            "epochs": epochs,
            "x": [x for x, _ in pca.coordinates],
            "y": [y for _, y in pca.coordinates],
            "loss": losses,
        }

    # -- 2-D: the grid ----------------------------------------------------------------
    d1 = [t.to(dev) for t in d1]
    d2 = [t.to(dev) for t in d2]
    loss_grid: list[list[float | None]] = [[None] * res for _ in range(res)]
    quality_grid: list[list[float | None]] = [[None] * res for _ in range(res)]
    status: Literal["succeeded", "cancelled"] = "succeeded"
    reason = None
    with torch.no_grad():
        for i, y in enumerate(ys):
            if reporter is not None and reporter.should_stop():
                status, reason = "cancelled", f"cancelled by request after {i} of {res} rows"
                break
            row_base = [f + y * b for f, b in zip(final_params, d2, strict=True)]
            for j, x in enumerate(xs):
                probe.set_params([r + x * a for r, a in zip(row_base, d1, strict=True)])
                loss_grid[i][j], quality_grid[i][j] = probe.measure()
            finite = [v for v in loss_grid[i] if v is not None and math.isfinite(v)]
            row_metrics = {
                "row": float(i + 1),
                "loss_min": min(finite, default=math.nan),
                "loss_max": max(finite, default=math.nan),
            }
            if reporter is not None:
                reporter.report(i + 1, row_metrics, None)
    _state(model, final, "the job's saved model")

    seconds = time.perf_counter() - clock
    log.info("landscape: %d×%d grid on %s in %.2f s", res, res, dev, seconds)
    return LandscapeResult(
        status=status,
        reason=reason,
        split=settings.split,
        metrics=metrics,
        n_samples=n_samples,
        centre=centre,
        interpolation=interpolation,
        surface={"x": xs, "y": ys, "loss": loss_grid, "quality": quality_grid},
        directions=directions,
        explained_variance=explained,
        trajectory=path,
        device=str(dev),
        seconds=seconds,
        source_job=settings.job_id,
    )
