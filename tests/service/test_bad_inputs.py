"""A corpus of hostile and malformed requests, through the real in-process API.

Each table below is a list of payloads: path traversal in every path parameter, job
specs with non-finite, negative, absurd or mistyped values, JSON nested 10,000 deep or
not JSON at all, bodies over the cap, and malformed CSV uploads. Every one must get a 4xx
with the standard error body (naming the field where there is one), never a 5xx; and
after each table there is no job or dataset row and no file in the artifact store.

Each test counts the payloads it tried and how they were answered, and appends those
figures to the file named by DESCENT_RELIABILITY_FIGURES when it is set
(benchmarks/reliability.py turns them into docs/reliability.md's table).
"""

from __future__ import annotations

import json as _json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import pytest
from faults import record_figures
from sqlalchemy import func, select
from support import bearer, make_user

from service.config import Settings
from service.datasets.models import Dataset
from service.jobs.models import Job
from service.jobs.service import limits
from service.spec import JobSpec, check_job

JSON = {"content-type": "application/json"}
#: Written where a path-traversal id would lead; must never be opened, served or removed.
SENTINEL = b"SENTINEL-must-never-be-served"


# --------------------------------------------------------------------------- machinery


@dataclass
class Case:
    label: str
    method: str
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    status: int | tuple[int, ...] | None = None  # None: any 4xx
    field: str | None = None  # must be named in error.fields
    code: str | None = None  # error.code


@dataclass
class Tally:
    """Runs cases, counts how they were answered and collects every broken promise."""

    test: str
    payloads: int = 0
    rejected_4xx: int = 0
    server_errors: int = 0
    problems: list[str] = field(default_factory=list)

    def run(self, client: Any, case: Case) -> Any:
        self.payloads += 1
        r = client.request(case.method, case.url, **case.kwargs)
        if r.status_code >= 500:
            self.server_errors += 1
        elif r.status_code >= 400:
            self.rejected_4xx += 1
        for problem in _problems(case, r):
            self.problems.append(f"{case.label}: {problem} (got {r.status_code}: {r.text[:300]})")
        return r

    def finish(self, api: Any) -> None:
        record_figures(
            self.test,
            backend="sqlite",
            payloads=self.payloads,
            rejected_4xx=self.rejected_4xx,
            server_errors=self.server_errors,
        )
        assert not self.problems, f"{len(self.problems)} problems:\n" + "\n".join(self.problems)
        assert self.rejected_4xx == self.payloads
        assert_nothing_written(api)


def _problems(case: Case, r: Any) -> list[str]:
    expected = (case.status,) if isinstance(case.status, int) else case.status or ()
    if r.status_code in (401, 403) and r.status_code not in expected:
        return ["refused for want of authority, so the payload was never checked"]
    if not 400 <= r.status_code < 500:
        return ["not a 4xx"]
    out = []
    if expected and r.status_code not in expected:
        out.append(f"expected {expected}")
    if SENTINEL.decode() in r.text:
        out.append("served the sentinel file")
    try:
        error = r.json()["error"]
    except Exception:
        return [*out, "no standard error body"]
    if error.get("status") != r.status_code or not error.get("code"):
        out.append("error.status or error.code is wrong")
    if not isinstance(error.get("message"), str) or not error["message"]:
        out.append("error.message is empty")
    if case.code and error.get("code") != case.code:
        out.append(f"expected code {case.code!r}")
    if case.field:
        named = [f["field"] for f in error.get("fields", [])]
        if case.field not in named:
            out.append(f"field {case.field!r} not named in {named}")
    return out


def assert_nothing_written(api: Any) -> None:
    with api.app.state.engine.connect() as conn:
        jobs = conn.scalar(select(func.count()).select_from(Job))
        datasets = conn.scalar(select(func.count()).select_from(Dataset))
    assert (jobs, datasets) == (0, 0), "a rejected request left rows behind"
    artifacts = Path(api.app.state.settings.artifacts_dir)
    files = [p for p in artifacts.rglob("*") if p.is_file()] if artifacts.exists() else []
    assert not files, f"a rejected request left files behind: {files}"


def job(label: str, body: Any, field: str | None = None, status: int = 422) -> Case:
    return Case(label, "POST", "/v1/jobs", {"json": body}, status, field)


