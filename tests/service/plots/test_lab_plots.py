"""The lab's plots on plain result dicts (what the engine stores), as PNG and SVG: the
range test with its suggestions, the interpolation, the contour map and the 3-D surface."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
from typing import Any

import pytest
from PIL import Image

from service.plots import lab

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORMATS = ["png", "svg"]


def svg_ids(svg: bytes) -> list[str]:
    return re.findall(r'<g id="([^"]+)"', svg.decode())


def svg_texts(svg: bytes) -> str:
    return " ".join(re.findall(r"<text\b[^>]*>([^<]*)</text>", svg.decode()))


def png_size(content: bytes) -> tuple[int, int]:
    assert content.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(content)) as image:
        image.load()
        return image.size


# -- made-up results, shaped like the engine's JSON -------------------------------------


def range_result() -> tuple[dict[str, Any], dict[str, list[Any]]]:
    n = 80
    lrs = [1e-6 * 10 ** (7 * i / (n - 1)) for i in range(n)]
    smoothed = [2.3 - 1.5 / (1 + math.exp(-3 * (math.log10(r) + 2.5))) for r in lrs]
    smoothed[-3:] = [1.5, 3.0, 9.0]  # the blow-up that stopped it
    loss = [s + 0.05 * math.sin(i) for i, s in enumerate(smoothed)]
    loss[10] = None  # a stored NaN comes back as null
    result = {
        "kind": "lr_range_test",
        "status": "succeeded",
        "stopped": {"why": "diverged", "step": n, "text": "the smoothed loss 9 exceeded 4 × …"},
        "suggestion": "valley",
        "suggestions": [
            {"rule": "steepest", "lr": 3.16e-3, "step": 50, "loss": 1.55, "explanation": "…"},
            {"rule": "min_div_10", "lr": 1e-2, "step": 70, "loss": 0.8, "explanation": "…"},
            {"rule": "valley", "lr": 0.000316, "step": 40, "loss": 2.0, "explanation": "…"},
        ],
    }
    curve = {"step": list(range(1, n + 1)), "lr": lrs, "loss": loss, "smoothed_loss": smoothed}
    return result, curve


def landscape_result(*, pca: bool, spread: float = 1.0) -> dict[str, Any]:
    n = 9
    axis = [-1.0 + 2 * j / (n - 1) for j in range(n)]
    grid = [[0.1 + spread * (x * x + 0.5 * y * y) for x in axis] for y in axis]
    grid[0][0] = None  # a non-finite loss, stored as null
    alpha = [-0.25 + 0.0625 * i for i in range(25)]
    result: dict[str, Any] = {
        "kind": "landscape",
        "status": "succeeded",
        "split": "val",
        "metrics": {"loss": "val_loss", "quality": "val_accuracy"},
        "centre": {"loss": 0.1, "quality": 0.97},
        "interpolation": {
            "alpha": alpha,
            "loss": [2.3 * (1 - a) ** 2 + 0.1 for a in alpha],
            "quality": [min(1.0, max(0.0, a)) for a in alpha],
            "initial": {"loss": 2.4, "quality": 0.1},
            "final": {"loss": 0.1, "quality": 0.97},
        },
        "surface": {"x": axis, "y": axis, "loss": grid, "quality": grid},
        "directions": {"kind": "random", "seed": 0},
        "explained_variance": None,
        "trajectory": None,
    }
    if pca:
        result["directions"] = {"kind": "pca", "epochs": [0, 1, 2, 3]}
        result["explained_variance"] = [0.8, 0.15]
        result["trajectory"] = {
            "epochs": [0, 1, 2, 3],
            "x": [-0.8, -0.5, -0.2, 0.0],
            "y": [-0.6, 0.3, 0.1, 0.0],
            "loss": [2.4, 0.9, 0.3, 0.1],
        }
    return result


# -- the range test -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_range_test_marks_every_suggestion(fmt: str) -> None:
    result, curve = range_result()
    content = lab.render_range_test(result, curve, fmt)
    if fmt == "png":
        assert png_size(content) == lab.PIXELS["range_test"]
        return
    ids = svg_ids(content)
    for gid in ("series-loss", "series-smoothed_loss"):
        assert gid in ids
    for rule in ("steepest", "min_div_10", "valley"):
        assert f"suggestion-{rule}" in ids and f"suggestion-{rule}-point" in ids
    texts = svg_texts(content)
    assert 'valley: 0.000316 (used by "auto")' in texts
    assert "steepest: 0.00316" in texts and "min_div_10: 0.01" in texts


def test_range_test_takes_the_metric_rows_as_well_as_columns() -> None:
    result, curve = range_result()
    rows = [
        {"lr": lr, "loss": loss, "smoothed_loss": s}
        for lr, loss, s in zip(curve["lr"], curve["loss"], curve["smoothed_loss"], strict=True)
    ]
    assert lab.render_range_test(result, rows, "svg") == lab.render_range_test(result, curve, "svg")


def test_range_test_of_an_auto_record() -> None:
    # What resolve_auto keeps of a train job's "auto" rate, the curve inside it.
    result, curve = range_result()
    record = {
        "fields": ["schedule.max_lr"],
        "value": 0.01,
        "rule": "min_div_10",
        "suggested_lr": 0.01,
        "why": "…",
        "suggestions": result["suggestions"],
        "range_test": result | {"suggestion": "valley"},
        "curve": curve,
    }
    content = lab.render_range_test(record, record["curve"], "svg")
    texts = svg_texts(content)
    assert 'min_div_10: 0.01 (used by "auto")' in texts and "valley: 0.000316" in texts
    assert "exceeded 4" in texts  # why the test stopped, from its result inside


def test_range_test_without_steps_says_so() -> None:
    content = lab.render_range_test({"suggestions": []}, {"lr": []}, "svg")
    assert "nothing to plot" in svg_texts(content)


def test_user_text_is_not_tex() -> None:
    result, curve = range_result()
    content = lab.render_range_test(result, curve, "svg", title="my $x$ job")
    assert "my $x$ job" in svg_texts(content)


# -- the landscape ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_interpolation_draws_loss_and_quality_with_both_ends(fmt: str) -> None:
    content = lab.render_interpolation(landscape_result(pca=False), fmt)
    if fmt == "png":
        assert png_size(content) == lab.PIXELS["interpolation"]
        return
    ids = svg_ids(content)
    for gid in ("series-loss", "series-quality", "initial", "final", "initial-point"):
        assert gid in ids
    texts = svg_texts(content)
    assert "val_loss" in texts and "val_accuracy" in texts


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("pca", [False, True])
def test_contour_marks_the_centre_and_the_trajectory(fmt: str, pca: bool) -> None:
    content = lab.render_landscape_contour(landscape_result(pca=pca), fmt)
    if fmt == "png":
        assert png_size(content) == lab.PIXELS["contour"]
        return
    ids = svg_ids(content)
    assert {"series-surface", "contour-lines", "centre"} <= set(ids)
    if pca:
        assert "trajectory" in ids
        assert {f"epoch-{e}" for e in range(4)} <= set(ids)
        assert "80.0% of the trajectory" in svg_texts(content)
    else:
        assert "trajectory" not in ids and "filter-normalised" in svg_texts(content)


def test_contour_levels_are_logarithmic_when_the_loss_spans_decades() -> None:
    levels, log = lab.contour_levels([0.01, 0.5, 30.0, math.nan])
    assert log and math.isclose(levels[0], 0.01) and math.isclose(levels[-1], 30.0)
    ratios = [b / a for a, b in zip(levels, levels[1:], strict=False)]
    assert max(ratios) - min(ratios) < 1e-9
    levels, log = lab.contour_levels([0.2, 0.5, 3.0])
    steps = [b - a for a, b in zip(levels, levels[1:], strict=False)]
    assert not log and max(steps) - min(steps) < 1e-12
    levels, log = lab.contour_levels([0.5, 0.5])  # a flat surface still has levels
    assert not log and levels[0] < 0.5 < levels[-1]


def test_a_wide_landscape_renders_on_log_levels() -> None:
    content = lab.render_landscape_contour(landscape_result(pca=False, spread=1000.0), "svg")
    assert "series-surface" in svg_ids(content)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("pca", [False, True])
def test_surface_in_3d(fmt: str, pca: bool) -> None:
    content = lab.render_landscape_surface(landscape_result(pca=pca, spread=500.0), fmt)
    if fmt == "png":
        assert png_size(content) == lab.PIXELS["surface"]
        return
    ids = svg_ids(content)
    assert "series-surface" in ids and "centre" in ids
    assert ("trajectory" in ids) == pca
    assert "log10 val_loss" in svg_texts(content)


def test_an_unmeasured_grid_says_so() -> None:
    empty = landscape_result(pca=False)
    empty["surface"]["loss"] = [[None] * 9 for _ in range(9)]
    for render in (lab.render_landscape_contour, lab.render_landscape_surface):
        assert "nothing to plot" in svg_texts(render(empty, "svg"))


def test_a_cancelled_landscape_draws_the_rows_it_has() -> None:
    partial = landscape_result(pca=False)
    partial["surface"]["loss"][5:] = [[None] * 9 for _ in range(4)]
    assert "series-surface" in svg_ids(lab.render_landscape_contour(partial, "svg"))
    assert "series-surface" in svg_ids(lab.render_landscape_surface(partial, "svg"))


def test_the_module_stays_light() -> None:
    code = (
        "import sys, service.plots.lab; "
        "print([m for m in ('torch', 'matplotlib', 'workers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
