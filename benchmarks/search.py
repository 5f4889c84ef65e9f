"""The job search (``GET /v1/jobs?filter=…&sort=…&limit=50``) over 100,000 jobs.

Jobs with realistic specs, metrics, tags and projects are bulk-inserted for several
owners (one of them holds most: the search's worst case is a user with many jobs) into a
fresh, migrated database — PostgreSQL (created, and dropped at the end) and SQLite for
contrast. Then each query below is sent through the in-process API (FastAPI's test
client: routing, the owner check, the SQL, 50 jobs serialised) ``--repeats`` times after
a few untimed ones, and p50/p99 are reported, with how many jobs matched (``total``,
which is always exact: the count runs the same filter).

    .venv/bin/python benchmarks/search.py
    .venv/bin/python benchmarks/search.py --jobs 20000 --backends sqlite   # a quick look

Writes ``benchmarks/results/search.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    machine_info,
    percentile,
    table,
    write_results,
)

#: (label, filter, sort): what a user with many jobs asks.
QUERIES: list[tuple[str, str | None, str]] = [
    ("newest (no filter)", None, "-created_at"),
    (
        "the issue's example",
        "optimizer.name = 'adam' and saved.val_accuracy > 0.97 and tags.stage = 'baseline'",
        "-created_at",
    ),
    (
        "the issue's example, best first",
        "optimizer.name = 'adam' and saved.val_accuracy > 0.97 and tags.stage = 'baseline'",
        "-saved.val_accuracy",
    ),
    ("failed or diverged", "status in ('failed', 'diverged')", "-created_at"),
    (
        "small rates, big batches",
        "optimizer.lr < 0.01 and training.batch_size >= 64",
        "optimizer.lr",
    ),
    ("rare: one dataset, one tag", "dataset.name = 'wine' and tags.owner = 'ana'", "-created_at"),
    ("name contains", "name contains 'sgd'", "name"),
    ("a project", "project = 'p3'", "-best.val_accuracy"),
]

OPTIMIZERS = ["sgd", "adam", "adamw", "rmsprop", "nadam", "adagrad", "adamax"]
DATASETS = ["digits", "iris", "wine", "breast_cancer", "moons", "diabetes"]
STAGES = ["baseline", "ablation", "final", "draft"]
STATUSES = ["succeeded"] * 6 + ["failed", "diverged", "cancelled", "queued", "running"]


def make_job(rng: random.Random, owner: str, when: datetime, projects: list[str]) -> dict:
    optimizer = rng.choice(OPTIMIZERS)
    dataset = rng.choice(DATASETS)
    lr: Any = "auto" if rng.random() < 0.1 else round(10 ** rng.uniform(-4, -1), 6)
    spec = {
        "kind": "train",
        "name": None,
        "dataset": {"name": dataset, "val_fraction": 0.2, "scaling": "standard"},
        "model": {
            "kind": "mlp",
            "hidden": rng.choice([[64], [128, 64], [256, 128, 64]]),
            "activation": rng.choice(["relu", "gelu", "tanh"]),
            "batch_norm": rng.random() < 0.3,
            "dropout": rng.choice([0.0, 0.1, 0.3]),
            "init": "he_normal",
        },
        "optimizer": {"name": optimizer, "lr": lr, "weight_decay": 0.0},
        "schedule": {"name": rng.choice(["constant", "cosine", "one_cycle"])},
        "regularization": {"l1": 0.0, "l2": 0.0001, "early_stopping": None, "grad_clip": None},
        "training": {
            "epochs": rng.choice([10, 20, 50]),
            "batch_size": rng.choice([16, 32, 64, 128, "full"]),
            "seed": rng.randint(0, 9),
            "device": "auto",
        },
    }
    acc = round(rng.uniform(0.6, 0.995), 4)
    metrics = {"train_loss": round(rng.uniform(0.01, 1), 4), "val_loss": round(1 - acc, 4)}
    metrics["val_accuracy"] = acc
    status = rng.choice(STATUSES)
    done = status in ("succeeded", "failed", "diverged", "cancelled")
    tags = {"stage": rng.choice(STAGES)} if rng.random() < 0.6 else {}
    if rng.random() < 0.3:
        tags["owner"] = rng.choice(["ana", "bo", "cy", "dee"])
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "owner_id": owner,
        "name": f"{dataset}-mlp-{optimizer}",
        "kind": "train",
        "status": status,
        "spec": spec,
        "task": "regression" if dataset == "diabetes" else "classification",
        "n_parameters": rng.randint(1_000, 200_000),
        "cancel_requested": False,
        "epochs_completed": spec["training"]["epochs"] if done else 0,
        "final_metrics": metrics if done else None,
        "saved_metrics": metrics if status == "succeeded" else None,
        "best_metrics": metrics if done else None,
        "has_model": status == "succeeded",
        "has_bundle": False,
        "attempt": 1,
        "dispatch": 1,
        "tags": tags or None,
        "project_id": rng.choice(projects) if rng.random() < 0.5 else None,
        "created_at": when,
    }


def populate(url: str, n_jobs: int, seed: int) -> str:
    """``n_jobs`` jobs: 70% the searcher's, the rest spread over three other users.
    Returns the searcher's plain API token."""
    from sqlalchemy import insert
    from support import make_user_at

    from service.db import make_engine, make_sessionmaker, session_scope
    from service.jobs.models import Job
    from service.projects.models import Project

    token = make_user_at(url, "searcher")
    others = [make_user_at(url, f"other{i}") for i in range(3)]
    rng = random.Random(seed)
    engine = make_engine(url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(make_sessionmaker(engine)) as s:
        from service.auth.models import User

        users = {u.name: u.id for u in s.query(User)}
        owners = [users["searcher"]] * 7 + [users[f"other{i}"] for i in range(3)]
        projects: dict[str, list[str]] = {}
        for owner in set(owners):
            projects[owner] = []
            for i in range(10):
                p = Project(id=str(uuid.uuid4()), owner_id=owner, name=f"p{i}")
                s.add(p)
                projects[owner].append(p.id)
        s.flush()
        batch: list[dict] = []
        for i in range(n_jobs):
            owner = rng.choice(owners)
            when = start + timedelta(seconds=30 * i)
            batch.append(make_job(rng, owner, when, projects[owner]))
            if len(batch) == 5000:
                s.execute(insert(Job), batch)
                batch = []
        if batch:
            s.execute(insert(Job), batch)
        s.commit()
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    del others
    return token


def measure(client: Any, token: str, repeats: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    out = []
    for label, text, sort in QUERIES:
        params: dict[str, Any] = {"sort": sort, "limit": 50}
        if text:
            params["filter"] = text
        times = []
        total = None
        for i in range(repeats + 3):
            t0 = time.perf_counter()
            r = client.get("/v1/jobs", params=params, headers=headers)
            elapsed = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            total = r.json()["total"]
            if i >= 3:
                times.append(elapsed * 1000)
        out.append(
            {
                "query": label,
                "filter": text,
                "sort": sort,
                "matches": total,
                "p50_ms": round(percentile(times, 50), 2),
                "p99_ms": round(percentile(times, 99), 2),
                "max_ms": round(max(times), 2),
                "n": len(times),
            }
        )
    return out


@contextlib.contextmanager
def backend(kind: str) -> Iterator[Any]:
    from support import make_backend

    b = make_backend(kind, Path(tempfile.mkdtemp(prefix="descent-search-")))
    try:
        yield b
    finally:
        b.close()


def run(kind: str, n_jobs: int, repeats: int, seed: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from service.main import create_app

    with backend(kind) as b:
        settings = b.settings()
        t0 = time.perf_counter()
        token = populate(str(settings.database_url), n_jobs, seed)
        insert_s = time.perf_counter() - t0
        with TestClient(create_app(settings)) as client:
            rows = measure(client, token, repeats)
    return {"backend": kind, "jobs": n_jobs, "insert_seconds": round(insert_s, 1), "queries": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "search.json")
    args = parser.parse_args()
    results = []
    for kind in args.backends.split(","):
        result = run(kind, args.jobs, args.repeats, args.seed)
        results.append(result)
        print(f"\n{kind}: {args.jobs:,} jobs (inserted in {result['insert_seconds']} s)")
        print(
            table(
                ["query", "matches", "p50 ms", "p99 ms"],
                [[q["query"], q["matches"], q["p50_ms"], q["p99_ms"]] for q in result["queries"]],
            )
        )
    payload = {
        "benchmark": "search",
        "machine": machine_info(),
        "settings": {"jobs": args.jobs, "repeats": args.repeats, "limit": 50, "seed": args.seed},
        "results": results,
    }
    print(f"\nwrote {write_results(args.out, payload)}")


if __name__ == "__main__":
    main()
