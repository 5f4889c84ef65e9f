"""Fuzzing: schemathesis over the OpenAPI schema, against the in-process app.

The app runs on a fresh SQLite database and SQL broker, with no worker: submitted jobs
stay queued, and one job is made to look finished (metrics, an attempt, a weights file)
so the routes that serve results answer with real content. Two kinds of run:

- **With an admin's token**, every operation gets positive and negative cases through
  schemathesis's examples, coverage, fuzzing and stateful phases, and every response
  goes through the checks in ``CHECKS``: no 5xx; status code, content type, headers and
  body as the schema documents them; schema-invalid requests refused with a 4xx,
  schema-valid ones accepted. A well-formed id in a path is swapped (a choice Hypothesis
  makes, so it shrinks and replays) for the id of a real row, so the run gets past 404:
  every operation must succeed at least once.
- **Without a token, and with a bad one**, every operation but ``/healthz`` and signing a
  browser in answers 401,
  whatever the rest of the request holds.

Bounded for CI: ``DESCENT_FUZZ_EXAMPLES`` fuzzing-phase examples per operation and
generation mode (default 15; 5 for the runs without a token), derandomized and seeded,
with no example database, so a run is the same run everywhere; the coverage phase skips
``COVERED_ELSEWHERE``. About two minutes in all on two cores. No Hypothesis
health check is suppressed. ``DESCENT_FUZZ_EXAMPLES=200`` makes a longer hunt.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from bundles import write_bundle
from fastapi.testclient import TestClient
from faults import record_figures
from hypothesis import strategies as st
from job_results import auto_lr_record, landscape_record, range_test_record
from schemathesis.engine import Status, events, from_schema
from support import bearer, make_backend, make_user
from sweep_rows import J, add_trial, float_record

from service.db import make_engine, make_sessionmaker, session_scope, utcnow
from service.deps import UUID_PATTERN
from service.jobs.models import EpochMetric, Job, JobAttempt
from service.jobs.states import JobStatus
from service.main import create_app
from service.sweeps.models import Sweep
from service.sweeps.states import SweepStatus

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("DESCENT_FUZZ_EXAMPLES", "15"))
UUID = re.compile(UUID_PATTERN)
log = logging.getLogger(__name__)
SEED = 20240917

#: The checks of the run with a token: every one schemathesis has but two.
#: - ``max_response_time``: a wall-clock limit; timings are for benchmarks, not tests.
#: - ``object_level_authorization``: needs a second identity; test_idor.py tries every
#:   route with another user's ids.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",  # a schema-invalid request gets a 4xx
    "positive_data_acceptance",  # a schema-valid one a 2xx (or 401/403/404/409)
    "missing_required_header",
    "unsupported_method",  # 405 with an Allow header
    "allow_header_conformance",
    "ignored_auth",  # the same request without a token, or with a bad one, gets a 401
    "use_after_free",  # stateful phase: what was deleted stays gone
    "ensure_resource_availability",  # stateful phase: what was created can be read
]
#: Without a token every answer is a 401: these check that it is the documented one.
CHECKS_WITHOUT_TOKEN = [
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]

#: Operations whose schema-valid requests may still be refused (422), because what makes
#: them valid is not a matter of JSON Schema: a job must fit its dataset (input shape,
#: classes, rows) and the server's caps; an upload must be a parseable CSV; a metric name
#: must be one the job's task records. Every other check still runs on them.
SEMANTIC_422 = [
    "POST /v1/jobs",
    "POST /v1/datasets",
    "GET /v1/jobs/{job_id}/metrics",
    "GET /v1/jobs/{job_id}/metrics.csv",
    "GET /v1/jobs/{job_id}/plot.png",
    "GET /v1/jobs/{job_id}/plot.svg",
    "GET /v1/plots/compare.png",
    "GET /v1/plots/compare.svg",
    "POST /v1/sweeps",
    "POST /v1/comparisons",
    "GET /v1/sweeps/{sweep_id}/plots/{kind}.{fmt}",
    # A schedule must fit the number of steps; steps × runs has a cap.
    "POST /v1/playground",
    # Rows must have as many values as the job's model has features.
    "POST /v1/jobs/{job_id}/predict",
    # `filter` and `sort` are sentences of the search language (docs/search.md): a
    # string the schema allows may not parse, or name no field.
    "GET /v1/jobs",
    # Tags merged into those a job or sweep has may come to more than 50.
    "PATCH /v1/jobs/{job_id}",
    "PATCH /v1/sweeps/{sweep_id}",
]


def csv_bytes(rows: int = 40) -> bytes:
    lines = ["x1,x2,label"] + [
        f"{i * 0.5},{(i % 7) - 3},{'yes' if i % 2 else 'no'}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Tally:
    """What the runs sent and got back, for the assertions and the figures."""

    statuses: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)  # (operation, status) -> answers
    failures: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # a non-401 answer without a token

    @property
    def payloads(self) -> int:
        return sum(self.statuses.values())

    def count(self, low: int, high: int) -> int:
        return sum(n for status, n in self.statuses.items() if low <= status < high)


@dataclass
class World:
    app: Any
    token: str
    ids: dict[str, list[str]]  # real ids by path parameter name
    own: set[str]  # the fuzzer's own user and token ids
    tally: Tally
    #: A lab chart's view → the job that has it (the range test's, or the landscape's).
    lab: dict[str, str] = field(default_factory=dict)


def served(app: Any) -> Any:
    """``app`` as a server runs it: an exception that escapes it has already been answered
    with a 500 (Starlette sends one, then re-raises for the server to log), and that 500
    is what the client sees and the checks judge."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            if scope["type"] != "http":
                raise
            log.exception("the app raised; the client got a 500")

    return asgi