def raw(
    label: str,
    content: bytes,
    *,
    status: int = 422,
    field: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Case:
    headers = JSON if headers is None else headers
    return Case(
        label, "POST", "/v1/jobs", {"content": content, "headers": headers}, status, field, code
    )


# --------------------------------------------------------------------------- path traversal

TRAVERSAL_IDS = [
    "..",
    "../..",
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252fetc%252fpasswd",  # double-encoded
    "..%5c..%5cwindows%5cwin.ini",
    "..\\..\\windows\\win.ini",
    "....//....//etc/passwd",
    "..;/..;/etc/passwd",
    "%c0%ae%c0%ae%c0%af",  # overlong UTF-8 dots and slash
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "C:\\Windows\\win.ini",
    "C:%5cWindows%5cwin.ini",
    "file:%2f%2f%2fetc%2fpasswd",
    "%00",
    "..%00",
    "model.pt%00.json",
    "sentinel",
    "../../sentinel",
    "~root",
    "$HOME",
    "*",
    "a" * 10_000,
    "0" * 36,
    "00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-000000000000%2f..",
]

#: A traversal id is not found (404) or malformed (422); one that splits the path may land
#: on no route for its method (405). Admin-only routes answer a user 403 and are tried
#: again with an admin's token.
TRAVERSAL_ANSWERS = (403, 404, 405, 422)
#: The traversal targets: files a vulnerable route would reach from the artifact store.
AUDITED = ("open", "os.remove", "os.unlink", "os.rename", "os.replace", "shutil.rmtree")
_audit_log: list[str] | None = None
_audit_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _audit_log is not None and event in AUDITED and args and isinstance(args[0], str | bytes):
        _audit_log.append(str(args[0]))


@pytest.fixture
def file_audit() -> Iterator[list[str]]:
    """Paths the process opens, removes or renames while the fixture is active."""
    global _audit_log, _audit_installed
    if not _audit_installed:
        sys.addaudithook(_audit)  # hooks cannot be removed; this one idles outside the fixture
        _audit_installed = True
    _audit_log = []
    try:
        yield _audit_log
    finally:
        _audit_log = None


@dataclass
class RawResponse:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.content)


