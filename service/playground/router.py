"""``POST /v1/playground``: optimizers from the catalog racing on a classic 2-D surface.

Synchronous: the answer is the runs themselves, as JSON or drawn (``?format=png|svg``).
The body is validated on the event loop (fields, then ``check_request``: a 422 names the
field); the runs and the drawing go to a thread of their own, at most
``PLAYGROUND_CONCURRENCY`` at once, so a burst of requests waits on the event loop for
its turn, holding no thread of the pool every other route shares. The JSON is encoded
in that thread too: a large answer (20,000 points) never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from fastapi import Body, Query, Response

from service.deps import SettingsDep, authenticated_router
from service.errors import TOO_LARGE_SCHEMA, error_schema
from service.gate import LoopLimiter
from service.playground.plot import render_playground
from service.playground.run import run_playground
from service.playground.schemas import (
    EXAMPLE_REQUEST,
    MAX_RUNS,
    MAX_STEPS,
    MAX_TOTAL_STEPS,
    PlaygroundRequest,
    PlaygroundResult,
    check_request,
)
from service.plots.mpl import MEDIA_TYPES
from service.spec import SpecError

router = authenticated_router(prefix="/v1", tags=["playground"])

#: Requests computed at once (each is CPU-bound: up to about a second).
PLAYGROUND_CONCURRENCY = 2
OutputFormat = Literal["json", "png", "svg"]

_limiter = LoopLimiter(PLAYGROUND_CONCURRENCY)


def _answer(req: PlaygroundRequest, fmt: OutputFormat) -> bytes:
    result = run_playground(req)  # imports torch on the first call
    if fmt == "json":
        return result.model_dump_json().encode()
    return render_playground(result, fmt)  # imports matplotlib on the first call


_MEDIA = {"json": "application/json", **MEDIA_TYPES}

_EXAMPLES = {
    "rosenbrock": {"summary": "Five optimizers on Rosenbrock's ravine", "value": EXAMPLE_REQUEST},
    "saddle": {
        "summary": "Gradient descent stalls at a saddle; momentum and Adam leave it",
        "value": {
            "function": {"name": "saddle"},
            "start": [1.0, 1e-6],
            "steps": 1000,
            "runs": [
                {"optimizer": {"name": "sgd", "lr": 0.01}},
                {"optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}},
                {"optimizer": {"name": "adam", "lr": 0.01}},
            ],
        },
    },
    "minimal": {
        "summary": "One optimizer, the function's default start",
        "value": {"function": {"name": "himmelblau"}, "runs": [{"optimizer": {"name": "adam"}}]},
    },
}


DESCRIPTION = f"""\
Run optimizers and schedules from the catalog on a classic 2-D test function and get
each one's path: its points and values, the rate of every step, where it ended, the
step at which it came within `tolerance` of a known minimum, or where it diverged.

Each run's optimizer and schedule are built and driven by the very code that trains
jobs (`build_optimizer`, `build_schedule`, `set_rate`), so what you see here is what a
job with those settings does; one step is one epoch of one batch. The answer is
synchronous; the first request of an API process also imports PyTorch (a few seconds).
At most {MAX_STEPS:,} steps per run, {MAX_RUNS} runs, and {MAX_TOTAL_STEPS:,} steps in
all (the server's `DESCENT_PLAYGROUND_MAX_STEPS`, this by default). Without PyTorch where
the API runs, the answer is a 503.
"""


@router.post(
    "/playground",
    summary="Optimizers racing on a 2-D test function",
    description=DESCRIPTION,
    response_model=PlaygroundResult,
    responses={
        200: {
            "description": "The runs (JSON), or the contour with every path drawn "
            "(`?format=png` or `svg`).",
            "content": {"image/png": {}, "image/svg+xml": {}},
        },
        413: TOO_LARGE_SCHEMA,
        503: error_schema(
            503,
            "playground_unavailable",
            "the optimizer playground runs the training engine's optimizers, which need "
            "PyTorch, and this API's environment cannot import it",
            "PyTorch is not installed where the API runs (or the database is unavailable)",
        ),
    },
)
async def playground(
    settings: SettingsDep,
    req: Annotated[PlaygroundRequest, Body(openapi_examples=_EXAMPLES)],
    fmt: Annotated[
        OutputFormat,
        Query(
            alias="format",
            description="`json` (the default): every run's path and outcome; `png` or "
            "`svg`: the function's contours (log-scaled where it spans decades) with "
            "every path labelled, the start, the known minima and saddle points marked, "
            'and f along each path below (SVG: `<g id="series-<run index>">` per path).',
        ),
    ] = "json",
) -> Response:
    """Optimizer runs on a test function, as JSON or as a contour plot."""
    errors = check_request(req, settings.playground_max_steps)
    if errors:
        raise SpecError(errors)
    content = await anyio.to_thread.run_sync(_answer, req, fmt, limiter=_limiter())
    headers: dict[str, str] = {}
    if fmt != "json":
        headers["Content-Disposition"] = f'inline; filename="playground.{fmt}"'
    return Response(content, media_type=_MEDIA[fmt], headers=headers)
