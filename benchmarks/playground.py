"""The optimizer playground's latency: ``POST /v1/playground`` end to end over HTTP, for
Rosenbrock with 5 optimizers × 500 steps (the OpenAPI example) and a few other sizes,
as JSON and drawn as PNG and SVG; plus where the time goes (the runs alone, with
hand-written gradients and with autograd, and the drawing alone).

    .venv/bin/python benchmarks/playground.py [--repeats 20] [--quick]

Serves ``create_app()`` with uvicorn on 127.0.0.1 in a thread of this process, on a
scratch SQLite database with one user, and sends each request with httpx. The first
request of the process imports PyTorch and the training engine, the first picture
matplotlib: both are timed on their own (``first_*``), before the timed repeats.
Results: benchmarks/results/playground.json.
"""

from __future__ import annotations

import argparse
import copy
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    machine_info,
    summarize_ms,
    table,
    write_results,
)
from service.playground.schemas import EXAMPLE_REQUEST  # noqa: E402

OPTIMIZERS: list[dict[str, Any]] = [
    {"name": "sgd", "lr": 0.001},
    {"name": "sgd", "lr": 0.001, "momentum": 0.9},
    {"name": "adam", "lr": 0.05},
    {"name": "rmsprop", "lr": 0.005},
    {"name": "nadam", "lr": 0.02},
    {"name": "adagrad", "lr": 0.5},
    {"name": "adamax", "lr": 0.05},
    {"name": "adamw", "lr": 0.05},
    {"name": "sgd", "lr": 0.001, "momentum": 0.9, "nesterov": True},
    {"name": "rmsprop", "lr": 0.005, "centered": True},
]


def request(function: str, runs: int, steps: int) -> dict[str, Any]:
    return {
        "function": {"name": function},
        "steps": steps,
        "runs": [{"optimizer": OPTIMIZERS[i % len(OPTIMIZERS)]} for i in range(runs)],
    }


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    fmt: str = "json"
    quick: bool = True

    @property
    def total_steps(self) -> int:
        return int(self.body.get("steps", 500)) * len(self.body["runs"])


CASES = [
    Case("rosenbrock 5×500 (example)", EXAMPLE_REQUEST),
    Case("rosenbrock 1×500", request("rosenbrock", 1, 500)),
    Case("rosenbrock 5×2000", request("rosenbrock", 5, 2000), quick=False),
    Case("rosenbrock 10×2000 (cap)", request("rosenbrock", 10, 2000), quick=False),
    Case("rastrigin 5×500 (121 minima)", request("rastrigin", 5, 500)),
    Case("rosenbrock 5×500 → png", EXAMPLE_REQUEST, "png"),
    Case("rosenbrock 5×500 → svg", EXAMPLE_REQUEST, "svg", quick=False),
    Case("rosenbrock 10×2000 → png", request("rosenbrock", 10, 2000), "png", quick=False),
]


class Server:
    """``create_app()`` served by uvicorn in a thread, with a user and its token."""

    def __init__(self, workdir: Path) -> None:
        import uvicorn

        from service.auth import service as accounts
        from service.config import Settings
        from service.db import make_engine, make_sessionmaker, session_scope
        from service.main import create_app
        from service.migrate import upgrade

        settings = Settings(data_dir=str(workdir))
        upgrade(str(settings.database_url))
        engine = make_engine(str(settings.database_url))
        with session_scope(make_sessionmaker(engine)) as session:
            user = accounts.create_user(session=session, name="bench")
            _, self.token = accounts.create_token(session=session, user_id=user.id)
        engine.dispose()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def post(client: httpx.Client, case: Case) -> tuple[float, int]:
    started = time.perf_counter()
    r = client.post("/v1/playground", params={"format": case.fmt}, json=case.body)
    seconds = time.perf_counter() - started
    r.raise_for_status()
    return seconds, len(r.content)


def measure(client: httpx.Client, case: Case, repeats: int) -> dict[str, Any]:
    post(client, case)  # untimed: the same request's first run
    times, size = [], 0
    for _ in range(repeats if case.total_steps <= 5000 else max(3, repeats // 4)):
        seconds, size = post(client, case)
        times.append(seconds)
    return {
        "case": case.name,
        "format": case.fmt,
        "total_steps": case.total_steps,
        **summarize_ms(times),
        "us_per_step": round(1e6 * statistics.median(times) / case.total_steps, 1),
        "bytes": size,
    }


def in_process(repeats: int) -> dict[str, Any]:
    """The example's runs without HTTP: hand-written gradients against autograd, and the
    PNG drawing on its own."""
    from service.playground.plot import render_playground
    from service.playground.run import run_playground
    from service.playground.schemas import PlaygroundRequest

    req = PlaygroundRequest.model_validate(EXAMPLE_REQUEST)
    result = run_playground(req)
    render_playground(result, "png")
    out: dict[str, Any] = {}
    for gradient in ("analytic", "autograd"):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run_playground(req, gradient=gradient)  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
        out[f"runs_{gradient}"] = summarize_ms(times)
    for fmt in ("png", "svg"):
        times = []
        for _ in range(max(3, repeats // 4)):
            started = time.perf_counter()
            render_playground(result, fmt)  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
        out[f"render_{fmt}"] = summarize_ms(times)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="Timed requests per case.")
    parser.add_argument("--quick", action="store_true", help="Fewer cases, 5 repeats.")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "playground.json")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else args.repeats
    cases = [c for c in CASES if c.quick or not args.quick]

    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="descent-bench-playground-") as tmp,
        Server(Path(tmp)) as server,
        httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=120,
        ) as client,
    ):
        warm = Case("first", EXAMPLE_REQUEST)
        first["first_request_s"] = round(post(client, warm)[0], 3)  # imports torch
        png = Case("first png", EXAMPLE_REQUEST, "png")
        first["first_png_s"] = round(post(client, png)[0], 3)  # imports matplotlib
        for case in cases:
            rows.append(measure(client, case, repeats))
            print(f"  {case.name}: p50 {rows[-1]['p50_ms']} ms", file=sys.stderr)
    parts = in_process(repeats)

    print(
        table(
            ["case", "steps", "p50 ms", "p95 ms", "µs/step", "bytes"],
            [
                [
                    r["case"],
                    r["total_steps"],
                    r["p50_ms"],
                    r["p95_ms"],
                    r["us_per_step"],
                    r["bytes"],
                ]
                for r in rows
            ],  # fmt: skip
        )
    )
    print(
        f"\nfirst request of the process (imports torch and the engine): "
        f"{first['first_request_s']} s; first PNG (imports matplotlib): {first['first_png_s']} s"
    )
    print(
        table(
            ["in-process, example 5×500", "p50 ms", "p95 ms"],
            [[name, s["p50_ms"], s["p95_ms"]] for name, s in parts.items()],
        )
    )
    payload = {
        "machine": machine_info(torch_threads=_torch_threads()),
        "repeats": repeats,
        "cases": rows,
        **first,
        "in_process": parts,
        "example_request": copy.deepcopy(EXAMPLE_REQUEST),
    }
    path = write_results(args.out, payload)
    print(f"\nwrote {path}")
    return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
