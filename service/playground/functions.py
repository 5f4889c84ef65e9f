"""The playground's test surfaces: classic 2-D functions with known minima.

Each surface is written once as an expression of ``x`` and ``y`` over a namespace ``m``
that supplies ``cos``/``sin`` (``math`` for floats, ``torch`` for tensors, ``numpy`` for
the plot's grid), and once as its gradient worked out by hand in plain floats. The
optimization loop uses the hand-written gradient: it is exact, three to four times faster
than autograd on a 2-element tensor (``benchmarks/playground.py`` measures both), and a
test checks it against autograd of the expression at many points.

Nothing here imports torch or numpy: the API imports this module at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "BOUND",
    "FUNCTION_NAMES",
    "Point",
    "Surface",
    "Window",
    "make_surface",
]

#: A run whose point leaves |x| ≤ BOUND, |y| ≤ BOUND has diverged (or, on an unbounded
#: surface such as the saddles, is sliding off to −∞); it stops there.
BOUND = 1e6


@dataclass(frozen=True)
class Point:
    """A known stationary point: a minimum (``global`` or ``local``) or a saddle."""

    x: float
    y: float
    value: float
    kind: str


@dataclass(frozen=True)
class Window:
    """A suggested plotting window: ``x_min ≤ x ≤ x_max``, ``y_min ≤ y ≤ y_max``."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def including(self, x: float, y: float, margin: float = 0.1) -> Window:
        """This window grown, when needed, so that (x, y) lies inside with a margin of
        ``margin`` times the window's size."""
        dx, dy = margin * (self.x_max - self.x_min), margin * (self.y_max - self.y_min)
        return Window(
            min(self.x_min, x - dx),
            max(self.x_max, x + dx),
            min(self.y_min, y - dy),
            max(self.y_max, y + dy),
        )