def finish_job(backend_url: str, settings: Any, job_id: str) -> None:
    """Make a queued job look as a worker leaves a succeeded one."""
    engine = make_engine(backend_url)
    now = utcnow()
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            job = session.get(Job, job_id)
            assert job is not None
            for epoch in (1, 2, 3):
                values = {
                    "train_loss": 1.0 / epoch,
                    "val_loss": 1.1 / epoch,
                    "train_accuracy": 0.5 + epoch / 10,
                    "val_accuracy": 0.45 + epoch / 10,
                    "lr": 0.01,
                    "grad_norm": 0.3,
                    "weight_norm": 4.2,
                    "epoch_seconds": 0.01,
                    "samples_per_second": 9000.0,
                }
                session.add(EpochMetric(job_id=job_id, epoch=epoch, values=values))
            session.add(
                JobAttempt(
                    job_id=job_id,
                    attempt=1,
                    worker="fuzz:1",
                    started_at=now - timedelta(seconds=3),
                    ended_at=now,
                    outcome=JobStatus.SUCCEEDED,
                )
            )
            job.status, job.attempt, job.epochs_completed = JobStatus.SUCCEEDED, 1, 3
            job.best_epoch, job.best_value = 3, 1.1 / 3
            job.final_metrics = {"val_loss": 1.1 / 3, "val_accuracy": 0.75}
            job.started_at, job.finished_at = now - timedelta(seconds=3), now
            job.device, job.has_model, job.has_bundle, job.saved_epoch = "cpu", True, True, 3
            # As a job with an "auto" rate has it (GET …/result answers 200).
            job.result = auto_lr_record(0.01)
            session.commit()
    finally:
        engine.dispose()
    # An iris model's bundle (4 features, 3 classes): predictions answer with content.
    write_bundle(settings.jobs_dir / job_id, job_id=job_id)


#: What a finished range test and a finished landscape keep (small, as the charts need).
LAB_RESULTS: dict[str, Any] = {
    "lr_range_test": range_test_record(step=2, lr=0.01, steps=10),
    "landscape": landscape_record(),
}