class RawClient:
    """Sends a path to the app exactly as given, the way ``curl --path-as-is`` does.

    httpx (under TestClient) resolves ``..`` segments before a request leaves, so
    ``/v1/jobs/../../etc/passwd`` would reach the app as ``/etc/passwd``; this calls the
    ASGI app directly with the raw path (percent-escapes decoded in ``path`` as a server
    decodes them, kept in ``raw_path``).
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def request(
        self, method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> RawResponse:
        body = b"" if json is None else _json.dumps(json).encode()
        merged = {k.lower(): v for k, v in [*self.client.headers.items(), *(headers or {}).items()]}
        if json is not None:
            merged["content-type"] = "application/json"
        merged["content-length"] = str(len(body))
        merged["host"] = "testserver"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(url),
            "raw_path": url.encode("utf-8", "surrogateescape"),
            "root_path": "",
            "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in merged.items()],
            "client": ("testclient", 50000),
            "server": ("testserver", 80),
        }
        sent = False
        messages: list[dict[str, Any]] = []

        async def call() -> None:
            answered = anyio.Event()

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    # Connected until the answer is complete, as a real client (and
                    # TestClient's transport) is: the app drops a request whose client
                    # has gone.
                    await answered.wait()
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                messages.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    answered.set()

            await self.client.app(scope, receive, send)

        self.client.portal.call(call)
        start = next(m for m in messages if m["type"] == "http.response.start")
        content = b"".join(
            m.get("body", b"") for m in messages if m["type"] == "http.response.body"
        )
        return RawResponse(start["status"], content)


def path_operations(api: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route with a path parameter, from the OpenAPI doc."""
    schema = api.get("/openapi.json").json()
    ops = [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if "{" in path
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(ops) >= 6, ops
    return ops


def test_path_traversal_in_every_path_parameter(
    api: Any, sqlite_backend: Any, file_audit: list[str]
) -> None:
    admin = bearer(make_user(sqlite_backend, "root", admin=True))
    data_dir = Path(api.app.state.settings.data_dir)
    sentinels = [data_dir / "model.pt", data_dir / "sentinel.npz", data_dir / "sentinel"]
    for path in sentinels:
        path.write_bytes(SENTINEL)
    assert any("sentinel" in p for p in file_audit)  # the audit hook sees opens
    file_audit.clear()
    tally = Tally("bad inputs: path traversal")
    raw_client = RawClient(api)
    for method, template in path_operations(api):
        for bad in TRAVERSAL_IDS:
            url = template
            while "{" in url:
                start, end = url.index("{"), url.index("}")
                url = url[:start] + bad + url[end + 1 :]
            kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            label = f"{method} {template} with {bad[:40]!r}"
            r = tally.run(raw_client, Case(label, method, url, kwargs, TRAVERSAL_ANSWERS))
            if r.status_code == 403:  # an admin's route: the id is checked for an admin
                as_admin = Case(
                    f"{label} as an admin",
                    method,
                    url,
                    {**kwargs, "headers": admin},
                    (404, 405, 422),
                )
                tally.run(raw_client, as_admin)
    # Nothing under the data dir was opened, removed or renamed, and the sentinels are intact.
    touched = [p for p in file_audit if str(data_dir) in p or "passwd" in p or "win.ini" in p]
    assert not touched, touched
    assert all(p.read_bytes() == SENTINEL for p in sentinels)
    for path in sentinels:
        path.unlink()
    tally.finish(api)


# --------------------------------------------------------------------------- job specs

NON_FINITE = [
    ("optimizer.lr", b'{"optimizer": {"name": "sgd", "lr": NaN}}'),
    ("optimizer.lr", b'{"optimizer": {"name": "sgd", "lr": Infinity}}'),
    ("optimizer.lr", b'{"optimizer": {"name": "sgd", "lr": -Infinity}}'),
    ("optimizer.lr", b'{"optimizer": {"name": "sgd", "lr": 1e400}}'),
    ("optimizer.betas.0", b'{"optimizer": {"name": "adam", "betas": [NaN, 0.999]}}'),
    ("optimizer.betas.1", b'{"optimizer": {"name": "adam", "betas": [0.9, Infinity]}}'),
    ("optimizer.momentum", b'{"optimizer": {"name": "sgd", "momentum": NaN}}'),
    ("optimizer.weight_decay", b'{"optimizer": {"name": "adamw", "weight_decay": Infinity}}'),
    ("optimizer.eps", b'{"optimizer": {"name": "adam", "eps": NaN}}'),
    ("model.dropout", b'{"model": {"kind": "mlp", "dropout": NaN}}'),
    ("dataset.val_fraction", b'{"dataset": {"name": "digits", "val_fraction": NaN}}'),
    ("dataset.noise", b'{"dataset": {"name": "moons", "noise": -Infinity}}'),
    ("regularization.l2", b'{"regularization": {"l2": NaN}}'),
    ("regularization.l1", b'{"regularization": {"l1": Infinity}}'),
    ("regularization.weight_decay", b'{"regularization": {"weight_decay": NaN}}'),
    (
        "regularization.early_stopping.min_delta",
        b'{"regularization": {"early_stopping": {"min_delta": NaN}}}',
    ),
    (
        "regularization.grad_clip.max_norm",
        b'{"regularization": {"grad_clip": {"max_norm": Infinity}}}',
    ),
    ("schedule.max_lr", b'{"schedule": {"name": "one_cycle", "max_lr": NaN}}'),
    ("schedule.gamma", b'{"schedule": {"name": "step", "gamma": NaN}}'),
    ("schedule.eta_min", b'{"schedule": {"name": "cosine", "eta_min": Infinity}}'),
    ("training.time_limit_seconds", b'{"training": {"time_limit_seconds": NaN}}'),
    ("training.time_limit_seconds", b'{"training": {"time_limit_seconds": 1e400}}'),
    ("training.epochs", b'{"training": {"epochs": NaN}}'),
    ("training.epochs", b'{"training": {"epochs": 1e400}}'),
]

SGD = {"name": "sgd"}
NEGATIVE_AND_ABSURD = [
    ("optimizer.lr", {"optimizer": {**SGD, "lr": -0.1}}),
    ("optimizer.lr", {"optimizer": {**SGD, "lr": 0}}),
    ("optimizer.lr", {"optimizer": {**SGD, "lr": 1e308}}),
    ("optimizer.momentum", {"optimizer": {**SGD, "momentum": -0.9}}),
    ("optimizer.momentum", {"optimizer": {**SGD, "momentum": 1.0}}),
    ("optimizer.dampening", {"optimizer": {**SGD, "dampening": 2}}),
    ("optimizer.weight_decay", {"optimizer": {**SGD, "weight_decay": -1e-4}}),
    ("optimizer.weight_decay", {"optimizer": {**SGD, "weight_decay": 1e9}}),
    ("optimizer.betas.0", {"optimizer": {"name": "adam", "betas": [-0.1, 0.999]}}),
    ("optimizer.betas.1", {"optimizer": {"name": "adam", "betas": [0.9, 1.0]}}),
    ("optimizer.eps", {"optimizer": {"name": "adam", "eps": 0}}),
    ("optimizer.alpha", {"optimizer": {"name": "rmsprop", "alpha": 1.0}}),
    ("optimizer.lr_decay", {"optimizer": {"name": "adagrad", "lr_decay": -1}}),
    ("model.dropout", {"model": {"kind": "mlp", "dropout": -0.5}}),
    ("model.dropout", {"model": {"kind": "mlp", "dropout": 1.0}}),
    ("model.hidden.0", {"model": {"kind": "mlp", "hidden": [0]}}),
    ("model.hidden.1", {"model": {"kind": "mlp", "hidden": [64, -5]}}),
    ("model.hidden.0", {"model": {"kind": "mlp", "hidden": [10**30]}}),
    ("model.hidden", {"model": {"kind": "mlp", "hidden": [8] * 33}}),
    ("model.channels.0", {"model": {"kind": "cnn", "channels": [0]}}),
    ("model.kernel_size", {"model": {"kind": "cnn", "kernel_size": -3}}),
    ("model.input_shape.0", {"model": {"kind": "cnn", "input_shape": [0, 8, 8]}}),
    ("model.input_shape.1", {"model": {"kind": "cnn", "input_shape": [1, 10**30, 8]}}),
    ("model", {"model": {"kind": "mlp", "hidden": [65536] * 32}}),  # parameters over the cap
    (  # within the parameter cap, but 20 GiB of activations for one full batch
        "model",
        {
            "dataset": {"name": "moons", "n_samples": 200_000},
            "model": {"kind": "mlp", "hidden": [4096, 4096]},
            "training": {"batch_size": "full"},
        },
    ),
    ("training.epochs", {"training": {"epochs": 0}}),
    ("training.epochs", {"training": {"epochs": -1}}),
    ("training.epochs", {"training": {"epochs": 10**30}}),
    ("training.epochs", {"training": {"epochs": 5000}}),  # above the server's cap
    ("training.batch_size", {"training": {"batch_size": 0}}),
    ("training.batch_size", {"training": {"batch_size": -32}}),
    ("training.batch_size", {"training": {"batch_size": 10**30}}),
    ("training.batch_size", {"training": {"batch_size": 5000}}),  # larger than the split
    ("training.seed", {"training": {"seed": -1}}),
    ("training.seed", {"training": {"seed": 2**64}}),
    ("training.time_limit_seconds", {"training": {"time_limit_seconds": 0}}),
    ("training.time_limit_seconds", {"training": {"time_limit_seconds": -60}}),
    ("training.time_limit_seconds", {"training": {"time_limit_seconds": 10**6}}),  # > cap
    ("dataset.val_fraction", {"dataset": {"name": "digits", "val_fraction": 0}}),
    ("dataset.val_fraction", {"dataset": {"name": "digits", "val_fraction": 1}}),
    ("dataset.val_fraction", {"dataset": {"name": "digits", "val_fraction": -0.2}}),
    ("dataset.n_samples", {"dataset": {"name": "moons", "n_samples": 0}}),
    ("dataset.n_samples", {"dataset": {"name": "moons", "n_samples": -100}}),
    ("dataset.n_samples", {"dataset": {"name": "moons", "n_samples": 10**30}}),
    ("dataset.n_samples", {"dataset": {"name": "moons", "n_samples": 10**8}}),  # > cap
    ("dataset.noise", {"dataset": {"name": "moons", "noise": -1}}),
    ("dataset.split_seed", {"dataset": {"name": "digits", "split_seed": -1}}),
    ("dataset.n_features", {"dataset": {"name": "blobs", "n_features": 10**6}}),
    ("regularization.l1", {"regularization": {"l1": -1}}),
    ("regularization.l2", {"regularization": {"l2": -0.01}}),
    ("regularization.weight_decay", {"regularization": {"weight_decay": -1}}),
    (
        "regularization.early_stopping.patience",
        {"regularization": {"early_stopping": {"patience": 0}}},
    ),
    (
        "regularization.early_stopping.patience",
        {"regularization": {"early_stopping": {"patience": -5}}},
    ),
    (
        "regularization.early_stopping.min_delta",
        {"regularization": {"early_stopping": {"min_delta": -1}}},
    ),
    (
        "regularization.early_stopping.start_from_epoch",
        {"regularization": {"early_stopping": {"start_from_epoch": -1}}},
    ),
    (
        "regularization.grad_clip.max_norm",
        {"regularization": {"grad_clip": {"max_norm": 0}}},
    ),
    (
        "regularization.grad_clip.max_value",
        {"regularization": {"grad_clip": {"max_value": -1}}},
    ),
    ("schedule.warmup_epochs", {"schedule": {"name": "constant", "warmup_epochs": -1}}),
    ("schedule.step_size", {"schedule": {"name": "step", "step_size": 0}}),
    ("schedule.gamma", {"schedule": {"name": "step", "gamma": 0}}),
    ("schedule.gamma", {"schedule": {"name": "exponential", "gamma": 1.5}}),
    ("schedule.k", {"schedule": {"name": "exponential", "k": -1}}),
    ("schedule.k", {"schedule": {"name": "time_based", "k": 1e9}}),
    ("schedule.t_max", {"schedule": {"name": "cosine", "t_max": 0}}),
    ("schedule.t_mult", {"schedule": {"name": "cosine", "t_0": 5, "t_mult": 0}}),
    ("schedule.milestones.0", {"schedule": {"name": "multistep", "milestones": [-1]}}),
    ("schedule.pct_start", {"schedule": {"name": "one_cycle", "pct_start": 0}}),
    ("schedule.div_factor", {"schedule": {"name": "one_cycle", "div_factor": 0.5}}),
    ("schedule.max_lr", {"schedule": {"name": "one_cycle", "max_lr": -1}}),
    ("schedule.factor", {"schedule": {"name": "reduce_on_plateau", "factor": 1.0}}),
    ("schedule.patience", {"schedule": {"name": "reduce_on_plateau", "patience": -1}}),
    ("schedule.min_lr", {"schedule": {"name": "reduce_on_plateau", "min_lr": -1}}),
]

WRONG_TYPES = [
    ("optimizer.lr", {"optimizer": {**SGD, "lr": "fast"}}),
    ("optimizer.lr", {"optimizer": {**SGD, "lr": [0.1]}}),
    ("optimizer.lr", {"optimizer": {**SGD, "lr": None}}),
    ("optimizer.lr", {"optimizer": {**SGD, "lr": True}}),
    ("optimizer.lr", {"optimizer": {**SGD, "lr": "0.1"}}),
    ("optimizer.betas.0", {"optimizer": {"name": "adam", "betas": ["0.9", 0.999]}}),
    ("training.epochs", {"training": {"epochs": "10"}}),
    ("training.seed", {"training": {"seed": False}}),
    ("training.batch_size", {"training": {"batch_size": True}}),
    ("training.batch_size", {"training": {"batch_size": "32"}}),
    ("model.hidden.0", {"model": {"kind": "mlp", "hidden": [True]}}),
    ("model.batch_norm", {"model": {"kind": "mlp", "batch_norm": 1}}),
    ("optimizer.nesterov", {"optimizer": {**SGD, "momentum": 0.9, "nesterov": "true"}}),
    ("optimizer.betas.1", {"optimizer": {"name": "adam", "betas": [0.9]}}),
    ("optimizer.betas", {"optimizer": {"name": "adam", "betas": [0.9, 0.99, 0.999]}}),
    ("optimizer.betas", {"optimizer": {"name": "adam", "betas": "0.9,0.999"}}),
    ("optimizer.nesterov", {"optimizer": {**SGD, "nesterov": "sometimes"}}),
    ("optimizer", {"optimizer": "adam"}),
    ("optimizer.name", {"optimizer": {"name": ["adam"]}}),
    ("optimizer.name", {"optimizer": {"name": "adam; DROP TABLE jobs"}}),
    ("model", {"model": []}),
    ("model.kind", {"model": {"kind": None}}),
    ("model.hidden", {"model": {"kind": "mlp", "hidden": "64"}}),
    ("model.hidden", {"model": {"kind": "mlp", "hidden": {"0": 64}}}),
    ("model.hidden.0", {"model": {"kind": "mlp", "hidden": [64.5]}}),
    ("model.batch_norm", {"model": {"kind": "mlp", "batch_norm": "maybe"}}),
    ("dataset", {"dataset": None}),
    ("dataset.name", {"dataset": {"name": "../../etc/passwd"}}),
    ("dataset.id", {"dataset": {"name": "uploaded", "id": "../../etc/passwd"}}),
    ("dataset.id", {"dataset": {"name": "uploaded", "id": "x" * 10_000}}),
    ("dataset.id", {"dataset": {"name": "uploaded", "id": "a\u0000b"}}),
    ("dataset.id", {"dataset": {"name": "uploaded", "id": "00000000-0000-0000-0000-000000000000"}}),
    ("training.epochs", {"training": {"epochs": "ten"}}),
    ("training.epochs", {"training": {"epochs": 2.5}}),
    ("training.epochs", {"training": {"epochs": 2.0}}),  # strict int: no float at all
    ("training.epochs", {"training": {"epochs": {"$gt": 1}}}),
    ("training.batch_size", {"training": {"batch_size": "half"}}),
    ("training.batch_size", {"training": {"batch_size": 3.7}}),
    ("training.device", {"training": {"device": "tpu"}}),
    ("training", {"training": [1, 2]}),
    ("regularization.early_stopping", {"regularization": {"early_stopping": "yes"}}),
    (
        "regularization.early_stopping.monitor",
        {"regularization": {"early_stopping": {"monitor": "m" * 1000}}},
    ),
    ("schedule.monitor", {"schedule": {"name": "reduce_on_plateau", "monitor": "val_loss'--"}}),
    ("name", {"name": 123}),
    ("name", {"name": ["a"]}),
    ("name", {"name": ""}),
    ("name", {"name": "x" * 201}),
    ("name", {"name": "line\nbreak"}),
    ("name", {"name": "nul\u0000byte"}),
    ("name", {"name": "\u001b[2J\u001b[31mred"}),
    ("name", {"name": "rtl \u202e override"}),
    ("foo", {"foo": 1}),
    ("__proto__", {"__proto__": {"admin": True}}),
    ("optimizer.momentum", {"optimizer": {"name": "adam", "momentum": 0.9}}),
    ("body", []),
    ("body", "a job"),
    ("body", 42),
    ("body", None),
]


def test_job_specs_with_bad_values(api: Any) -> None:
    tally = Tally("bad inputs: job spec values")
    for expected_field, body in NON_FINITE:
        tally.run(api, raw(f"non-finite {body.decode()[:60]}", body, field=expected_field))
    for expected_field, body in NEGATIVE_AND_ABSURD:
        tally.run(api, job(f"out of bounds {body}"[:120], body, expected_field))
    for expected_field, body in WRONG_TYPES:
        tally.run(api, job(f"wrong type {body!r}"[:120], body, expected_field))
    tally.finish(api)


def test_refusals_name_the_cap() -> None:
    """The corpus checks the field; this checks that the message says which cap, and its value."""
    caps = limits(Settings())
    job = JobSpec.model_validate(
        {
            "dataset": {"name": "moons", "n_samples": 200_000},
            "model": {"kind": "mlp", "hidden": [4096, 4096]},
            "training": {"batch_size": "full", "time_limit_seconds": 10**6},
        }
    )
    errors = {e.field: e.message for e in check_job(job, job.dataset.known_shape(), caps)}
    assert "cap of 8,192 MiB" in errors["model"]
    assert (
        "1,000,000 is above this server's cap of 86,400 seconds"
        in errors["training.time_limit_seconds"]
    )


# --------------------------------------------------------------------------- bodies

CAP = 1024 * 1024  # DESCENT_MAX_REQUEST_BYTES' default


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b" " * n
        sent += n


BODIES = [
    raw("10,000 nested arrays", b"[" * 10_000 + b"]" * 10_000, code="invalid_json"),
    raw("10,000 nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, code="invalid_json"),
    raw("1 MiB of [", b"[" * (CAP - 16), code="invalid_json"),
    raw("unclosed nesting", b"{" * 5_000, code="invalid_json"),
    raw(
        "33 levels inside a field", b'{"name": ' + b"[" * 33 + b"]" * 33 + b"}", code="invalid_json"
    ),
    raw(  # brackets inside a string are text, not nesting: the spec check names the field
        "brackets in a string",
        b'{"name": "' + b"[" * 5_000 + b'"}',
        field="name",
        code="invalid_spec",
    ),
    raw(
        "escaped quotes then brackets in a string",
        b'{"name": "\\"' + b"{[" * 300 + b'\\\\"}',
        field="name",
        code="invalid_spec",
    ),
    raw(
        "a 5,000-digit integer",
        b'{"training": {"epochs": ' + b"9" * 5_000 + b"}}",
        code="invalid_json",
    ),
    raw("not JSON", b"{epochs: 10}", field="body"),
    raw("truncated JSON", b'{"optimizer": {"name": "sgd"', field="body"),
    raw("trailing comma", b'{"name": "x",}', field="body"),
    raw("single quotes", b"{'name': 'x'}", field="body"),
    raw("two documents", b"{} {}", field="body"),
    raw("empty body", b"", field="body"),
    raw("invalid UTF-8", b'{"name": "\xc3\x28"}', code="invalid_json"),
    raw("Latin-1", '{"name": "café"}'.encode("latin-1"), code="invalid_json"),
    raw("UTF-16 with BOM", '{"name": "x"}'.encode("utf-16"), code="invalid_json"),
    raw("UTF-16 without BOM", '{"name": "x"}'.encode("utf-16-le"), code="invalid_json"),
    raw("UTF-32", '{"name": "x"}'.encode("utf-32"), code="invalid_json"),
    raw("a raw NUL", b'{"name": "a\x00b"}', code="invalid_json"),
    raw("a lone surrogate", b'{"name": "\\ud800"}', field="name"),
    raw("an escaped NUL", b'{"name": "a\\u0000b"}', field="name"),
    raw("text/plain", b'{"name": "x"}', field="body", headers={"content-type": "text/plain"}),
    raw("no content type", b'{"name": "x"}', field="body", headers={}),
    raw(
        "XML",
        b"<job><name>x</name></job>",
        field="body",
        headers={"content-type": "application/xml"},
    ),
    raw(
        "form-encoded",
        b"name=x&epochs=10",
        field="body",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    raw(
        "JSON with a bogus charset",
        b"\xff\xfe{}",
        headers={"content-type": "application/json; charset=latin-1"},
    ),
    raw(
        "a 2 MiB body",
        b'{"name": "' + b"a" * (2 * CAP) + b'"}',
        status=413,
        code="payload_too_large",
    ),
    raw("just over the cap", b" " * (CAP + 1), status=413, code="payload_too_large"),
    Case(
        "a chunked body over the cap",
        "POST",
        "/v1/jobs",
        {"content": _chunks(CAP + 64 * 1024), "headers": JSON},
        413,
        code="payload_too_large",
    ),
    Case(
        "a declared length over the cap",
        "POST",
        "/v1/jobs",
        {"content": b"{}", "headers": {**JSON, "content-length": str(10 * CAP)}},
        413,
        code="payload_too_large",
    ),
    Case(
        "a body on cancel, over the cap",
        "POST",
        "/v1/jobs/00000000-0000-0000-0000-000000000000/cancel",
        {"content": b" " * (CAP + 1), "headers": JSON},
        413,
    ),
    Case(
        "a malformed length",
        "POST",
        "/v1/jobs",
        {"content": b"{}", "headers": {**JSON, "content-length": "-1"}},
        (400, 422),
    ),
]


def test_malformed_and_oversized_bodies(api: Any) -> None:
    tally = Tally("bad inputs: request bodies")
    for case in BODIES:
        tally.run(api, case)
    tally.finish(api)


# --------------------------------------------------------------------------- query strings

QUERIES = [
    ("sort", {"sort": "name; DROP TABLE jobs"}),
    ("sort", {"sort": "password"}),
    ("sort", {"sort": "-owner_id"}),
    ("sort", {"sort": "../created_at"}),
    ("status", {"status": "running' OR '1'='1"}),
    ("status", {"status": "queued,../../etc"}),
    ("limit", {"limit": -1}),
    ("limit", {"limit": 10**30}),
    ("limit", {"limit": "NaN"}),
    ("offset", {"offset": -5}),
    ("offset", {"offset": "1e400"}),
]


def test_hostile_query_parameters(api: Any) -> None:
    tally = Tally("bad inputs: query parameters")
    for expected_field, params in QUERIES:
        tally.run(
            api,
            Case(
                f"GET /v1/jobs {params}", "GET", "/v1/jobs", {"params": params}, 422, expected_field
            ),
        )
    for params in ({"limit": 0}, {"limit": 1000}, {"offset": -1}):
        tally.run(
            api, Case(f"GET /v1/datasets {params}", "GET", "/v1/datasets", {"params": params}, 422)
        )
    tally.finish(api)


# --------------------------------------------------------------------------- uploads


def csv_bytes(rows: int = 30) -> bytes:
    lines = ["x1,x2,label"] + [f"{i * 0.5},{(i % 7) - 3},{i % 2}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def upload(
    label: str,
    data: bytes,
    *,
    filename: str = "data.csv",
    status: int = 422,
    field: str | None = "file",
    **form: str,
) -> Case:
    kwargs = {"files": {"file": (filename, data, "text/csv")}, "data": form}
    return Case(label, "POST", "/v1/datasets", kwargs, status, field)


def _broken(line: str | bytes, at: int = 5) -> bytes:
    """``csv_bytes()`` with ``line`` inserted as its ``at``-th line."""
    lines = csv_bytes().splitlines()
    lines.insert(at, line if isinstance(line, bytes) else line.encode())
    return b"\n".join(lines) + b"\n"


UPLOADS = [
    upload("empty file", b""),
    upload("only blank lines", b"\n\n\r\n"),
    upload("header only", b"x1,x2,label\n"),
    upload("too few rows", csv_bytes(5)),
    upload("NUL bytes", csv_bytes().replace(b"0.5,", b"0.5\x00,", 1)),
    upload("a binary file", bytes(range(256)) * 64),
    upload("a gzip file", b"\x1f\x8b\x08\x00" + bytes(200)),
    upload("UTF-16 with BOM", csv_bytes().decode().encode("utf-16")),
    upload("UTF-16 without BOM", csv_bytes().decode().encode("utf-16-be")),
    upload("UTF-32", csv_bytes().decode().encode("utf-32")),
    upload("Latin-1", _broken("1,2,caf\u00e9").decode().encode("latin-1")),
    upload("invalid UTF-8", _broken(b"1,2,\xff\xfe")),
    upload("unterminated quote swallowing the file", _broken('1,"2,1') + csv_bytes(20_000)),
    upload("quote left open at the end", csv_bytes() + b'1,"2,1\n'),
    upload("stray quote", _broken('1,2"x",1')),
    upload("ragged row", _broken("1,2")),
    upload("extra cells", _broken("1,2,3,4,5")),
    upload(
        "duplicate columns",
        b"a,a,label\n" + b"".join(b"%d,%d,%d\n" % (i, i, i % 2) for i in range(20)),
    ),
    upload(
        "empty column name",
        b"a,,label\n" + b"".join(b"%d,%d,%d\n" % (i, i, i % 2) for i in range(20)),
    ),
    upload("one column", b"label\n" + b"".join(b"%d\n" % (i % 2) for i in range(20))),
    upload(
        "semicolon-separated",
        b"a;b;label\n" + b"".join(b"%d;%d;%d\n" % (i, i, i % 2) for i in range(20)),
    ),
    upload("non-numeric feature", _broken("1,two,1")),
    upload("NA feature", _broken("1,NA,1")),
    upload("nan feature", _broken("nan,1,1")),
    upload("inf feature", _broken("1,inf,1")),
    upload("-Infinity feature", _broken("-Infinity,1,1")),
    upload("overflowing feature", _broken("1e39,1,1")),
    upload("empty feature", _broken(",1,1")),
    upload("nan target", _broken("1,1,nan")),
    upload("inf target", _broken("1,1,inf")),
    upload("empty target", _broken("1,1,")),
    upload("a 1.5 MiB line", b"a,b,label\n" + b"1," + b"2" * (3 * 2**19) + b",1\n" + csv_bytes()),
    upload("1,001 columns", (",".join(f"c{i}" for i in range(1001)) + "\n").encode() + csv_bytes()),
    upload("target not in the header", csv_bytes(), field="target", target="../../etc/passwd"),
    upload("target with a NUL", csv_bytes(), field="target", target="label\x00"),
    upload("unknown task", csv_bytes(), field="task", task="clustering"),
    upload("single class", b"a,b,label\n" + b"".join(b"%d,%d,1\n" % (i, i) for i in range(20))),
    upload(
        "a class with one row",
        b"a,b,label\n" + b"".join(b"%d,%d,%d\n" % (i, i, 0 if i else 1) for i in range(20)),
        field="target",
    ),
    upload("name over 200 characters", csv_bytes(), field="name", name="n" * 201),
    Case("no file field", "POST", "/v1/datasets", {"data": {"target": "label"}}, 422, "file"),
    Case(
        "file sent as a text field",
        "POST",
        "/v1/datasets",
        {"data": {"file": "x1,x2\n1,2\n"}},
        422,
        "file",
    ),
    Case("JSON instead of multipart", "POST", "/v1/datasets", {"json": {"file": "x"}}, 422, "file"),
    Case(
        "a broken multipart body",
        "POST",
        "/v1/datasets",
        {
            "content": b"--x\r\nnot a part",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
    ),
    Case(
        "an upload declared at 60 MiB",
        "POST",
        "/v1/datasets",
        {
            "content": b"--x--",
            "headers": {
                "content-type": "multipart/form-data; boundary=x",
                "content-length": str(60 * 2**20),
            },
        },
        413,
    ),
    Case(
        "an upload streamed past 50 MiB",
        "POST",
        "/v1/datasets",
        {
            "content": _chunks(51 * 2**20, 2**20),
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        413,
    ),
]


def test_malformed_and_oversized_uploads(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tally = Tally("bad inputs: CSV uploads")
    for case in UPLOADS:
        tally.run(api, case)
    # The row cap, lowered so the test stays small (uploads read it per request).
    monkeypatch.setattr(api.app.state.settings, "max_dataset_rows", 100)
    tally.run(api, upload("101 rows over a cap of 100", csv_bytes(101)))
    tally.finish(api)


HOSTILE_FILENAMES = [
    "../../x.csv",
    "../../../../../../tmp/evil.csv",
    "/etc/passwd",
    "/tmp/absolute.csv",
    "..\\..\\x.csv",
    "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "%2e%2e%2fx.csv",
    "x.csv\x00.npz",
    "a" * 10_000 + ".csv",
    ".npz",
    "<script>alert(1)</script>.csv",
    "con.csv",
    "",
]


def test_hostile_upload_filenames_are_labels_never_paths(api: Any) -> None:
    settings = api.app.state.settings
    data_dir = Path(settings.data_dir)
    before = {p for p in data_dir.rglob("*") if p.is_file()}
    tally_ok, ids = 0, []
    problems = []
    for filename in HOSTILE_FILENAMES:
        r = api.post("/v1/datasets", files={"file": (filename, csv_bytes(), "text/csv")})
        if r.status_code == 201:
            tally_ok += 1
            ids.append(r.json()["id"])
        elif not 400 <= r.status_code < 500:
            problems.append(f"{filename[:40]!r}: {r.status_code} {r.text[:200]}")
    assert not problems, problems
    assert tally_ok >= len(HOSTILE_FILENAMES) - 3  # a label is a label: most are accepted
    after = {p for p in data_dir.rglob("*") if p.is_file()}
    new = {p for p in after - before if not p.name.endswith(("-wal", "-shm", "-journal"))}
    # Every new file is <datasets dir>/<server id>.npz, and nothing else appeared anywhere.
    assert new == {Path(settings.datasets_dir) / f"{i}.npz" for i in ids}, new
    # Nor next to the data dir, where "../" from the datasets dir would lead.
    around = {p.name for p in data_dir.parent.rglob("*") if p.is_file()}
    assert not around & {"x.csv", "evil.csv", "absolute.csv", "hosts"}
    record_figures(
        "bad inputs: upload filenames",
        backend="sqlite",
        payloads=len(HOSTILE_FILENAMES),
        rejected_4xx=len(HOSTILE_FILENAMES) - tally_ok,
        server_errors=0,
    )
