"""Figures from the benchmarks' results files (``benchmarks/results/*.json``), which name
the machine they were measured on. Benchmarks take minutes and measure time, so the
check never re-runs them: it checks that the documents print what the files hold.
"""

from __future__ import annotations

from typing import Any

from scripts.docfigures.core import Source, Value

Doc = dict[str, Any]


def ms(value: float) -> str:
    """A latency as the tables print it: whole milliseconds from 100 on, else one decimal."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def seconds(value: float) -> str:
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- training throughput ---------------------------------------------------------------------


def throughput(docs: list[Doc]) -> dict[str, Value]:
    (doc,) = docs
    figures: dict[str, Value] = {
        "elapsed_s": doc["elapsed_seconds"],
        "repeats": doc["options"]["repeats"],
        "rows": len(doc["results"]),
    }
    for i, r in enumerate(doc["results"]):
        for key in (
            "config",
            "torch_threads",
            "epochs",
            "steps_per_epoch",
            "wall_seconds_median",
            "epoch_seconds_median",
            "samples_per_second_median",
            "steps_per_second_median",
            "bare_steps_per_second",
            "engine_overhead_fraction",
            "final_metric",
            "final_value",
            "final_identical_across_runs",
            "warmup_wall_seconds",
        ):
            figures[f"{i}.{key}"] = r[key]
        figures[f"{i}.ms_per_step"] = 1000 / r["steps_per_second_median"]
        figures[f"{i}.bare_ms_per_step"] = 1000 / r["bare_steps_per_second"]
    overheads = [r["engine_overhead_fraction"] for r in doc["results"]]
    figures |= {
        "overhead_min": min(overheads),
        "overhead_max": max(overheads),
        "all_identical": all(r["final_identical_across_runs"] for r in doc["results"]),
        "first_call_extra_s": doc["results"][0]["warmup_wall_seconds"]
        - doc["results"][0]["wall_seconds_median"],
    }
    return figures


def throughput_table(f: dict[str, Value]) -> str:
    head = ["config", "threads", "epochs", "steps/epoch", "wall s/run", "epoch s", "samples/s"]
    head += ["steps/s", "bare steps/s", "overhead", "final val"]
    rows = []
    for i in range(int(f["rows"])):
        metric = str(f[f"{i}.final_metric"]).removeprefix("val_")
        rows.append(
            [
                str(f[f"{i}.config"]),
                str(f[f"{i}.torch_threads"]),
                str(f[f"{i}.epochs"]),
                str(f[f"{i}.steps_per_epoch"]),
                f"{f[f'{i}.wall_seconds_median']:.3f}",
                f"{f[f'{i}.epoch_seconds_median']:.3g}",
                f"{f[f'{i}.samples_per_second_median']:,.0f}",
                f"{f[f'{i}.steps_per_second_median']:,.0f}",
                f"{f[f'{i}.bare_steps_per_second']:,.0f}",
                f"{round(float(f[f'{i}.engine_overhead_fraction']) * 100)} %",
                f"{metric} {f[f'{i}.final_value']:.3f}",
            ]
        )
    return _table(head, rows)


# -- API latency -------------------------------------------------------------------------------

ENDPOINTS = [
    "POST /v1/jobs (valid, 202)",
    "POST /v1/jobs/{id}/cancel (just submitted)",
    "POST /v1/jobs (rejected, 422)",
    "GET /v1/jobs/{id}",
    "GET /v1/jobs?limit=50",
    "GET /v1/jobs/{id}/metrics (100 epochs)",
    "GET /v1/catalog",
    "GET /healthz",
]


def api(docs: list[Doc]) -> dict[str, Value]:
    (doc,) = docs
    r = doc["results"]
    figures: dict[str, Value] = {
        "elapsed_s": doc["elapsed_seconds"],
        "shutdown_s": doc["shutdown"]["shutdown_seconds"],
        **{f"startup.{k}": v for k, v in doc["startup"].items()},
        **{f"cancelled.{k}": v for k, v in r["cancelled_jobs"].items()},
        "cancelled.total": sum(r["cancelled_jobs"].values()),
        "cancelled.all_before_start": r["cancelled_jobs"]["before_start"]
        == sum(r["cancelled_jobs"].values()),
        "jobs_in_database": r["jobs_in_database"],
    }
    for i, name in enumerate(ENDPOINTS):
        e = r["endpoints"][name]
        figures |= {f"endpoint{i}.{k}": e[k] for k in ("n", "p50_ms", "p95_ms", "max_ms")}
    done = r["submit_to_done"]
    behind = r["submit_to_done_behind_cancelled"]
    rows = {
        "first": {k: done["first_job"][f"{k}_seconds"] for k in ("total", "queue_wait", "run")},
        "median": {
            k: done["later_jobs"][f"{k}_seconds_median"] for k in ("total", "queue_wait", "run")
        },
        "max": {k: done["later_jobs"][f"{k}_seconds_max"] for k in ("total", "queue_wait", "run")},
        "behind": {k: behind[f"{k}_seconds"] for k in ("total", "queue_wait", "run")},
    }
    for row, values in rows.items():
        figures |= {f"e2e.{row}.{k}": v for k, v in values.items()}
    figures |= {
        "e2e.later_count": len(done["runs"]) - 1,
        "e2e.cancelled_ahead": behind["cancelled_ahead"],
        "e2e.seconds_per_cancelled_job": behind["seconds_per_cancelled_job"],
    }
    return figures


def api_tables(f: dict[str, Value]) -> str:
    endpoints = _table(
        ["endpoint", "n", "p50 ms", "p95 ms", "max ms"],
        [
            [
                f"`{name.split(' (')[0]}`" + (f" ({name.split(' (')[1]}" if " (" in name else ""),
                str(f[f"endpoint{i}.n"]),
                *(f"{f[f'endpoint{i}.{k}']:.1f}" for k in ("p50_ms", "p95_ms", "max_ms")),
            ]
            for i, name in enumerate(ENDPOINTS)
        ],
    )
    later = f["e2e.later_count"]
    labels = {
        "first": "first job (fresh worker process)",
        "median": f"later jobs, median of {later}",
        "max": "later jobs, max",
        "behind": f"behind {f['e2e.cancelled_ahead']} cancelled jobs",
    }
    e2e = _table(
        ["submit → succeeded (iris, 5 epochs)", "total s", "queue wait s", "run s"],
        [
            [label, *(seconds(float(f[f"e2e.{row}.{k}"])) for k in ("total", "queue_wait", "run"))]
            for row, label in labels.items()
        ],
    )
    return endpoints + "\n" + e2e


# -- event latency ----------------------------------------------------------------------------


def events(docs: list[Doc]) -> dict[str, Value]:
    figures: dict[str, Value] = {}
    for doc in docs:
        mode = "embedded" if doc["mode"] == "embedded" else "redis"
        r = doc["results"]
        figures |= {
            f"{mode}.elapsed_s": doc["elapsed_seconds"],
            f"{mode}.epochs": r["epoch_to_client"]["n"],
            f"{mode}.streams": r["streams_open"],
            f"{mode}.jobs": doc["options"]["jobs"],
            f"{mode}.job_epochs": doc["options"]["epochs"],
            f"{mode}.poll": doc["options"]["notification"],
        }
        for part in ("epoch_to_client", "get_job_alone", "get_job_beside_streams"):
            for k in ("p50_ms", "p95_ms", "max_ms", "mean_ms"):
                figures[f"{mode}.{part}.{k}"] = r[part][k]
    return figures


def events_table(f: dict[str, Value]) -> str:
    def row(mode: str, label: str) -> list[str]:
        def part(name: str, keys: tuple[str, ...]) -> str:
            return " / ".join(ms(float(f[f"{mode}.{name}.{k}"])) for k in keys) + " ms"

        return [
            label,
            part("epoch_to_client", ("p50_ms", "p95_ms", "max_ms")),
            part("get_job_alone", ("p50_ms", "p95_ms")),
            part("get_job_beside_streams", ("p50_ms", "p95_ms")),
        ]

    return _table(
        [
            "mode",
            "epoch end → client p50 / p95 / max",
            "GET job p50 / p95, no streams",
            f"with {f['embedded.streams']} streams open",
        ],
        [
            row("embedded", "embedded (database poll every 0.25 s)"),
            row("redis", "PostgreSQL + Redis (pub/sub)"),
        ],
    )


# -- sweeps: ASHA against no pruning ----------------------------------------------------------


def sweeps(docs: list[Doc]) -> dict[str, Value]:
    (doc,) = docs
    figures: dict[str, Value] = {f"settings.{k}": v for k, v in doc["settings"].items()}
    seeds = sorted({r["seed"] for r in doc["runs"]})
    figures["seeds"] = seeds
    same = 0
    for r in doc["runs"]:
        for k in ("best", "epochs", "pruned", "seconds"):
            figures[f"{r['pruner']}.{r['seed']}.{k}"] = r[k]
    gaps = []
    for seed in seeds:
        none, asha = float(figures[f"none.{seed}.best"]), float(figures[f"asha.{seed}.best"])
        same += none == asha
        if none != asha:
            gaps.append(none - asha)
    summary = doc["summary"]
    for pruner in ("none", "asha"):
        figures |= {f"{pruner}.{k}": v for k, v in summary[pruner].items()}
        figures[f"{pruner}.pruned_mean"] = sum(
            int(figures[f"{pruner}.{s}.pruned"]) for s in seeds
        ) / len(seeds)
    figures |= {
        "epochs_ratio": summary["ratio"]["epochs_asha_over_none"],
        "best_difference": summary["ratio"]["best_asha_minus_none"],
        "best_lower": -summary["ratio"]["best_asha_minus_none"],
        "same_best": same,
        "worse_best": len(gaps),
        "gap_when_worse_max": max(gaps, default=0.0),
        "gap_when_worse_min": min(gaps, default=0.0),
        "seconds_ratio": summary["asha"]["seconds_mean"] / summary["none"]["seconds_mean"],
        "commit": doc["machine"]["git_commit"][:7],
    }
    return figures


def sweeps_table(f: dict[str, Value]) -> str:
    rows = [
        [
            str(seed),
            f"{f[f'none.{seed}.best']:.4f}",
            f"{f[f'asha.{seed}.best']:.4f}",
            str(f[f"none.{seed}.epochs"]),
            str(f[f"asha.{seed}.epochs"]),
            str(f[f"asha.{seed}.pruned"]),
            f"{f[f'none.{seed}.seconds']:.1f} / {f[f'asha.{seed}.seconds']:.1f}",
        ]
        for seed in f["seeds"]
    ]
    rows.append(
        [
            "**mean**",
            f"**{f['none.best_mean']:.4f}**",
            f"**{f['asha.best_mean']:.4f}**",
            f"**{f['none.epochs_mean']:g}**",
            f"**{f['asha.epochs_mean']:g}**",
            f"{f['asha.pruned_mean']:g}",
            f"{f['none.seconds_mean']:.1f} / {f['asha.seconds_mean']:.1f}",
        ]
    )
    head = ["sweep seed", "best val_accuracy, no pruning", "best, ASHA", "epochs, no pruning"]
    head += ["epochs, ASHA", "trials pruned by ASHA", "wall s, none / ASHA"]
    return _table(head, rows)


# -- the playground route ----------------------------------------------------------------------

CASES = {
    "rosenbrock 5×500 (example)": "example",
    "rosenbrock 5×500 → png": "example_png",
    "rosenbrock 5×500 → svg": "example_svg",
    "rosenbrock 1×500": "one",
    "rastrigin 5×500 (121 minima)": "rastrigin",
    "rosenbrock 5×2000": "five_2000",
    "rosenbrock 10×2000 (cap)": "cap",
    "rosenbrock 10×2000 → png": "cap_png",
}


def playground(docs: list[Doc]) -> dict[str, Value]:
    (doc,) = docs
    figures: dict[str, Value] = {
        "repeats": doc["repeats"],
        "first_request_s": doc["first_request_s"],
        "first_png_s": doc["first_png_s"],
    }
    for case in doc["cases"]:
        key = CASES[case["case"]]
        figures |= {f"{key}.{k}": case[k] for k in ("n", "p50_ms", "p95_ms", "us_per_step")}
    json_cases = [c for c in doc["cases"] if c["format"] == "json"]
    steps = [c["us_per_step"] for c in json_cases if "rastrigin" not in c["case"]]
    inproc = doc["in_process"]
    figures |= {
        "us_per_step_min": min(steps),
        "us_per_step_max": max(steps),
        "autograd_ratio": inproc["runs_autograd"]["p50_ms"] / inproc["runs_analytic"]["p50_ms"],
    }
    return figures


def playground_table(f: dict[str, Value]) -> str:
    def p50(key: str) -> str:
        value = float(f[f"{key}.p50_ms"])
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"

    rows = [
        ["Rosenbrock, 5 optimizers × 500 steps (the OpenAPI example), JSON", p50("example")],
        ["the same as PNG", p50("example_png")],
        ["the same as SVG", p50("example_svg")],
        ["Rosenbrock, 1 × 500, JSON", p50("one")],
        ["Rastrigin (121 minima to check), 5 × 500, JSON", p50("rastrigin")],
        ["Rosenbrock, 10 × 2000 (the cap: 20,000 steps), JSON", p50("cap")],
    ]
    return _table(["request", "p50"], rows)


# -- reliability --------------------------------------------------------------------------------


def reliability(docs: list[Doc]) -> dict[str, Value]:
    (doc,) = docs
    return {"pytest_exit_code": doc["pytest_exit_code"], "seconds": doc["seconds"], "doc": doc}


def reliability_tables(f: dict[str, Value]) -> str:
    from benchmarks.reliability import END, START, render

    return render(f["doc"]).removeprefix(START).removesuffix(END).strip() + "\n"


SOURCES = [
    Source(
        name="train-throughput",
        about="the training engine's speed per config (benchmarks/train_throughput.py)",
        command=".venv/bin/python benchmarks/train_throughput.py --threads 1,2",
        extracts=throughput,
        results=("benchmarks/results/train_throughput.json",),
        blocks={"table": throughput_table},
    ),
    Source(
        name="api-embedded",
        about="API latency, embedded (benchmarks/api_latency.py)",
        command=".venv/bin/python benchmarks/api_latency.py",
        extracts=api,
        results=("benchmarks/results/api_latency-embedded.json",),
        blocks={"tables": api_tables},
    ),
    Source(
        name="api-postgres-redis",
        about="API latency, PostgreSQL + Redis (benchmarks/api_latency.py)",
        command=".venv/bin/python benchmarks/api_latency.py --database-url "
        "postgresql+psycopg://postgres@127.0.0.1:5432/ --broker-url redis://127.0.0.1:6379/0",
        extracts=api,
        results=("benchmarks/results/api_latency-postgres-redis.json",),
        blocks={"tables": api_tables},
    ),
    Source(
        name="events-latency",
        about="epoch end → event at the client (benchmarks/events_latency.py), both modes",
        command=".venv/bin/python benchmarks/events_latency.py (and with --database-url, "
        "--broker-url)",
        extracts=events,
        results=(
            "benchmarks/results/events_latency-embedded.json",
            "benchmarks/results/events_latency-postgres-redis.json",
        ),
        blocks={"table": events_table},
    ),
    Source(
        name="sweeps-asha",
        about="ASHA against no pruning on digits (benchmarks/sweeps.py)",
        command=".venv/bin/python benchmarks/sweeps.py",
        extracts=sweeps,
        results=("benchmarks/results/sweeps-asha.json",),
        blocks={"table": sweeps_table},
    ),
    Source(
        name="playground-speed",
        about="POST /v1/playground end to end (benchmarks/playground.py)",
        command=".venv/bin/python benchmarks/playground.py",
        extracts=playground,
        results=("benchmarks/results/playground.json",),
        blocks={"table": playground_table},
    ),
    Source(
        name="reliability",
        about="what the fault and hostile-input tests threw (benchmarks/reliability.py)",
        command=".venv/bin/python benchmarks/reliability.py",
        extracts=reliability,
        results=("benchmarks/results/reliability.json",),
        blocks={"tables": reliability_tables},
    ),
]