def seed_lab_jobs(client: TestClient, trained: str) -> list[str]:
    """A finished range test (steps recorded) and a finished landscape of ``trained``,
    so that every lab chart has a job to draw; their ids."""
    r = client.post("/v1/jobs", json={"kind": "lr_range_test", "dataset": {"name": "iris"}})
    assert r.status_code == 202, r.text
    range_test = r.json()["id"]
    r = client.post("/v1/jobs", json={"kind": "landscape", "landscape": {"job_id": trained}})
    assert r.status_code == 202, r.text
    landscape = r.json()["id"]
    with client.app.state.sessionmaker() as s:
        for job_id in (range_test, landscape):
            job = s.get(Job, job_id)
            assert job is not None
            job.status, job.attempt, job.finished_at = JobStatus.SUCCEEDED, 1, utcnow()
            job.result = LAB_RESULTS[job.kind]
        for step, lr in enumerate((0.0001, 0.01, 1.0), start=1):
            values = {"lr": lr, "loss": 1.0, "smoothed_loss": 1.0}
            s.add(EpochMetric(job_id=range_test, epoch=step, values=values))
        s.commit()
    return [range_test, landscape]


def seed_sweeps(client: TestClient, on_dataset: dict[str, Any]) -> list[str]:
    """A finished sweep with complete trials (so importance, plots and the leaderboard
    have content), a finished comparison over seeds (statistics) and a running sweep
    (something to cancel); their ids."""
    bounds = {"optimizer.lr": (0.001, 0.1, True), "model.dropout": (0.0, 0.5, False)}
    search = client.post(
        "/v1/sweeps",
        json={
            "base": {"dataset": on_dataset, "training": {"epochs": 3}},
            "space": {
                "optimizer.lr": {"loguniform": [0.001, 0.1]},
                "model.dropout": {"uniform": [0.0, 0.5]},
            },
            "max_trials": 6,
        },
    )
    assert search.status_code == 201, search.text
    comparison = client.post(
        "/v1/comparisons",
        json={
            "base": {"dataset": {"name": "iris"}, "training": {"epochs": 3}},
            "configurations": [{"set": {}}, {"set": {"optimizer.lr": 0.01}}],
            "repeats": 3,
        },
    )
    assert comparison.status_code == 201, comparison.text
    running = client.post(
        "/v1/sweeps",
        json={"base": {"dataset": {"name": "iris"}}, "space": {"optimizer.lr": {"grid": [0.1]}}},
    )
    assert running.status_code == 201, running.text
    sessions = client.app.state.sessionmaker
    with sessions() as s:
        sid = search.json()["id"]
        for n in range(6):
            params = {"optimizer.lr": 0.001 * 1.9**n, "model.dropout": 0.08 * n}
            job = J(
                JobStatus.SUCCEEDED if n < 5 else JobStatus.PRUNED, 1.0 / (n + 1), 3 if n < 5 else 1
            )
            add_trial(s, sid, n, params, [job], record=float_record(params, bounds))
        cid = comparison.json()["id"]
        for n, conf in enumerate(comparison.json()["spec"]["configurations"]):
            jobs = [J(JobStatus.SUCCEEDED, 0.5 + 0.1 * n + 0.01 * r) for r in range(3)]
            add_trial(s, cid, n, conf["set"], jobs, record={"label": conf["label"]})
        for finished in (s.get(Sweep, sid), s.get(Sweep, cid)):
            assert finished is not None
            finished.status, finished.finished_at = SweepStatus.SUCCEEDED, utcnow()
        s.commit()
    return [sid, comparison.json()["id"], running.json()["id"]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    backend = make_backend("sqlite", tmp)
    # A queued job's event stream would wait for it forever: cut streams short. The
    # playground computes in the API: keep each fuzzed request small.
    settings = backend.settings().model_copy(
        update={"events_max_seconds": 0.2, "playground_max_steps": 200}
    )
    token = make_user(backend, "fuzzer", admin=True)
    victim = make_user(backend, "victim")
    app = create_app(settings)
    with TestClient(app, headers=bearer(token)) as client:
        dataset = client.post(
            "/v1/datasets",
            files={"file": ("small.csv", csv_bytes(), "text/csv")},
            data={"name": "small"},
        )
        assert dataset.status_code == 201, dataset.text
        unused = client.post(
            "/v1/datasets", files={"file": ("unused.csv", csv_bytes(), "text/csv")}
        )
        assert unused.status_code == 201, unused.text
        on_dataset = {"name": "uploaded", "id": dataset.json()["id"]}
        queued = client.post(
            "/v1/jobs", json={"name": "queued", "dataset": on_dataset, "project": "fuzzed"}
        )
        assert queued.status_code == 202, queued.text
        project_ids = [p["id"] for p in client.get("/v1/projects").json()["items"]]
        done = client.post("/v1/jobs", json={"name": "done", "dataset": {"name": "iris"}})
        assert done.status_code == 202, done.text
        spare = client.post("/v1/tokens", json={"name": "spare"})  # never the one in use
        assert spare.status_code == 201, spare.text
        victim_id = client.get("/v1/me", headers=bearer(victim)).json()["id"]
        own = {client.get("/v1/me").json()["id"]} | {
            t["id"]
            for t in client.get("/v1/tokens").json()["items"]
            if token.startswith(t["prefix"])
        }
        assert len(own) == 2
        sweep_ids = seed_sweeps(client, on_dataset)
        finish_job(str(settings.database_url), settings, done.json()["id"])
        lab_ids = seed_lab_jobs(client, done.json()["id"])
    ids = {
        "job_id": [done.json()["id"], queued.json()["id"], *lab_ids],
        # Training jobs, whose curves a comparison can overlay.
        "compare_jobs": [done.json()["id"], queued.json()["id"]],
        "dataset_id": [dataset.json()["id"], unused.json()["id"]],  # in use by a job; not
        "token_id": [spare.json()["id"]],
        "user_id": [victim_id],
        "sweep_id": sweep_ids,
        "project_id": project_ids,
    }
    tally = Tally()
    range_test, landscape = lab_ids
    lab = {"range_test": range_test} | dict.fromkeys(
        ("interpolation", "contour", "surface"), landscape
    )
    yield World(served(app), token, ids, own, tally, lab)
    record_figures(
        "schemathesis fuzzing (positive + negative)",
        backend="sqlite",
        payloads=tally.payloads,
        rejected_4xx=tally.count(400, 500),
        server_errors=tally.count(500, 600),
        schema_violations=len(tally.failures),
    )
    backend.close()


#: Operations whose coverage phase would repeat another's: a comparison's body is a
#: sweep's common part (base job spec, objective, seeds) plus labelled value sets, and
#: the coverage phase enumerates the job spec's boundaries in POST /v1/jobs and again in
#: POST /v1/sweeps's base. It still gets the examples, fuzzing and stateful phases.
#: Operations whose success needs a rare combination of generated values.
NARROW_SUCCESS = (
    "GET /v1/jobs/{job_id}/plots/{view}.{fmt}",
    "GET /v1/sweeps/{sweep_id}/plots/{kind}.{fmt}",
)
COVERED_ELSEWHERE = ["POST /v1/comparisons"]
#: A sweep plot's kinds (a well-formed {kind}, which real_ids may swap for "history").
SWEEP_PLOTS = ("history", "parallel", "intermediate", "importance", "comparison")
#: Operations that cannot succeed for this test's client, and why.
NO_SUCCESS_HERE = {
    "POST /v1/session/local": "offered to this machine's loopback address only; the "
    "in-process client is not (tests/service/auth/test_sessions.py signs in from there)",
}
#: Fuzzing-phase examples per operation without a valid token: every answer is the same
#: 401, which a few requests per operation show.
EXAMPLES_WITHOUT_TOKEN = min(EXAMPLES, 5)


def well_formed_rows(body: Any) -> bool:
    """A prediction body as its schema has it: {"rows": [...]}, each row a non-empty list
    of numbers or a non-empty object of numbers."""

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if not isinstance(body, dict) or set(body) != {"rows"} or not isinstance(body["rows"], list):
        return False
    return bool(body["rows"]) and all(
        (isinstance(row, list) and row and all(map(number, row)))
        or (isinstance(row, dict) and row and all(map(number, row.values())))
        for row in body["rows"]
    )


def load_schema(  # noqa: ANN201
    world: World, headers: dict[str, str] | None, checks: list[str], *, thorough: bool = True
):
    """The app's schema, with the run's configuration and the real-ids hook."""
    generation = {
        "mode": "all",  # positive and negative
        "max-examples": EXAMPLES if thorough else EXAMPLES_WITHOUT_TOKEN,
        "deterministic": True,
        "database": "none",  # no example database: every run is the same run
        # Without headers of ours, no made-up Authorization either: "none" means none.
        "with-security-parameters": headers is not None,
    }
    config: dict[str, Any] = {
        "seed": SEED,
        "workers": 1,
        "generation": generation,
        # Examples (the schema's own), coverage (boundary values of every parameter, and
        # deliberate violations), fuzzing (Hypothesis), stateful (sequences linked by
        # the Location header and the ids in responses).
        "phases": {"coverage": {"enabled": thorough}, "stateful": {"enabled": thorough}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
        "continue-on-failure": True,
        "operations": [
            {"include-name": name, "checks": {"positive_data_acceptance": {"enabled": False}}}
            for name in SEMANTIC_422
        ]
        + [
            {"include-name": name, "phases": {"coverage": {"enabled": False}}}
            for name in COVERED_ELSEWHERE
        ]
        + [
            # A lab chart succeeds only for a job of the view's kind (its id is offered
            # first, see real_ids), and only half the generated cases are positive: more
            # examples, so that a success is all but certain whatever order they come in.
            {"include-name": name, "generation": generation | {"max-examples": EXAMPLES * 2}}
            for name in NARROW_SUCCESS
        ],
    }
    if headers:
        config["headers"] = headers
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", world.app, config=schemathesis.Config.from_dict(config)
    )

    @schema.hook("flatmap_path_parameters")
    def real_ids(_ctx: Any, path_parameters: dict[str, Any] | None) -> Any:
        """The ids of real rows in place of well-formed generated ids, or the generated
        values (last: Hypothesis tries the first choices first). A malformed id is left
        alone: it is what makes a negative case negative.

        The fuzzer's own user and token ids (which it learns from responses) are always
        replaced: disabling itself or revoking its token would leave the rest of the run
        with nothing but 401s.
        """
        if not path_parameters:
            return st.just(path_parameters)
        choices = []
        for name, value in path_parameters.items():
            if name in world.ids and isinstance(value, str) and UUID.fullmatch(value):
                ids = world.ids[name]
                if name == "job_id" and (drawn := world.lab.get(path_parameters.get("view"))):
                    ids = [drawn, *(i for i in ids if i != drawn)]  # the job the view draws
                choices += [{**path_parameters, name: id_} for id_ in ids]
                if name == "sweep_id" and path_parameters.get("kind") in SWEEP_PLOTS:
                    # Whatever kind was drawn, the finished search draws its history.
                    choices.insert(0, {**path_parameters, name: ids[0], "kind": "history"})
        if world.own.isdisjoint(path_parameters.values()):
            choices.append(path_parameters)
        return st.sampled_from(choices)

    @schema.hook("flatmap_body")
    def real_bodies(ctx: Any, body: Any) -> Any:
        """Bodies that reach past the checks no JSON Schema can state, in place of
        well-formed generated ones (a malformed body is left alone: it makes a negative
        case), or the generated body:

        - POST /v1/session with the fuzzer's own token;
        - predictions with rows that fit the finished job's model (4 features; generated
          rows rarely have 4 values), as many as were generated.
        """
        operation = ctx.operation
        where = (operation.method.upper(), operation.path)
        if where == ("POST", "/v1/session"):
            token = body.get("token") if isinstance(body, dict) and set(body) == {"token"} else None
            if not isinstance(token, str) or not 0 < len(token) <= 256:
                return st.just(body)
            return st.sampled_from([{"token": world.token}, body])
        if where == ("POST", "/v1/jobs/{job_id}/predict") and well_formed_rows(body):
            return st.sampled_from([{"rows": [[5.1, 3.5, 1.4, 0.2]] * len(body["rows"])}, body])
        return st.just(body)

    @schema.hook("flatmap_query")
    def real_job_lists(_ctx: Any, query: dict[str, Any] | None) -> Any:
        """``?jobs=`` (the compare plot) naming real jobs, or the generated value (which,
        when well-formed, names jobs that do not exist)."""
        if not query or "jobs" not in query:
            return st.just(query)
        return st.sampled_from([{**query, "jobs": ",".join(world.ids["compare_jobs"])}, query])

    return schema


def run(schema: Any, tally: Tally) -> list[str]:
    """Run every phase; return each failed check, once per operation, check and kind."""
    failures: dict[tuple[str, str, str], str] = {}

    @schema.hook("after_call")
    def count(_ctx: Any, case: Any, response: Any) -> None:
        tally.statuses[response.status_code] += 1
        if case.method.upper() == case.operation.method.upper():
            tally.by_operation[case.operation.label, response.status_code] += 1

    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    if node.status != Status.FAILURE or node.failure_info is None:
                        continue
                    failure = node.failure_info.failure
                    tally.failures.append(node.name)
                    key = (event.recorder.label, node.name, failure.title)
                    failures.setdefault(
                        key,
                        f"{key[0]}: {node.name}: {failure.title}\n{failure.message}\n"
                        f"reproduce: {node.failure_info.code_sample}",
                    )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            error = getattr(event, "value", None) or getattr(event, "exception", None)
            tally.failures.append("error")
            failures.setdefault(("error", repr(error), ""), f"schemathesis error: {error!r}")
    return list(failures.values())


def test_no_server_errors_and_no_schema_violations(world: World) -> None:
    schema = load_schema(world, bearer(world.token), CHECKS)
    failures = run(schema, world.tally)
    assert not failures, "\n\n".join(failures)
    # The run reached past the 401s, 404s and 422s: every operation did its job at least
    # once (a new route whose ids the fuzzer cannot guess needs a real row in world()).
    labels = [op.ok().label for op in schema.get_all_operations()]
    assert len(labels) >= 20
    succeeded = {label for label, status in world.tally.by_operation if 200 <= status < 300}
    missing = set(labels) - succeeded - set(NO_SUCCESS_HERE)
    assert not missing, (
        sorted(missing),
        [(k, n) for k, n in world.tally.by_operation.items() if k[0] in missing],
    )


@pytest.mark.parametrize("credential", ["none", "bad"])
def test_without_a_valid_token_every_operation_answers_401(world: World, credential: str) -> None:
    headers = None if credential == "none" else bearer("dsc_" + "x" * 43)
    schema = load_schema(
        world,
        headers,
        CHECKS_WITHOUT_TOKEN,
        # The token is checked before anything else: the coverage phase's thousands of
        # body variants and the stateful phase's sequences would all meet the same 401.
        thorough=False,
    )
    # /healthz, /readyz, and signing a browser in (it is how a page gets credentials),
    # need none.
    schema = schema.exclude(path="/healthz").exclude(path="/readyz")
    schema = schema.exclude(path_regex="^/v1/session/")
    schema = schema.exclude(path="/v1/session", method=["GET", "POST"])
    local = Tally()

    @schema.hook("after_call")
    def only_401(_ctx: Any, case: Any, response: Any) -> None:
        if response.status_code != 401:
            local.unexpected.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    failures = run(schema, local)
    world.tally.statuses.update(local.statuses)
    world.tally.failures += local.failures
    assert not failures, "\n\n".join(failures)
    assert not local.unexpected, local.unexpected[:20]
    labels = [op.ok().label for op in schema.get_all_operations()]
    assert len(labels) >= 20
    assert all(local.by_operation[label, 401] >= 1 for label in labels), local.by_operation
