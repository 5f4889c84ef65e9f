"""Prediction latency over HTTP (``POST /v1/jobs/{id}/predict``) against a real server,
beside onnxruntime called directly in-process on the same model file.

For each mode — embedded (``descent up``: SQLite, the SQL broker, one worker) and the full
stack (``descent api`` + ``descent worker`` on PostgreSQL and Redis), started as
benchmarks/api_latency.py starts them — a digits MLP ``[128, 64]`` with standard scaling
is trained by the server's worker, which leaves its bundle (model.onnx with the scaling
folded in): the model the API predicts with.

Then, one keep-alive httpx client on loopback, requests one after another:

* the first prediction (the model is loaded into the API's cache);
* ``--requests`` predictions of 1 row and ``--requests // 4`` of 1,000 rows, as JSON
  (bodies serialised once, beforehand) and of 1,000 rows as a CSV body, interleaved with
  the same work done by onnxruntime directly (``InferenceSession.run`` on a float32 array,
  one intra-op thread, as the API's default): p50/p99 of each, rows/s, and the ratio
  HTTP / direct — what serving over HTTP costs against embedding the model.

    .venv/bin/python benchmarks/predict.py                       # both modes
    .venv/bin/python benchmarks/predict.py --modes embedded

Writes ``benchmarks/results/predict.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import io
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.api_latency import (  # noqa: E402
    Bench,
    EmbeddedStack,
    FullStack,
    Stack,
    raise_exit,
)
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    machine_info,
    percentile,
    table,
    write_results,
)

JOB: dict[str, Any] = {
    "name": "bench-predict-digits",
    "dataset": {"name": "digits", "scaling": "standard"},
    "model": {"kind": "mlp", "hidden": [128, 64]},
    "training": {"epochs": 10, "batch_size": 64},
}
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
BIG = 1000
WARMUP = 5


def digits_rows() -> tuple[np.ndarray, list[str]]:
    """Raw digits rows (float32, 64 features) and the feature names the server uses."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float32), [str(n) for n in data.feature_names]


def ensure_bundle(bench: Bench, job_id: str) -> str:
    """'worker': the worker wrote the job's bundle (the benchmark stops if it did not)."""
    job = bench.client.get(f"/v1/jobs/{job_id}").json()
    if not job.get("has_bundle"):
        raise RuntimeError(f"the worker left no bundle for job {job_id}: {job}")
    return "worker"


