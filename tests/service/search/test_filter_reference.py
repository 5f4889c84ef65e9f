"""``GET /v1/jobs?filter=`` against a brute-force evaluator, on SQLite and PostgreSQL.

A few hundred jobs of two users are written straight into the database, with what makes
filters hard: ``"auto"`` rates beside numeric ones, ``"full"`` batches, missing keys,
JSON nulls in metrics, tags with and without a key, jobs in no project. Then 200 random
filters (seeded) are generated as trees, written out as text, sent to the API, and the
ids it answers compared with the ids this file's own evaluator finds. The evaluator is
written from docs/search.md, not from the server's code: a comparison with a missing
field is unknown, values of different types are never equal, ``and``/``or``/``not``
follow three-valued logic, a job matches when the filter is true.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import Backend, bearer, make_user

from service.db import make_engine, make_sessionmaker, session_scope
from service.jobs.models import Job
from service.main import create_app
from service.projects.models import Project

SEED = 1607
N_JOBS = 300
N_FILTERS = 200
START = datetime(2026, 1, 1, tzinfo=UTC)
MISSING = object()

NAMES = ["digits-adam", "it's mine", "50%_done", "ADAM run", 'sgd "quoted"', "plain"]
STATUSES = ["queued", "running", "succeeded", "failed", "diverged", "cancelled"]
OPTIMIZERS = ["adam", "sgd", "rmsprop"]
RATES: list[Any] = [0.1, 0.01, 0.003, 0.001, "auto", MISSING]
STAGES = ["baseline", "final", "Baseline", "draft"]
PROJECTS = ["vision", "tabular", None]


# -- the rows ---------------------------------------------------------------------------


def _maybe(rng: random.Random, value: Any, p: float = 0.75) -> Any:
    return value if rng.random() < p else MISSING


def _drop_missing(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _drop_missing(v) if isinstance(v, dict) else v
        for k, v in doc.items()
        if v is not MISSING
    }


def _metrics(rng: random.Random, nulls: bool = True) -> dict[str, Any] | None:
    """Metrics as a job keeps them; saved and best ones may hold nulls, final ones not."""
    if rng.random() < 0.2:
        return None
    doc = {
        "val_accuracy": rng.choice([0.9, 0.95, 0.97, 0.975, 0.99, None if nulls else MISSING]),
        "val_loss": _maybe(rng, round(rng.uniform(0.01, 2.0), 3)),
        "train_loss": _maybe(rng, round(rng.uniform(0.01, 2.0), 3), 0.5),
    }
    return _drop_missing(doc)


def make_row(rng: random.Random, i: int, owner: str, projects: dict[str, str]) -> dict[str, Any]:
    optimizer = rng.choice(OPTIMIZERS)
    spec = _drop_missing(
        {
            "dataset": {"name": rng.choice(["digits", "iris", "moons"])},
            "model": {"kind": "mlp", "batch_norm": _maybe(rng, rng.random() < 0.5)},
            "optimizer": {
                "name": optimizer,
                "lr": rng.choice(RATES),
                "momentum": rng.choice([0.0, 0.9]) if optimizer == "sgd" else MISSING,
            },
            "training": {"epochs": 10, "batch_size": rng.choice([16, 32, 64, "full"])},
        }
    )
    tags = _drop_missing(
        {
            "stage": _maybe(rng, rng.choice(STAGES)),
            "a.b": _maybe(rng, rng.choice(["x", "y"]), 0.3),
            "owner": _maybe(rng, rng.choice(["ana", "bo"]), 0.5),
        }
    )
    project = rng.choice(PROJECTS)
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "owner_id": owner,
        "name": rng.choice(NAMES),
        "status": rng.choice(STATUSES),
        "kind": "train",
        "task": "classification",
        "spec": spec,
        "n_parameters": 100,
        "epochs_completed": rng.randint(0, 10),
        "final_metrics": _metrics(rng, nulls=False),
        "saved_metrics": _metrics(rng),
        "best_metrics": _metrics(rng),
        "tags": tags or None,
        "note": rng.choice([None, "Warm-up too short", "looks fine"]),
        "project_id": projects.get(project) if project else None,
        "has_model": rng.random() < 0.5,
        "created_at": START + timedelta(minutes=i),
    }


@dataclass
class World:
    client: TestClient
    rows: list[dict[str, Any]]  # the caller's jobs, each with its "project" name
    others: set[str]  # ids of another user's jobs


@pytest.fixture(scope="module")
def world(module_backend: Backend) -> Iterator[World]:
    rng = random.Random(SEED)
    token, other = make_user(module_backend, "searcher"), make_user(module_backend, "other")
    settings = module_backend.settings()
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        owner = client.get("/v1/me").json()["id"]
        other_id = client.get("/v1/me", headers=bearer(other)).json()["id"]
        engine = make_engine(str(settings.database_url))
        rows, others = [], set()
        with session_scope(make_sessionmaker(engine)) as s:
            projects = {}
            for who in (owner, other_id):
                for name in ("vision", "tabular"):
                    p = Project(id=str(uuid.uuid4()), owner_id=who, name=name)
                    s.add(p)
                    if who == owner:
                        projects[name] = p.id
            s.flush()
            for i in range(N_JOBS):
                row = make_row(rng, i, owner, projects)
                s.add(Job(**row))
                names = {v: k for k, v in projects.items()}
                rows.append({**row, "project": names.get(row["project_id"])})
            # Another user's jobs: alike, in projects of the same names; never found.
            for i in range(40):
                row = make_row(rng, i, other_id, {})
                s.add(Job(**row))
                others.add(row["id"])
        engine.dispose()
        yield World(client, rows, others)


# -- filters as trees, as text, and their meaning ---------------------------------------

#: field → the kinds of literal a filter compares it with.
FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("status",),
    "name": ("name",),
    "project": ("project",),
    "note": ("text",),
    "epochs_completed": ("int",),
    "has_model": ("bool",),
    "created_at": ("time",),
    "optimizer.name": ("optimizer",),
    "optimizer.lr": ("rate", "auto"),
    "optimizer.momentum": ("momentum",),
    "training.batch_size": ("batch", "full"),
    "model.batch_norm": ("bool",),
    "dataset.name": ("dataset",),
    "tags.stage": ("stage",),
    "tags.a.b": ("ab",),
    "tags.owner": ("tagowner",),
    "final.val_accuracy": ("accuracy",),
    "saved.val_accuracy": ("accuracy",),
    "best.val_loss": ("loss",),
    "saved.train_loss": ("loss",),
}
LITERALS: dict[str, list[Any]] = {
    "status": STATUSES,
    "name": NAMES + ["nobody"],
    "project": ["vision", "tabular", "elsewhere"],
    "text": ["Warm-up too short", "looks fine", "x"],
    "int": [0.0, 3.0, 5.0, 10.0],
    "bool": [True, False],
    "time": ["2026-01-01T02:00:00", "2026-01-01T03:30:00+00:00"],
    "optimizer": OPTIMIZERS + ["adamw"],
    "rate": [0.1, 0.01, 0.003, 0.001, 0.005],
    "auto": ["auto", "Auto"],
    "momentum": [0.0, 0.9, 0.5],
    "batch": [16.0, 32.0, 64.0],
    "full": ["full"],
    "dataset": ["digits", "iris", "moons"],
    "stage": STAGES,
    "ab": ["x", "y"],
    "tagowner": ["ana", "bo", "cy"],
    "accuracy": [0.9, 0.95, 0.97, 0.975, 0.99],
    "loss": [0.5, 1.0, 1.5],
}
SUBSTRINGS = ["adam", "ADAM", "50%", "%", "_", "it's", '"quoted', "WARM", "base", "o"]
NUMERIC = {"int", "time", "rate", "momentum", "batch", "accuracy", "loss"}


def gen_condition(rng: random.Random) -> tuple[Any, ...]:
    field = rng.choice(list(FIELDS))
    kind = rng.choice(FIELDS[field])
    values = LITERALS[kind]
    r = rng.random()
    if r < 0.08:
        return ("isnull", field, rng.random() < 0.5)
    if r < 0.2:
        return ("in", field, tuple(rng.sample(values, min(len(values), rng.randint(1, 3)))))
    text_like = isinstance(values[0], str) and kind != "time"
    if r < 0.3 and text_like:
        return ("cmp", field, "contains", rng.choice(SUBSTRINGS))
    ops = ["=", "!="] + (["<", "<=", ">", ">="] if kind in NUMERIC else [])
    return ("cmp", field, rng.choice(ops), rng.choice(values))


def gen(rng: random.Random, depth: int = 0) -> tuple[Any, ...]:
    r = rng.random()
    if depth >= 3 or r < 0.4:
        return gen_condition(rng)
    if r < 0.55:
        return ("not", gen(rng, depth + 1))
    parts = tuple(gen(rng, depth + 1) for _ in range(rng.randint(2, 3)))
    return ("and" if r < 0.8 else "or", parts)


def literal(value: Any, rng: random.Random) -> str:
    if isinstance(value, bool):
        return rng.choice(["true", "TRUE", "false"][:2] if value else ["false", "False"])
    if isinstance(value, float):
        return rng.choice([repr(value), f"{value:g}"])
    if rng.random() < 0.5:
        return "'" + value.replace("'", "''") + "'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(node: tuple[Any, ...], rng: random.Random) -> str:
    kind = node[0]
    if kind == "cmp":
        _, field, op, value = node
        return f"{field} {op} {literal(value, rng)}"
    if kind == "in":
        return f"{node[1]} in ({', '.join(literal(v, rng) for v in node[2])})"
    if kind == "isnull":
        return f"{node[1]} is {'not ' if node[2] else ''}null"
    if kind == "not":
        return f"not ({render(node[1], rng)})"
    joiner = f" {kind.upper() if rng.random() < 0.3 else kind} "
    return "(" + joiner.join(render(n, rng) for n in node[1]) + ")"


def value_of(row: dict[str, Any], field: str) -> Any:
    head, _, rest = field.partition(".")
    if not rest or head not in ("tags", "final", "saved", "best") and field in row:
        value = row.get(field)
    elif head == "tags":
        value = (row["tags"] or {}).get(rest, MISSING)
    elif head in ("final", "saved", "best"):
        value = (row[f"{head}_metrics"] or {}).get(rest, MISSING)
    else:
        value = row["spec"]
        for part in field.split("."):
            value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
    return MISSING if value is None else value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "time" if isinstance(value, datetime) else "string"


def compare(value: Any, op: str, lit: Any) -> bool | None:
    if value is MISSING:
        return None
    if isinstance(value, datetime):
        lit = datetime.fromisoformat(lit)
        lit = lit if lit.tzinfo else lit.replace(tzinfo=UTC)
    elif _kind(value) != _kind(lit):
        return op == "!="
    if op == "contains":
        return lit.lower() in value.lower()
    return {
        "=": value == lit,
        "!=": value != lit,
        "<": value < lit,
        "<=": value <= lit,
        ">": value > lit,
        ">=": value >= lit,
    }[op]


def evaluate(node: tuple[Any, ...], row: dict[str, Any]) -> bool | None:
    kind = node[0]
    if kind == "cmp":
        return compare(value_of(row, node[1]), node[2], node[3])
    if kind == "isnull":
        missing = value_of(row, node[1]) is MISSING
        return not missing if node[2] else missing
    if kind == "in":
        found = [compare(value_of(row, node[1]), "=", v) for v in node[2]]
        return True if True in found else None if None in found else False
    if kind == "not":
        inner = evaluate(node[1], row)
        return None if inner is None else not inner
    results = [evaluate(n, row) for n in node[1]]
    if kind == "and":
        return False if False in results else None if None in results else True
    return True if True in results else None if None in results else False


def found_ids(client: TestClient, text: str, sort: str = "-created_at") -> list[str]:
    ids: list[str] = []
    while True:
        r = client.get(
            "/v1/jobs", params={"filter": text, "sort": sort, "limit": 200, "offset": len(ids)}
        )
        assert r.status_code == 200, f"{text}: {r.text}"
        page = r.json()
        ids += [j["id"] for j in page["items"]]
        if len(ids) >= page["total"] or not page["items"]:
            return ids


def test_random_filters_find_what_the_reference_evaluator_finds(world: World) -> None:
    rng = random.Random(SEED)
    matched_some = 0
    for _ in range(N_FILTERS):
        tree = gen(rng)
        text = render(tree, rng)
        expected = {r["id"] for r in world.rows if evaluate(tree, r) is True}
        got = found_ids(world.client, text)
        assert len(got) == len(set(got)), text
        assert set(got) == expected, (
            text,
            sorted(expected - set(got))[:3],
            sorted(set(got) - expected)[:3],
        )
        assert not set(got) & world.others
        matched_some += bool(expected) and len(expected) < len(world.rows)
    # The filters discriminate: most match some jobs but not all.
    assert matched_some > N_FILTERS // 3


def _ordinals(text: str, sign: int) -> tuple[int, ...]:
    # Text in either direction: its ordinals, and a prefix before (or after) its longer
    # strings.
    return (*(sign * ord(c) for c in text), sign * -1)


def sort_key(row: dict[str, Any], field: str, descending: bool) -> tuple[Any, ...]:
    """The documented order: numbers, then text, then missing; ties by id in the sort's
    direction."""
    value = value_of(row, field)
    sign = -1 if descending else 1
    tie = _ordinals(row["id"], sign)
    if isinstance(value, bool):
        return (0, sign * int(value), (), tie)
    if isinstance(value, int | float):
        return (0, sign * value, (), tie)
    if isinstance(value, str):
        return (1, 0, _ordinals(value, sign), tie)
    return (2, 0, (), tie)


@pytest.mark.parametrize(
    "sort",
    [
        "optimizer.lr",
        "-optimizer.lr",
        "-saved.val_accuracy",
        "training.batch_size",
        "tags.owner",  # lower-case values: the order is the same under any collation
        "-epochs_completed",
        "project",
    ],
)
def test_sorting_by_any_field_puts_missing_values_last(world: World, sort: str) -> None:
    field = sort.removeprefix("-")
    got = found_ids(world.client, "status != 'running'", sort=sort)
    rows = [r for r in world.rows if r["status"] != "running"]
    expected = sorted(rows, key=lambda r: sort_key(r, field, sort.startswith("-")))
    assert got == [r["id"] for r in expected]
