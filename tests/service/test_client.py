"""The HTTP client on its own: configuration, errors, its SSE parser and reconnects.

No server here: requests go to an ``httpx.MockTransport`` (or to a closed port).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cli_support import job_answer

from service.client import (
    DEFAULT_URL,
    ApiError,
    Client,
    ConfigError,
    Event,
    ServerSentEvent,
    Unreachable,
    local_token_file,
    parse_sse,
    resolve_settings,
)
from service.jobs.schemas import JobRead

# -- configuration -------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DESCENT_* settings, an empty XDG config home and data dir; returns tmp_path."""
    for var in ("DESCENT_URL", "DESCENT_TOKEN", "DESCENT_CONFIG", "DESCENT_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("DESCENT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def write_config(home: Path, text: str) -> Path:
    path = home / "xdg" / "descent" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_token_file(home: Path, token: str) -> Path:
    path = home / "data" / "token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    return path


def test_defaults_without_any_configuration(clean_env: Path) -> None:
    s = resolve_settings()
    assert (s.url, s.token, s.url_source, s.token_source) == (DEFAULT_URL, None, "default", None)


def test_precedence_is_arguments_then_env_then_config_file_then_local_token(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_token_file(clean_env, "dsc_local")
    assert resolve_settings().token == "dsc_local"
    assert "token file" in resolve_settings().token_source

    cfg = write_config(clean_env, 'url = "http://127.0.0.1:9001/"\ntoken = "dsc_file"\n')
    s = resolve_settings()
    assert (s.url, s.token, s.config_file) == ("http://127.0.0.1:9001", "dsc_file", cfg)

    monkeypatch.setenv("DESCENT_URL", "http://127.0.0.1:9002")
    monkeypatch.setenv("DESCENT_TOKEN", "dsc_env")
    s = resolve_settings()
    assert (s.url, s.token, s.url_source, s.token_source) == (
        "http://127.0.0.1:9002",
        "dsc_env",
        "DESCENT_URL",
        "DESCENT_TOKEN",
    )

    s = resolve_settings(url="http://127.0.0.1:9003", token="dsc_flag")
    assert (s.url, s.token, s.url_source, s.token_source) == (
        "http://127.0.0.1:9003",
        "dsc_flag",
        "--url",
        "--token",
    )


def test_descent_config_names_the_file_and_it_must_exist(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = clean_env / "elsewhere.toml"
    other.write_text('url = "http://10.0.0.5:8000"\n')
    monkeypatch.setenv("DESCENT_CONFIG", str(other))
    assert resolve_settings().url == "http://10.0.0.5:8000"
    monkeypatch.setenv("DESCENT_CONFIG", str(clean_env / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml does not exist"):
        resolve_settings()
    # An explicit path beats the environment's.
    assert resolve_settings(config_file=other).url == "http://10.0.0.5:8000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("url = ", "is not valid TOML"),
        ("url = 8000\n", "`url` must be a non-empty string"),
        ('token = ""\n', "`token` must be a non-empty string"),
    ],
)
def test_a_malformed_config_file_is_named_in_the_error(
    clean_env: Path, text: str, message: str
) -> None:
    path = write_config(clean_env, text)
    with pytest.raises(ConfigError, match=message) as info:
        resolve_settings()
    assert str(path) in str(info.value)


def test_the_local_token_is_only_sent_to_this_machine(clean_env: Path) -> None:
    write_token_file(clean_env, "dsc_local")
    for url in ("http://localhost:8000", "http://127.0.0.2:8000", "http://[::1]:8000"):
        assert resolve_settings(url=url).token == "dsc_local", url
    assert resolve_settings(url="https://descent.example.org").token is None


def test_local_token_file_is_the_servers_and_survives_settings_that_do_not_validate(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.config import Settings

    assert local_token_file() == Settings().token_file == clean_env / "data" / "token"
    # Settings refuse a lease not longer than two heartbeats; the path is still found.
    monkeypatch.setenv("DESCENT_LEASE_SECONDS", "1")
    with pytest.raises(ValueError):
        Settings()
    assert local_token_file() == clean_env / "data" / "token"
    monkeypatch.delenv("DESCENT_DATA_DIR")
    assert local_token_file() == Path(".descent") / "token"


def test_from_config_builds_a_client_that_sends_the_token(clean_env: Path) -> None:
    write_config(clean_env, 'url = "http://127.0.0.1:9"\ntoken = "dsc_file"\n')
    with Client.from_config() as client:
        assert client.url == "http://127.0.0.1:9"
        assert client._http.headers["authorization"] == "Bearer dsc_file"


def test_importing_the_client_stays_light() -> None:
    code = (
        "import sys, service.client; "
        "print([m for m in ('torch', 'sqlalchemy', 'service.main', 'fastapi', 'matplotlib',"
        " 'service.config') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# -- errors ----------------------------------------------------------------------------------


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs) -> Client:  # noqa: ANN003
    client = Client("http://127.0.0.1:8000", transport=httpx.MockTransport(handler), **kwargs)
    client._sleep = lambda _: None
    return client


def test_api_errors_carry_the_servers_body() -> None:
    body = {
        "error": {
            "status": 422,
            "code": "invalid_spec",
            "message": "optimizer.name: unknown name 'adamx'",
            "fields": [{"field": "optimizer.name", "message": "unknown", "allowed": ["sgd"]}],
        }
    }
    client = mock_client(lambda r: httpx.Response(422, json=body), token="t")
    with pytest.raises(ApiError) as info:
        client.submit({"optimizer": {"name": "adamx"}})
    err = info.value
    assert (err.status, err.code, err.message) == (422, "invalid_spec", body["error"]["message"])
    assert err.fields == body["error"]["fields"]


def test_an_error_body_that_is_not_the_apis_still_gives_status_and_text() -> None:
    client = mock_client(lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ApiError) as info:
        client.job("x")
    assert (info.value.status, info.value.code) == (502, "http_error")
    assert info.value.message == "HTTP 502 Bad Gateway: <html>Bad Gateway</html>"


def test_a_401_without_a_token_says_how_to_get_one() -> None:
    body = {"error": {"status": 401, "code": "unauthorized", "message": "missing API token"}}
    client = mock_client(lambda r: httpx.Response(401, json=body))
    with pytest.raises(ApiError) as info:
        client.jobs()
    for hint in ("`descent token`", "--token", "DESCENT_TOKEN"):
        assert hint in info.value.message
    # With a token: where it came from.
    client = mock_client(lambda r: httpx.Response(401, json=body), token="dsc_x")
    with pytest.raises(ApiError, match="the token from argument was refused"):
        client.jobs()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_is_named() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with Client(url, timeout=5) as client, pytest.raises(Unreachable) as info:
        client.catalog()
    assert str(info.value) == f"cannot reach {url}: connection refused — is `descent up` running?"
    assert info.value.url == url


def test_requests_send_lists_comma_joined_and_ids_escaped() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith(".svg"):
            return httpx.Response(200, content=b"<svg/>", headers={"content-type": "image/svg"})
        if request.url.path.endswith("/metrics"):
            return httpx.Response(200, json={"job_id": "a/b", "status": "running",
                                             "names": ["epoch"], "epochs": []})  # fmt: skip
        return httpx.Response(200, json={"items": [], "total": 0, "limit": 5, "offset": 0})

    client = mock_client(handler)
    client.jobs(status=["running", "queued"], limit=5)
    client.metrics("a/b", names=["train_loss", "val_loss"])
    assert client.plot("j1", fmt="svg", metrics=["val_loss"], log=True) == b"<svg/>"
    client.compare_plot(["j1", "j2"], metric="val_accuracy", fmt="svg")
    client.plot("j1", fmt="svg", log=["val_loss", "lr"])
    client.plot("j1", fmt="svg")
    params = [dict(r.url.params) for r in seen]
    assert params[0] == {"status": "running,queued", "limit": "5", "offset": "0",
                         "sort": "-created_at"}  # fmt: skip
    assert seen[1].url.raw_path == b"/v1/jobs/a%2Fb/metrics?names=train_loss%2Cval_loss"
    assert (seen[2].url.path, params[2]) == ("/v1/jobs/j1/plot.svg",
                                             {"metrics": "val_loss", "log": "true"})  # fmt: skip
    assert (seen[3].url.path, params[3]) == (
        "/v1/plots/compare.svg",
        {"jobs": "j1,j2", "metric": "val_accuracy", "log": "false"},
    )
    assert params[4] == {"log": "val_loss,lr"} and params[5] == {}
    with pytest.raises(ValueError, match="png or svg"):
        client.plot("j1", fmt="pdf")


def test_iter_jobs_walks_every_page() -> None:
    jobs = [job_answer(id=str(i)) for i in range(7)]

    def handler(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        page = jobs[offset : offset + limit]
        return httpx.Response(
            200, json={"items": page, "total": len(jobs), "limit": limit, "offset": offset}
        )

    assert [j.id for j in mock_client(handler).iter_jobs(page_size=3)] == list("0123456")


# -- the SSE parser --------------------------------------------------------------------------


def test_parse_sse_follows_the_rules_of_the_format() -> None:
    lines = [
        "retry: 2000",
        "",
        ": keep-alive",
        "id: 0",
        "event: status",
        'data: {"status": "running"}',
        "",
        "id:1",  # no space after the colon
        "data:first line",
        "data: second line",
        "unknown: field",
        "",
        "event: nodata",
        "",  # nothing to dispatch
        "data: id carried over\r",
        "",
        "data: cut off at the end of the stream",
    ]
    got = list(parse_sse(lines))
    assert got == [
        ServerSentEvent("retry", "", None, 2000),
        ServerSentEvent("status", '{"status": "running"}', "0", None),
        ServerSentEvent("message", "first line\nsecond line", "1", None),
        ServerSentEvent("message", "id carried over", "1", None),
    ]


# -- events and reconnects ---------------------------------------------------------------


def sse_text(*events: tuple[str, int, dict]) -> str:
    return "".join(f"id: {i}\nevent: {e}\ndata: {json.dumps(d)}\n\n" for e, i, d in events)


def epoch(n: int) -> tuple[str, int, dict]:
    return ("epoch", n, {"epoch": n, "epochs": 4, "metrics": {"val_loss": 1.0 / n}})


def status(n: int, state: str = "running") -> tuple[str, int, dict]:
    return ("status", n, {"status": state, "epochs_completed": n, "epochs": 4, "attempt": 1})


class FakeStream:
    """Answers each connection with the next script: text to send, then an optional
    exception (a network error mid-stream); records the Last-Event-ID of each."""

    def __init__(self, *scripts: tuple[str, Exception | None] | httpx.Response) -> None:
        self.scripts = list(scripts)
        self.last_ids: list[str | None] = []
        self.afters: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.last_ids.append(request.headers.get("last-event-id"))
        self.afters.append(request.url.params.get("after"))
        assert request.headers["accept"] == "text/event-stream"
        script = self.scripts.pop(0)
        if isinstance(script, httpx.Response):
            return script
        text, error = script

        def body() -> Iterator[bytes]:
            yield b"retry: 2000\n\n"
            # Cut into small chunks: lines split across reads must still parse.
            data = text.encode()
            for i in range(0, len(data), 7):
                yield data[i : i + 7]
            if error is not None:
                raise error

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


def collect(client: Client, job_id: str = "j", after: int | None = None) -> list[Event]:
    return list(client.events(job_id, after=after))


def test_events_decode_and_stop_at_end() -> None:
    end = ("end", 2, {"status": "succeeded", "epochs_completed": 2})
    fake = FakeStream((sse_text(status(0), epoch(1), epoch(2), end) + ": keep-alive\n\n", None))
    got = collect(mock_client(fake))
    assert [(e.event, e.id) for e in got] == [("status", 0), ("epoch", 1), ("epoch", 2),
                                              ("end", 2)]  # fmt: skip
    assert got[1].data["metrics"] == {"val_loss": 1.0}
    assert fake.last_ids == [None] and fake.afters == [None]


def test_a_stream_closed_without_end_is_resumed_after_the_last_id() -> None:
    end = ("end", 4, {"status": "succeeded"})
    fake = FakeStream(
        (sse_text(status(0), epoch(1), epoch(2)), None),  # the server's lifetime ran out
        (sse_text(status(2), epoch(3), epoch(4), end), None),
    )
    client = mock_client(fake)
    got = collect(client)
    assert [e.data["epoch"] for e in got if e.event == "epoch"] == [1, 2, 3, 4]
    assert fake.last_ids == [None, "2"] and fake.afters == [None, "2"]


def test_network_errors_resume_with_backoff_and_give_up_after_max_retries() -> None:
    end = ("end", 3, {"status": "succeeded"})
    fake = FakeStream(
        (sse_text(status(0), epoch(1)), httpx.ReadError("connection reset")),
        (sse_text(status(1), epoch(2)), httpx.RemoteProtocolError("incomplete chunked read")),
        (sse_text(status(2), epoch(3), end), None),
    )
    client = mock_client(fake)
    sleeps: list[float] = []
    client._sleep = sleeps.append
    got = collect(client, after=0)
    assert [e.data["epoch"] for e in got if e.event == "epoch"] == [1, 2, 3]
    assert fake.last_ids == ["0", "1", "2"]
    assert sleeps == [0.5, 0.5]  # each failure came after an event: no growing backoff

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    client = mock_client(refused, max_retries=3)
    sleeps.clear()
    client._sleep = sleeps.append
    with pytest.raises(Unreachable, match="connection refused"):
        collect(client)
    assert sleeps == [0.5, 1.0, 2.0]


def test_a_server_error_is_retried_a_client_error_is_not() -> None:
    unavailable = {"error": {"status": 503, "code": "unavailable", "message": "db down"}}
    end = ("end", 1, {"status": "failed"})
    fake = FakeStream(
        httpx.Response(503, json=unavailable),
        (sse_text(status(0), epoch(1), end), None),
    )
    assert [e.event for e in collect(mock_client(fake))] == ["status", "epoch", "end"]

    missing = {"error": {"status": 404, "code": "not_found", "message": "no job with id 'j'"}}
    fake = FakeStream(httpx.Response(404, json=missing))
    with pytest.raises(ApiError, match="no job with id"):
        collect(mock_client(fake))


def test_a_server_that_keeps_closing_empty_streams_is_given_up_on() -> None:
    fake = FakeStream(*[("", None)] * 3)
    with pytest.raises(Unreachable, match="keeps closing the event stream"):
        collect(mock_client(fake, max_retries=2))


def test_wait_returns_the_final_job() -> None:
    end = ("end", 2, {"status": "succeeded"})
    stream = FakeStream((sse_text(status(0), epoch(1), epoch(2), end), None))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return stream(request)
        return httpx.Response(200, json=job_answer(id="j", status="succeeded"))

    final = mock_client(handler).wait("j")
    assert (type(final), final.id, final.status) == (JobRead, "j", "succeeded")


# -- typed answers -----------------------------------------------------------------------


def test_an_answer_that_is_not_the_apis_model_is_a_bad_response() -> None:
    client = mock_client(lambda r: httpx.Response(200, json={"id": "j", "status": "queued"}))
    with pytest.raises(ApiError) as info:
        client.job("j")
    assert (info.value.status, info.value.code) == (200, "bad_response")
    assert "GET /v1/jobs/j: the answer is not a JobRead" in info.value.message
    assert "another version" in info.value.message


def test_a_job_spec_is_sent_as_its_author_set_it() -> None:
    from service.spec import JobSpec

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=job_answer(status="queued"))

    spec = JobSpec.model_validate({"optimizer": {"name": "sgd", "lr": 0.1}})
    job = mock_client(handler).submit(spec)
    assert job.status == "queued"
    # The server fills in the defaults; what is sent is what was set.
    assert json.loads(seen[0].content) == {"optimizer": {"name": "sgd", "lr": 0.1}}
