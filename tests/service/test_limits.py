"""The body-limits middleware (service.limits) on a small app of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from service.limits import UPLOAD_OVERHEAD, BodyLimits, json_body_problem

CAP, UPLOAD, DEPTH = 1024, 4096, 4
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"n": len(body), "text": body.decode("utf-8", "replace")[:100]}

    @app.post("/spec")
    def spec(doc: dict = Body(...)) -> dict:  # noqa: B008
        return doc

    @app.post("/swallow")
    async def swallow(request: Request) -> JSONResponse:
        try:
            await request.body()
        except Exception:
            return JSONResponse({"answer": "the route carried on"})
        return JSONResponse({"answer": "read it all"})

    @app.post("/v1/datasets")
    async def upload(request: Request) -> dict[str, int]:
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        return {"n": n}

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app.add_middleware(
        BodyLimits, max_request_bytes=CAP, max_upload_bytes=UPLOAD, max_json_depth=DEPTH
    )
    with TestClient(app) as c:  # the lifespan passes through the middleware too
        yield c


def chunks(total: int, size: int = 256, fill: bytes = b" ") -> Iterator[bytes]:
    for start in range(0, total, size):
        yield fill * min(size, total - start)


def error(r: Any, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert (body["status"], body["code"]) == (status, code)
    return body["message"]


# --------------------------------------------------------------------------- sizes


def test_bodies_within_the_cap_arrive_whole(client: TestClient) -> None:
    doc = {"name": "x" * 900}
    assert client.post("/spec", json=doc).json() == doc
    r = client.post("/echo", content=chunks(CAP), headers=JSON)  # chunked, exactly the cap
    assert r.json()["n"] == CAP
    assert client.post("/echo", content=b"plain", headers={"content-type": "text/plain"}).json()[
        "n"
    ] == len(b"plain")
    assert client.get("/ping").json() == {"pong": "yes"}


def test_a_declared_length_over_the_cap_is_refused_unread(client: TestClient) -> None:
    r = client.post("/echo", content=b"{}", headers={**JSON, "content-length": str(CAP + 1)})
    message = error(r, 413, "payload_too_large")
    assert "1,025 bytes" in message and "at most 1,024 bytes" in message
    assert "DESCENT_MAX_REQUEST_BYTES" in message
    assert r.headers["connection"] == "close"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_a_streamed_body_over_the_cap_is_refused(client: TestClient, content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/echo", content=chunks(CAP + 1), headers=headers)
    assert "too large" in error(r, 413, "payload_too_large")


def test_the_413_replaces_what_a_route_made_of_a_cut_body(client: TestClient) -> None:
    r = client.post("/swallow", content=chunks(5 * CAP), headers={"content-type": "text/plain"})
    error(r, 413, "payload_too_large")
    ok = client.post("/swallow", content=chunks(CAP), headers={"content-type": "text/plain"})
    assert ok.json() == {"answer": "read it all"}


def test_the_upload_route_has_its_own_cap(client: TestClient) -> None:
    cap = UPLOAD + UPLOAD_OVERHEAD
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    assert client.post("/v1/datasets", content=chunks(cap, 4096), headers=multipart).json() == {
        "n": cap
    }
    r = client.post("/v1/datasets", content=chunks(cap + 1, 4096), headers=multipart)
    assert "DESCENT_MAX_UPLOAD_BYTES plus 64 KiB" in error(r, 413, "payload_too_large")
    declared = {**multipart, "content-length": str(cap + 1)}
    error(client.post("/v1/datasets", content=b"--x--", headers=declared), 413, "payload_too_large")
    # Only POST /v1/datasets: the same size elsewhere gets the request cap.
    error(
        client.post("/echo", content=chunks(CAP + 1), headers=multipart), 413, "payload_too_large"
    )


def test_a_malformed_length_is_a_bad_request(client: TestClient) -> None:
    r = client.post("/echo", content=b"{}", headers={**JSON, "content-length": "12abc"})
    assert "Content-Length" in error(r, 400, "bad_request")


# --------------------------------------------------------------------------- JSON screening


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (nested(5), 5),
        ('{"a": ' * 5 + "1" + "}" * 5, 5),
        ('{"a": [[[[{"b": 1}]]]]}', 6),
        ("[" * 1000, 1000),  # never closed
    ],
)
def test_too_deep(client: TestClient, body: str, depth: int) -> None:
    r = client.post("/spec", content=body.encode(), headers=JSON)
    message = error(r, 422, "invalid_json")
    assert f"{depth} levels deep" in message and f"at most {DEPTH}" in message


def test_a_megabyte_of_brackets_is_refused_without_parsing() -> None:
    # Straight to the scanner: json.loads would raise RecursionError on this.
    problem = json_body_problem(b"[" * 2**20, 32)
    assert problem is not None and "1048576 levels deep" in problem
    problem = json_body_problem(b"[{" * 2**19 + b"}]" * 2**19, 32)
    assert problem is not None and "levels deep" in problem


@pytest.mark.parametrize(
    "body",
    [
        nested(4),
        '{"a": {"b": [1, 2, {"d": 3}]}}',
        json.dumps({"name": "[" * 500}),  # brackets in strings are text
        json.dumps({"name": '\\"[[[[[[[[[[["'}),  # escaped quotes do not end the string
        json.dumps({"[[[[[[": "]]]]]]]]]", "k": ["{{{{{{"]}),
        '{"a": "\\\\"}',  # an escaped backslash, then the closing quote
        "\ufeff{}".encode().decode("utf-8"),
    ],
)
def test_fine_json_passes_the_scan(body: str) -> None:
    assert json_body_problem(body.encode("utf-8"), DEPTH) is None


def test_a_bom_is_allowed(client: TestClient) -> None:
    r = client.post("/echo", content=b"\xef\xbb\xbf{}", headers=JSON)
    assert r.status_code == 200


def test_an_unterminated_string_hides_the_rest(client: TestClient) -> None:
    # Everything after an opening quote is string: the parser will say the JSON is broken.
    assert json_body_problem(b'{"a": "' + b"[" * 1000, DEPTH) is None
    assert json_body_problem(b'{"a": "\\', DEPTH) is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"name": "\xc3\x28"}', "not valid UTF-8: byte 0xc3 at offset 10"),
        (b'{"name": "caf\xe9"}', "not valid UTF-8"),
        ('{"name": "x"}'.encode("utf-16"), "UTF-16"),
        ('{"name": "x"}'.encode("utf-16-le"), "UTF-16"),
        ('{"name": "x"}'.encode("utf-32"), "UTF-16 or UTF-32"),
        (b'{"name": "a\x00"}', "NUL byte at offset 11"),
        (b'{"epochs": ' + b"1" * 1001 + b"}", "more than 1000 digits"),
    ],
)
def test_not_utf8_json(client: TestClient, body: bytes, needle: str) -> None:
    r = client.post("/spec", content=body, headers=JSON)
    assert needle in error(r, 422, "invalid_json")


def test_long_digit_runs_inside_strings_are_text() -> None:
    assert json_body_problem(b'{"name": "' + b"1" * 5000 + b'"}', DEPTH) is None
    assert json_body_problem(b'{"lr": 0.' + b"0" * 900 + b"1}", DEPTH) is None


def test_only_json_bodies_are_screened(client: TestClient) -> None:
    text = {"content-type": "text/plain"}
    assert client.post("/echo", content=nested(50).encode(), headers=text).json()["n"] == 100
    r = client.post("/echo", content=nested(50).encode(), headers={"content-type": "x+json"})
    assert r.status_code == 200  # not application/*
    r = client.post(
        "/echo", content=nested(50).encode(), headers={"content-type": "application/vnd.a+json"}
    )
    error(r, 422, "invalid_json")
