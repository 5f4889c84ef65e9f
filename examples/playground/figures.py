"""Post every playground example to the API and print the figures docs/playground.md
quotes; with ``--images DIR``, also save each example's contour plot there.

    .venv/bin/python examples/playground/figures.py                 # the figures
    .venv/bin/python examples/playground/figures.py --images docs/img

The server and token come from the usual places (``--url``/``--token``, DESCENT_URL /
DESCENT_TOKEN, the config file, the embedded default's local token file). Besides what
the API returns for each run (the step it came within tolerance of a minimum, or
diverged), it counts, for surfaces with saddle points, the steps a run spent within
``NEAR`` of one, and the first step at which f fell ``DROP`` below the saddle's value:
from there on the run has left the saddle for good.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from service.client import Client, DescentError  # noqa: E402

HERE = Path(__file__).resolve().parent
NEAR = 0.1
DROP = 1.0


def saddle_figures(result: dict[str, Any], run: dict[str, Any]) -> tuple[int, int | None]:
    """(steps within NEAR of a saddle point, first step with f below its value − DROP)."""
    points, values = run["trajectory"]["points"], run["trajectory"]["values"]
    near = sum(
        1
        for x, y in points
        if any(math.hypot(x - s["x"], y - s["y"]) < NEAR for s in result["saddle_points"])
    )
    floor = min(s["value"] for s in result["saddle_points"]) - DROP
    left = next((k for k, v in enumerate(values) if v < floor), None)
    return near, left


def dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def show(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}: {result['title']}, {result['steps']} steps from {result['start']}")
    saddle = not result["minima"] and result["saddle_points"]
    header = f"  {'run':40} {'status':9} {'reached':>7} {'diverged':>8} {'final f':>11}"
    print(header + (f" {'near saddle':>11} {'left':>5}" if saddle else ""))
    for run in result["runs"]:
        line = (
            f"  {run['label']:40} {run['status']:9} {dash(run['reached_step']):>7} "
            f"{dash(run['diverged_step']):>8} {run['final_value']:11.4g}"
        )
        if saddle:
            near, left = saddle_figures(result, run)
            line += f" {near:>11} {dash(left):>5}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--images", type=Path, help="write <example>.png files here")
    parser.add_argument("examples", nargs="*", type=Path, help="default: every example")
    args = parser.parse_args(argv)
    paths = args.examples or sorted(HERE.glob("*.json"))
    try:
        with Client.from_config(args.url, args.token, timeout=120) as descent:
            for path in paths:
                request = json.loads(path.read_text())
                show(path.stem, descent.playground(request).model_dump(mode="json"))
                if args.images:
                    args.images.mkdir(parents=True, exist_ok=True)
                    image = args.images / f"playground-{path.stem}.png"
                    image.write_bytes(descent.playground(request, fmt="png"))
                    print(f"  → {image}")
    except DescentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
