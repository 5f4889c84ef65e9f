"""Structured logs (service/logs.py): the redactor, the two formats, the request id, and
a served request whose token sits in its query string (401, and redacted in the access
log)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import ValidationError
from support import Backend, bearer, make_user, wait_for

from service import logs
from service.config import Settings
from service.main import create_app

SECRET = "S3cr3tValue-xyz"


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ('1.2.3.4:5 - "GET /v1/jobs?token=S3cr3tValue-xyz HTTP/1.1" 401', "?token=[REDACTED] "),
        ("/v1/jobs?limit=3&Access_Token=S3cr3tValue-xyz#x", "&Access_Token=[REDACTED]#x"),
        ("see http://h/p?a=1&API_KEY=S3cr3tValue-xyz&b=2", "API_KEY=[REDACTED]&b=2"),
        ("?apikey=S3cr3tValue-xyz", "apikey=[REDACTED]"),
        ("?key=S3cr3tValue-xyz;x", "key=[REDACTED];x"),
        ("?password=S3cr3tValue-xyz&passwd=S3cr3tValue-xyz", "passwd=[REDACTED]"),
        ("?client_secret=S3cr3tValue-xyz", "client_secret=[REDACTED]"),
        ("?X-Amz-Signature=S3cr3tValue-xyz", "X-Amz-Signature=[REDACTED]"),
        ("?auth=S3cr3tValue-xyz&authorization=S3cr3tValue-xyz", "auth=[REDACTED]&"),
        ("?session=S3cr3tValue-xyz", "session=[REDACTED]"),
        ("host=db password=S3cr3tValue-xyz dbname=x", "password=[REDACTED] dbname=x"),
        ("Authorization: Bearer S3cr3tValue-xyz", "Authorization: Bearer [REDACTED]"),
        ("authorization=Basic S3cr3tValue-xyz", "authorization=Basic [REDACTED]"),
        ("sent bearer S3cr3tValue-xyz again", "bearer [REDACTED] again"),
        ("{'authorization': 'Bearer S3cr3tValue-xyz'}", "'authorization': '[REDACTED]'"),
        ('{"password": "S3cr3tValue-xyz", "name": "n"}', '"password": "[REDACTED]", "name"'),
        ("Cookie: descent_session=S3cr3tValue-xyz; a=b", "Cookie: [REDACTED]"),
        ("postgresql+psycopg://app:S3cr3tValue-xyz@db:5432/x", "://app:[REDACTED]@db:5432"),
        ("redis://:S3cr3tValue-xyz@redis:6379/0", "redis://:[REDACTED]@redis"),
        ("token dsc_S3cr3tValue-xyz0123 in a message", "token [REDACTED] in"),
    ],
)
def test_credentials_are_redacted_wherever_they_appear(line: str, kept: str) -> None:
    out = logs.redact(line)
    assert SECRET not in out
    assert kept in out, out


@pytest.mark.parametrize(
    "line",
    [
        '1.2.3.4:5 - "GET /v1/jobs/abc/metrics?names=val_loss&format=csv HTTP/1.1" 200',
        "job 5f0c created (train, dispatch 1)",
        "send it as 'Authorization: Bearer <token>'",
        "monkey=1 author=ada keyboard=us",
        "http://host:8000/path@x",
        "database ready: sqlite:////tmp/data/descent.sqlite",
    ],
)
def test_lines_without_credentials_are_left_alone(line: str) -> None:
    assert logs.redact(line) == line


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("descent.test", logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_a_json_line_has_the_fields_of_its_context_and_its_record_wins() -> None:
    fmt = logs.JsonFormatter()
    with logs.bound(job_id="j-1", attempt=2, dispatch=3, request_id="r-1"):
        line = fmt.format(record("job %s: %s", "j-1", "?token=S3cr3tValue-xyz", job_id="j-own"))
    doc = json.loads(line)
    assert doc["message"] == "job j-1: ?token=[REDACTED]"
    assert (doc["level"], doc["logger"]) == ("INFO", "descent.test")
    assert doc["ts"].endswith("Z") and doc["ts"][10] == "T"
    assert (doc["job_id"], doc["attempt"], doc["dispatch"], doc["request_id"]) == (
        "j-own",
        2,
        3,
        "r-1",
    )
    assert "user_id" not in doc  # a field that does not apply is left out
    # Outside the block, nothing of the job's is left.
    assert set(json.loads(fmt.format(record("x")))) == {"ts", "level", "logger", "message"}


def test_a_traceback_is_one_json_field_redacted_and_the_line_stays_one_line() -> None:
    try:
        raise RuntimeError("connect to redis://:S3cr3tValue-xyz@redis:6379 failed")
    except RuntimeError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line and SECRET not in line
    doc = json.loads(line)
    assert "Traceback" in doc["exc_info"] and "RuntimeError" in doc["exc_info"]
    assert "redis://:[REDACTED]@redis" in doc["exc_info"]


def test_a_text_line_shows_the_context_after_the_message() -> None:
    with logs.bound(job_id="j-1", attempt=1):
        line = logs.TextFormatter().format(record("epoch %d, Bearer S3cr3tValue-xyz", 2))
    assert line.endswith("INFO descent.test: epoch 2, Bearer [REDACTED] [job_id=j-1 attempt=1]")


def test_the_context_filter_stamps_a_record_where_it_was_logged() -> None:
    rec = record("x")
    with logs.bound(user_id="u-1"):
        logs.ContextFilter().filter(rec)
    assert rec.user_id == "u-1"  # type: ignore[attr-defined]
    assert json.loads(logs.JsonFormatter().format(rec))["user_id"] == "u-1"


def test_log_settings_take_any_case_and_refuse_anything_else() -> None:
    settings = Settings(log_format="JSON", log_level="debug")  # type: ignore[arg-type]
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    assert Settings().log_level is None  # INFO, or a worker's --loglevel
    with pytest.raises(ValidationError) as err:
        Settings(log_format="xml")  # type: ignore[arg-type]
    assert "log_format" in str(err.value)


@contextlib.contextmanager
def configured(fmt: logs.LogFormat) -> Iterator[io.StringIO]:
    """This process's logging as the CLI sets it up, written to a buffer; restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    named = {
        name: (lg.handlers[:], lg.propagate, lg.level)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task")
        for lg in [logging.getLogger(name)]
    }
    logs.setup(fmt, "INFO")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, (handlers, propagate, lvl) in named.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(lvl)