def summarize(seconds: list[float], rows: int) -> dict[str, float | int]:
    ms = [s * 1000 for s in seconds]
    p50 = percentile(ms, 50)
    return {
        "n": len(ms),
        "p50_ms": round(p50, 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "rows_per_second": round(rows / (p50 / 1000)),
    }


def measure(bench: Bench, job_id: str, model_path: Path, requests: int) -> dict[str, Any]:
    import json

    import onnxruntime

    rows, _ = digits_rows()
    rng = np.random.default_rng(0)
    one = rows[rng.integers(len(rows), size=1)]
    big = rows[rng.integers(len(rows), size=BIG)]
    url = f"/v1/jobs/{job_id}/predict"
    json_headers = {"Content-Type": "application/json"}
    bodies = {
        "json_1": json.dumps({"rows": one.tolist()}).encode(),
        "json_1000": json.dumps({"rows": big.tolist()}).encode(),
    }
    first, response = bench.timed("POST", url, 200, content=bodies["json_1"], headers=json_headers)
    answer = response.json()
    buf = io.StringIO()  # headed with the model's own feature names
    header = ",".join(answer["feature_names"])
    np.savetxt(buf, big, delimiter=",", header=header, comments="", fmt="%g")
    csv_body = buf.getvalue().encode()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    output = session.get_outputs()[0].name
    direct_probs = session.run([output], {"features": one})[0]
    max_diff = float(np.abs(np.asarray(answer["probabilities"]) - direct_probs).max())

    def http(body: bytes, headers: dict[str, str]) -> float:
        return bench.timed("POST", url, 200, content=body, headers=headers)[0]

    def direct(x: np.ndarray) -> float:
        started = time.perf_counter()
        session.run([output], {"features": x})
        return time.perf_counter() - started

    cases = {
        "http_json_1_row": (lambda: http(bodies["json_1"], json_headers), 1, requests),
        "direct_1_row": (lambda: direct(one), 1, requests),
        "http_json_1000_rows": (
            lambda: http(bodies["json_1000"], json_headers),
            BIG,
            requests // 4,
        ),
        "http_csv_1000_rows": (
            lambda: http(csv_body, {"Content-Type": "text/csv"}),
            BIG,
            requests // 4,
        ),
        "direct_1000_rows": (lambda: direct(big), BIG, requests // 4),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn, _, _ in cases.values():
        for _ in range(WARMUP):
            fn()
    # Interleaved: every case takes its turn in each round, so a slow spell of the
    # machine falls on all of them alike.
    for i in range(requests):
        for name, (fn, _, n) in cases.items():
            if i < n:
                times[name].append(fn())
    out: dict[str, Any] = {
        name: summarize(times[name], rows_) for name, (_, rows_, _) in cases.items()
    }
    out["first_request_ms"] = round(first * 1000, 1)
    out["max_abs_diff_http_vs_direct"] = max_diff
    out["http_over_direct_p50"] = {
        "1_row": round(out["http_json_1_row"]["p50_ms"] / out["direct_1_row"]["p50_ms"], 1),
        "1000_rows_json": round(
            out["http_json_1000_rows"]["p50_ms"] / out["direct_1000_rows"]["p50_ms"], 1
        ),
        "1000_rows_csv": round(
            out["http_csv_1000_rows"]["p50_ms"] / out["direct_1000_rows"]["p50_ms"], 1
        ),
    }
    out["unexpected"] = bench.unexpected[:10]
    return out


def run_mode(mode: str, requests: int, database_url: str, broker_url: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="descent-bench-predict-"))
    stack: Stack = (
        EmbeddedStack(workdir)
        if mode == "embedded"
        else FullStack(workdir, database_url, broker_url)
    )
    bench: Bench | None = None
    try:
        startup = stack.start()
        bench = Bench(stack.base_url, stack.token)
        job_id = bench.submit(JOB)
        job = bench.wait_done(job_id, timeout=300)
        if job["status"] != "succeeded":
            raise RuntimeError(f"the benchmark's job ended {job['status']}: {job}")
        source = ensure_bundle(bench, job_id)
        model_path = workdir / "data" / "artifacts" / "jobs" / job_id / "model.onnx"
        results = measure(bench, job_id, model_path, requests)
        return {
            "mode": mode,
            "startup": startup,
            "job": {"spec": JOB, "final_metrics": job.get("final_metrics")},
            "bundle": source,
            "results": results,
        }
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        if bench is not None:
            bench.close()
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def print_report(payload: dict[str, Any]) -> None:
    rows = []
    for run in payload["runs"]:
        r = run["results"]
        for case in (
            "http_json_1_row",
            "direct_1_row",
            "http_json_1000_rows",
            "http_csv_1000_rows",
            "direct_1000_rows",
        ):
            s = r[case]
            rows.append([run["mode"], case, s["n"], s["p50_ms"], s["p99_ms"], s["rows_per_second"]])
    print(table(["mode", "case", "n", "p50 ms", "p99 ms", "rows/s"], rows))
    for run in payload["runs"]:
        r = run["results"]
        print(
            f"{run['mode']}: first request {r['first_request_ms']} ms; HTTP/direct p50 "
            f"{r['http_over_direct_p50']}; bundle from {run['bundle']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="Timed 1-row requests.")
    parser.add_argument("--modes", default="embedded,postgres-redis")
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--broker-url", default=DEFAULT_REDIS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "predict.json")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"embedded", "postgres-redis"} or args.requests < 8:
        parser.error("--modes: embedded and/or postgres-redis; --requests at least 8")
    signal.signal(signal.SIGTERM, raise_exit)
    machine = machine_info()
    started = time.perf_counter()
    runs = [run_mode(m, args.requests, args.database_url, args.broker_url) for m in modes]
    import onnxruntime

    payload = {
        "benchmark": "predict",
        "machine": {**machine, "onnxruntime": onnxruntime.__version__},
        "options": {
            "requests_1_row": args.requests,
            "requests_1000_rows": args.requests // 4,
            "warmup_requests": WARMUP,
            "api_predict_threads": 1,
            "direct_intra_op_threads": 1,
            "client": "httpx, one keep-alive connection, loopback, bodies serialised beforehand",
        },
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    path = write_results(args.out, payload)
    print_report(payload)
    print(f"\n{payload['elapsed_seconds']}s in all. Wrote {path}")
    return 1 if any(r["results"]["unexpected"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
