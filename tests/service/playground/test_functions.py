"""The surfaces: hand-written gradients equal autograd's, listed minima are minima and
saddles are saddles, and the plot's numpy expression is the loop's float one."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from service.playground.functions import FUNCTION_NAMES, Surface, Window, make_surface

SURFACES: list[Surface] = [make_surface(name) for name in FUNCTION_NAMES] + [
    make_surface("quadratic", condition_number=1000.0, angle=30.0),
    make_surface("quadratic", condition_number=1.0, angle=-135.0),
    make_surface("saddle", angle=45.0),
    make_surface("saddle", angle=-100.0),
]
IDS = [s.heading() for s in SURFACES]


def autograd(surface: Surface, x: float, y: float) -> tuple[float, float]:
    p = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
    surface.expression(p[0], p[1], torch).backward()
    gx, gy = p.grad.tolist()
    return gx, gy


def hessian(surface: Surface, x: float, y: float) -> np.ndarray:
    p = torch.tensor([x, y], dtype=torch.float64)
    h = torch.autograd.functional.hessian(lambda q: surface.expression(q[0], q[1], torch), p)
    return h.numpy()


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_the_hand_written_gradient_is_autograds(surface: Surface) -> None:
    rng = random.Random(0)
    w = surface.window
    for _ in range(200):
        x, y = rng.uniform(w.x_min, w.x_max), rng.uniform(w.y_min, w.y_max)
        ours, torchs = surface.gradient(x, y), autograd(surface, x, y)
        for a, b in zip(ours, torchs, strict=True):
            assert a == pytest.approx(b, rel=1e-10, abs=1e-10), (x, y, ours, torchs)


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_the_float_torch_and_numpy_expressions_agree(surface: Surface) -> None:
    rng = random.Random(1)
    w = surface.window
    xs = np.array([rng.uniform(w.x_min, w.x_max) for _ in range(50)])
    ys = np.array([rng.uniform(w.y_min, w.y_max) for _ in range(50)])
    grid = surface.expression(xs, ys, np)
    tensor = surface.expression(torch.tensor(xs), torch.tensor(ys), torch).numpy()
    floats = [surface.value(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    np.testing.assert_allclose(grid, floats, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tensor, floats, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_listed_minima_are_minima_and_saddles_are_saddles(surface: Surface) -> None:
    for point in (*surface.minima, *surface.saddles):
        for g in (*surface.gradient(point.x, point.y), *autograd(surface, point.x, point.y)):
            assert abs(g) < 1e-9, (point, g)
        assert point.value == surface.value(point.x, point.y)
    for point in surface.minima:
        eig = np.linalg.eigvalsh(hessian(surface, point.x, point.y))
        assert eig.min() > 0, (point, eig)  # a strict minimum
        for dx, dy in [(1e-4, 0), (0, 1e-4), (-1e-4, 1e-4), (1e-4, -1e-4)]:
            assert surface.value(point.x + dx, point.y + dy) > point.value
    for point in surface.saddles:
        eig = np.linalg.eigvalsh(hessian(surface, point.x, point.y))
        if np.abs(eig).max() > 0:
            assert eig.min() < 0 < eig.max(), (point, eig)  # indefinite
        else:
            # The monkey saddle's Hessian is zero: lower and higher values around it.
            around = [
                surface.value(point.x + 1e-3 * math.cos(a), point.y + 1e-3 * math.sin(a))
                for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)
            ]
            assert min(around) < point.value < max(around), point


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_global_minima_come_first_and_are_lowest(surface: Surface) -> None:
    kinds = [m.kind for m in surface.minima]
    assert kinds == sorted(kinds, key=lambda k: k != "global")
    glob = [m.value for m in surface.minima if m.kind == "global"]
    assert all(m.value >= max(glob) - 1e-12 for m in surface.minima)
    assert bool(surface.minima) == (surface.name not in ("saddle", "monkey_saddle"))


def test_the_known_minima() -> None:
    rosen = make_surface("rosenbrock")
    assert [(m.x, m.y, m.value) for m in rosen.minima] == [(1.0, 1.0, 0.0)]
    himmelblau = make_surface("himmelblau")
    assert len(himmelblau.minima) == 4 and all(m.value < 1e-25 for m in himmelblau.minima)
    rastrigin = make_surface("rastrigin")
    assert len(rastrigin.minima) == 121  # one near each (i, j) with |i|, |j| <= 5
    assert (rastrigin.minima[0].x, rastrigin.minima[0].y, rastrigin.minima[0].value) == (0, 0, 0)
    near = {(round(m.x), round(m.y)) for m in rastrigin.minima}
    assert near == {(i, j) for i in range(-5, 6) for j in range(-5, 6)}


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_default_starts_lie_in_the_window(surface: Surface) -> None:
    w, (x, y) = surface.window, surface.start
    assert w.x_min < x < w.x_max and w.y_min < y < w.y_max
    assert w.including(x, y) == w


def test_a_window_grows_to_hold_a_start_outside_it() -> None:
    w = Window(-1.0, 1.0, -2.0, 2.0).including(3.0, -2.0)
    assert (w.x_min, w.y_max) == (-1.0, 2.0)
    assert w.x_max == pytest.approx(3.2) and w.y_min == pytest.approx(-2.4)


def test_overflow_gives_infinity_not_an_exception() -> None:
    for name in FUNCTION_NAMES:
        value = make_surface(name).value(1e200, -1e200)
        assert math.isinf(value) or math.isnan(value) or abs(value) > 1e300


def test_a_turned_saddle_is_the_saddle_in_turned_coordinates() -> None:
    """At 45° the surface is 2xy, and the default start turns with it: the same point in
    the surface's own coordinates, so at the same distance from the stable manifold."""
    plain, turned = make_surface("saddle"), make_surface("saddle", angle=45.0)
    rng = random.Random(2)
    for _ in range(50):
        x, y = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)
        assert turned.value(x, y) == pytest.approx(2 * x * y, rel=1e-12, abs=1e-12)
    assert plain.default_start() == plain.start
    sx, sy = turned.default_start()
    r = math.sqrt(0.5)
    assert (sx, sy) == pytest.approx((r * (1.0 - 1e-3), r * (1.0 + 1e-3)), rel=1e-12)
    assert turned.value(sx, sy) == pytest.approx(plain.value(*plain.start), rel=1e-9)