def test_requests_get_an_id_a_sane_one_of_their_own_is_kept(sqlite_backend: Backend) -> None:
    token = make_user(sqlite_backend, "ada")
    with TestClient(create_app(sqlite_backend.settings()), headers=bearer(token)) as client:
        made = client.get("/healthz").headers["x-request-id"]
        assert len(made) == 16 and made != client.get("/healthz").headers["x-request-id"]
        kept = client.get("/healthz", headers={"X-Request-ID": "lb-7f:3.a_b-c"})
        assert kept.headers["x-request-id"] == "lb-7f:3.a_b-c"
        for bad in ("x" * 129, "has space", 'quote"d', "new\\nline"):
            r = client.get("/healthz", headers={"X-Request-ID": bad})
            assert r.headers["x-request-id"] != bad and len(r.headers["x-request-id"]) == 16
        # A 401 is answered with an id too.
        assert client.get("/v1/jobs", headers={"Authorization": ""}).headers["x-request-id"]


def test_the_job_created_line_names_the_request_the_user_and_the_job(
    sqlite_backend: Backend,
) -> None:
    token = make_user(sqlite_backend, "ada")
    spec = {"dataset": {"name": "iris"}, "model": {"kind": "mlp", "hidden": [4]}}
    with (
        configured("json") as out,
        TestClient(create_app(sqlite_backend.settings()), headers=bearer(token)) as client,
    ):
        r = client.post("/v1/jobs", json=spec, headers={"X-Request-ID": "submit-9"})
        assert r.status_code == 202, r.text
        me = client.get("/v1/me").json()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    (created,) = [x for x in lines if x["logger"] == "service.jobs.service"]
    assert created["message"] == f"job {r.json()['id']} created (train, dispatch 1)"
    assert created["job_id"] == r.json()["id"] and created["dispatch"] == 1
    assert created["request_id"] == "submit-9" and created["user_id"] == me["id"]
    assert "iris" not in created["message"]  # no spec content
    assert token not in out.getvalue()


@pytest.mark.server
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_token_in_the_query_string_is_refused_and_redacted_in_the_access_log(
    sqlite_backend: Backend, fmt: logs.LogFormat
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with configured(fmt) as out:
        # log_config=None: uvicorn's loggers stay on the handler configured() set up,
        # the one `descent api` gives uvicorn as its log_config.
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(sqlite_backend.settings()), port=port, log_config=None, lifespan="on"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: server.started, 30, interval=0.05, what="uvicorn to start")
            r = httpx.get(
                f"http://127.0.0.1:{port}/v1/jobs?limit=2&token={SECRET}",
                headers={"X-Request-ID": "leaky-1"},
                timeout=10,
            )
        finally:
            server.should_exit = True
            thread.join(15)
    assert r.status_code == 401
    text = out.getvalue()
    assert SECRET not in text
    (access,) = [line for line in text.splitlines() if "GET /v1/jobs" in line]
    assert "/v1/jobs?limit=2&token=[REDACTED]" in access
    if fmt == "json":
        doc = json.loads(access)
        assert (doc["logger"], doc["status"], doc["request_id"]) == (
            "uvicorn.access",
            401,
            "leaky-1",
        )
        assert doc["path"] == "/v1/jobs?limit=2&token=[REDACTED]"
    else:
        assert "uvicorn.access" in access and access.endswith("[request_id=leaky-1]")


def test_a_json_record_is_one_line_whatever_its_message_holds() -> None:
    line = logs.JsonFormatter().format(record("a\nb\r\nc\u2028d\u0085e × f"))
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == "a\nb\r\nc\u2028d\u0085e × f"