@dataclass(frozen=True)
class Surface:
    """A function f(x, y) to minimise, with what is known about it.

    ``minima`` are the minima a run is checked against (``reached_step``): the global
    ones and, where a surface has local ones, those inside its window. ``saddles`` are
    its saddle points, where they are few enough to list.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    formula: ClassVar[str]
    start: ClassVar[tuple[float, float]]
    window: ClassVar[Window]

    minima: tuple[Point, ...] = field(init=False)
    saddles: tuple[Point, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "minima", tuple(self._minima()))
        object.__setattr__(self, "saddles", tuple(self._saddles()))

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        """f(x, y) for floats (``m=math``), tensors (``m=torch``) or arrays (``m=numpy``)."""
        raise NotImplementedError

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        """(∂f/∂x, ∂f/∂y), worked out by hand."""
        raise NotImplementedError

    def value(self, x: float, y: float) -> float:
        return float(self.expression(x, y))

    def heading(self) -> str:
        """The title, with the parameters when the surface has any."""
        return self.title

    def default_start(self) -> tuple[float, float]:
        """Where a run starts when the request names no point."""
        return self.start

    def _point(self, x: float, y: float, kind: str) -> Point:
        return Point(x, y, self.value(x, y), kind)

    def _minima(self) -> list[Point]:
        raise NotImplementedError

    def _saddles(self) -> list[Point]:
        return []


# Products are written ``x * x`` rather than ``x ** 2``: a float power that overflows
# raises OverflowError, a product gives inf, which the loop reports as divergence.


class Rosenbrock(Surface):
    name = "rosenbrock"
    title = "Rosenbrock"
    formula = "f(x, y) = (1 − x)² + 100·(y − x²)²"
    start = (-1.2, 1.0)
    window = Window(-2.0, 2.0, -1.0, 3.0)

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        a, b = 1 - x, y - x * x
        return a * a + 100 * b * b

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        b = y - x * x
        return -2 * (1 - x) - 400 * x * b, 200 * b

    def _minima(self) -> list[Point]:
        return [self._point(1.0, 1.0, "global")]


class Beale(Surface):
    name = "beale"
    title = "Beale"
    formula = "f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²"
    start = (1.0, 1.5)
    window = Window(-4.5, 4.5, -4.5, 4.5)

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        a = 1.5 - x + x * y
        b = 2.25 - x + x * y * y
        c = 2.625 - x + x * y * y * y
        return a * a + b * b + c * c

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        y2 = y * y
        y3 = y2 * y
        a, b, c = 1.5 - x + x * y, 2.25 - x + x * y2, 2.625 - x + x * y3
        dx = 2 * (a * (y - 1) + b * (y2 - 1) + c * (y3 - 1))
        dy = 2 * x * (a + 2 * b * y + 3 * c * y2)
        return dx, dy

    def _minima(self) -> list[Point]:
        return [self._point(3.0, 0.5, "global")]

    def _saddles(self) -> list[Point]:
        # Found by Newton's method from a grid over the window; a test checks each.
        return [
            self._point(0.0, 1.0, "saddle"),
            self._point(0.10053793732415836, -2.644513585023125, "saddle"),
        ]


class Himmelblau(Surface):
    name = "himmelblau"
    title = "Himmelblau"
    formula = "f(x, y) = (x² + y − 11)² + (x + y² − 7)²"
    start = (-0.3, -0.9)  # beside its one local maximum: the four basins are all near
    window = Window(-5.0, 5.0, -5.0, 5.0)

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        a, b = x * x + y - 11, x + y * y - 7
        return a * a + b * b

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        a, b = x * x + y - 11, x + y * y - 7
        return 4 * x * a + 2 * b, 2 * a + 4 * y * b

    def _minima(self) -> list[Point]:
        # Four global minima, f = 0; three have no closed form (Newton to full precision).
        return [
            self._point(3.0, 2.0, "global"),
            self._point(-2.805118086952745, 3.131312518250573, "global"),
            self._point(-3.779310253377747, -3.2831859912861696, "global"),
            self._point(3.5844283403304917, -1.8481265269644034, "global"),
        ]

    def _saddles(self) -> list[Point]:
        return [
            self._point(0.08667750455539634, 2.884254701174776, "saddle"),
            self._point(-3.0730257507643897, -0.08135304428796751, "saddle"),
            self._point(3.385154183607021, 0.0738518798377493, "saddle"),
            self._point(-0.12796134673068005, -1.9537149802445766, "saddle"),
        ]


class Rastrigin(Surface):
    name = "rastrigin"
    title = "Rastrigin"
    formula = "f(x, y) = 20 + x² − 10·cos(2πx) + y² − 10·cos(2πy)"
    start = (2.2, -1.6)
    window = Window(-5.12, 5.12, -5.12, 5.12)
    A: ClassVar[float] = 10.0
    #: Local minima listed: one near each integer point (i, j) with |i|, |j| ≤ 5.
    REACH: ClassVar[int] = 5

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        tau, a = 2 * math.pi, self.A
        return 2 * a + x * x - a * m.cos(tau * x) + y * y - a * m.cos(tau * y)

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        tau, a = 2 * math.pi, self.A
        return 2 * x + tau * a * math.sin(tau * x), 2 * y + tau * a * math.sin(tau * y)

    @classmethod
    def _root(cls, k: int) -> float:
        """The 1-D minimum of x² − A·cos(2πx) near the integer k (Newton from k)."""
        tau, a, x = 2 * math.pi, cls.A, float(k)
        for _ in range(50):
            step = (2 * x + tau * a * math.sin(tau * x)) / (2 + tau * tau * a * math.cos(tau * x))
            x -= step
            if abs(step) < 1e-17:
                break
        return x

    def _minima(self) -> list[Point]:
        roots = [self._root(k) for k in range(-self.REACH, self.REACH + 1)]
        points = [
            self._point(x, y, "global" if x == 0 and y == 0 else "local")
            for x in roots
            for y in roots
        ]
        # The global minimum first, then the others nearest the origin first.
        return sorted(points, key=lambda p: (p.kind != "global", p.x * p.x + p.y * p.y))


@dataclass(frozen=True)
class Saddle(Surface):
    """u² − v² in coordinates (u, v) turned by ``angle`` from (x, y): at 0 the classic
    x² − y², whose stable manifold (the line every gradient along it points to the saddle
    point) is the x axis; at θ that line is turned by θ. Gradient descent does not care
    which way the surface is turned, the optimizers that scale each coordinate do."""

    name = "saddle"
    title = "Saddle"
    formula = "f(x, y) = u² − v², u = x·cos θ + y·sin θ, v = −x·sin θ + y·cos θ"
    start = (1.0, 1e-3)  # a hair off the stable manifold (for θ = 0: y = 0)
    window = Window(-1.5, 1.5, -1.5, 1.5)

    angle: float = 0.0  # degrees

    def _cs(self) -> tuple[float, float]:
        return math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        c, s = self._cs()
        u, v = c * x + s * y, c * y - s * x
        return u * u - v * v

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        c, s = self._cs()
        u, v = c * x + s * y, c * y - s * x
        return 2 * (c * u + s * v), 2 * (s * u - c * v)

    def default_start(self) -> tuple[float, float]:
        # ``start`` turned with the surface: the same hair off its stable manifold.
        c, s = self._cs()
        x, y = self.start
        return c * x - s * y, s * x + c * y

    def heading(self) -> str:
        return f"{self.title} (θ = {self.angle:g}°)" if self.angle else self.title

    def _minima(self) -> list[Point]:
        return []  # unbounded below

    def _saddles(self) -> list[Point]:
        return [self._point(0.0, 0.0, "saddle")]


class MonkeySaddle(Surface):
    name = "monkey_saddle"
    title = "Monkey saddle"
    formula = "f(x, y) = x³ − 3xy²"
    start = (1.0, 0.05)
    window = Window(-1.5, 1.5, -1.5, 1.5)

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        return x * x * x - 3 * x * y * y

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        return 3 * (x * x - y * y), -6 * x * y

    def _minima(self) -> list[Point]:
        return []  # unbounded below

    def _saddles(self) -> list[Point]:
        return [self._point(0.0, 0.0, "saddle")]  # degenerate: its Hessian is zero


@dataclass(frozen=True)
class Quadratic(Surface):
    """½(u² + κ·v²) in coordinates (u, v) turned by ``angle`` from (x, y): a valley along
    u whose Hessian has eigenvalues 1 and κ, the condition number."""

    name = "quadratic"
    title = "Ill-conditioned quadratic"
    formula = "f(x, y) = ½·(u² + κ·v²), u = x·cos θ + y·sin θ, v = −x·sin θ + y·cos θ"
    start = (-4.0, 2.0)
    window = Window(-5.0, 5.0, -5.0, 5.0)

    condition_number: float = 10.0
    angle: float = 0.0  # degrees

    def _uv(self, x: Any, y: Any) -> tuple[Any, Any]:
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        return c * x + s * y, c * y - s * x

    def expression(self, x: Any, y: Any, m: Any = math) -> Any:
        u, v = self._uv(x, y)
        return 0.5 * (u * u + self.condition_number * v * v)

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        u, v = self._uv(x, y)
        du, dv = u, self.condition_number * v
        return c * du - s * dv, s * du + c * dv

    def heading(self) -> str:
        return f"{self.title} (κ = {self.condition_number:g}, θ = {self.angle:g}°)"

    def _minima(self) -> list[Point]:
        return [self._point(0.0, 0.0, "global")]


SURFACES: dict[str, type[Surface]] = {
    cls.name: cls
    for cls in (Rosenbrock, Beale, Himmelblau, Rastrigin, Saddle, MonkeySaddle, Quadratic)
}
FUNCTION_NAMES: tuple[str, ...] = tuple(SURFACES)


def make_surface(name: str, **params: float) -> Surface:
    """The surface ``name`` with its parameters (only ``quadratic`` has any)."""
    return SURFACES[name](**params)
