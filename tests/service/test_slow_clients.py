"""Slow and numerous clients against a real uvicorn configured as ``descent up`` and
``descent api`` configure it (service/serving.py, service/limits.py BodyTimeout).

Clients dribble a byte at a time, far slower than the server's (shortened) timeouts allow;
each must be answered 408 and closed before it has finished dribbling, while a normal
request is still served. Socket timeouts are only a safety net: what is asserted is who
ended each connection, never how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from support import Backend, bearer, make_user, wait_for

from service.config import Settings
from service.limits import BodyTimeout
from service.serving import H11WithTimeouts, HttpToolsWithTimeouts, uvicorn_config

pytestmark = pytest.mark.server

#: Connections of each kind dribbling at once.
N = 10
#: How many bytes a dribbling client has to send, one per step: far more time than the
#: timeouts give it.
DRIBBLE_STEPS = 60
STEP_SECONDS = 0.25


def make_app(settings: Settings) -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    app.add_middleware(
        BodyTimeout, seconds=settings.body_timeout_seconds, min_rate=settings.body_min_rate
    )
    return app


@contextlib.contextmanager
def served(
    protocol: type[asyncio.Protocol] | None = None, app: object = None, **overrides: object
) -> Iterator[tuple[str, int]]:
    settings = Settings(**overrides)  # type: ignore[arg-type]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn_config(
        app or make_app(settings),
        host="127.0.0.1",
        port=port,
        settings=settings,
        log_level="warning",
    )
    if protocol is not None:
        config.http = protocol
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, interval=0.05, what="uvicorn to start")
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(15)


def connect(address: tuple[str, int], opening: bytes) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.sendall(opening)
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def dribble(socks: list[socket.socket], during: object = None) -> tuple[dict[int, bytes], int]:
    """Send each open socket one byte per step; returns what each closed socket received
    before the server closed it, and the step at which the last one was closed."""
    answers: dict[int, bytes] = {}
    step = 0
    for step in range(DRIBBLE_STEPS):
        if step == 2 and callable(during):
            during()
        for i, sock in enumerate(socks):
            if i not in answers:
                try:
                    sock.send(b"a")
                except OSError:  # closed under us: whatever it said is still to be read
                    answers[i] = read_to_end(sock)
        open_ = [s for i, s in enumerate(socks) if i not in answers]
        if not open_:
            break
        readable, _, _ = select.select(open_, [], [], STEP_SECONDS)
        for sock in readable:
            answers[socks.index(sock)] = read_to_end(sock)
        if len(answers) == len(socks):
            break
    return answers, step


def assert_timed_out(answers: dict[int, bytes], step: int) -> None:
    assert len(answers) == N, f"{N - len(answers)} slow connections were still open"
    assert step < DRIBBLE_STEPS - 1, "the clients finished dribbling before the server closed"
    for data in answers.values():
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), data[:200]
        assert json.loads(body)["error"]["code"] == "request_timeout"


#: uvicorn's two HTTP/1.1 parsers: httptools (its default when installed) and h11.
PROTOCOLS = [pytest.param(p, id=p.__name__) for p in (HttpToolsWithTimeouts, H11WithTimeouts) if p]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_slow_headers_and_slow_bodies_are_cut_off_while_others_are_served(
    protocol: type[asyncio.Protocol],
) -> None:
    limits = {"header_timeout_seconds": 1, "body_timeout_seconds": 1, "max_connections": 100}
    with served(protocol, **limits) as addr:
        base = f"http://{addr[0]}:{addr[1]}"
        served_meanwhile: list[int] = []

        def normal_request() -> None:
            served_meanwhile.append(httpx.get(f"{base}/ping", timeout=10).status_code)

        headers = [connect(addr, b"GET /ping HTTP/1.1\r\nHost: test\r\nX-Slow: ") for _ in range(N)]
        bodies = [
            connect(
                addr,
                b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n",
            )
            for _ in range(N)
        ]
        try:
            answers, step = dribble(headers + bodies, during=normal_request)
            assert len(answers) == 2 * N, f"{2 * N - len(answers)} slow connections stayed open"
            assert step < DRIBBLE_STEPS - 1
            assert_timed_out({i: answers[i] for i in range(N)}, step)
            assert_timed_out({i: answers[N + i] for i in range(N)}, step)
            message = json.loads(answers[N].partition(b"\r\n\r\n")[2])["error"]["message"]
            assert "DESCENT_BODY_TIMEOUT_SECONDS" in message
            assert served_meanwhile == [200]
            # A body sent at once is not timed out, and the server still answers.
            r = httpx.post(f"{base}/echo", content=b"x" * 5000, timeout=10)
            assert r.json() == {"n": 5000}
        finally:
            for sock in headers + bodies:
                sock.close()


def test_a_kept_alive_connection_must_send_its_next_headers_in_time() -> None:
    with served(header_timeout_seconds=1, keep_alive_seconds=60) as addr:
        sock = connect(addr, b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n")
        try:
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200"), first
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            answers, step = dribble([sock])
            assert step < DRIBBLE_STEPS - 1 and answers[0].startswith(b"HTTP/1.1 408")
        finally:
            sock.close()


def test_connections_beyond_the_bound_are_refused() -> None:
    limit = 4
    with served(header_timeout_seconds=60, max_connections=limit) as addr:
        base = f"http://{addr[0]}:{addr[1]}"
        held = [socket.create_connection(addr, timeout=10) for _ in range(limit)]
        try:
            with httpx.Client() as client:  # a connection of its own, beyond the bound
                r = client.get(f"{base}/ping", timeout=10)
            assert r.status_code == 503
        finally:
            for sock in held:
                sock.close()
        # Once they are gone, requests are served again (the server notices each close).
        wait_for(
            lambda: httpx.get(f"{base}/ping", timeout=10).status_code == 200,
            10,
            what="a request to be served once the held connections closed",
        )


def test_the_api_times_out_a_slow_upload_and_counts_it_against_its_user(
    sqlite_backend: Backend,
) -> None:
    """The real app, as `descent api` builds it: the token check names the user, the slot
    is taken before the body is read, and the body's timeout gives the slot back."""
    from service.main import create_app

    settings = sqlite_backend.settings().model_copy(
        update={"body_timeout_seconds": 1, "max_uploads_per_user": 1}
    )
    token = make_user(sqlite_backend, "dribbler")
    app = create_app(settings)
    csv = b"a,b,label\n" + b"".join(b"%d,%d,%d\n" % (i, i, i % 2) for i in range(20))
    with served(app=app, header_timeout_seconds=5) as addr:
        base = f"http://{addr[0]}:{addr[1]}"
        slow = connect(
            addr,
            b"POST /v1/datasets HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
            + token.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n"
            # The file's part begins; its bytes come one at a time.
            + b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n',
        )
        try:

            def second() -> httpx.Response:
                return httpx.post(
                    f"{base}/v1/datasets",
                    headers=bearer(token),
                    files={"file": ("d.csv", csv)},
                    timeout=10,
                )

            refused: list[httpx.Response] = []
            answers, _ = dribble([slow], during=lambda: refused.append(second()))
            assert answers[0].startswith(b"HTTP/1.1 408"), answers[0][:200]
            assert b"DESCENT_BODY_TIMEOUT_SECONDS" in answers[0]  # the body's, not the headers'
            assert refused[0].status_code == 429, refused[0].text
            assert "DESCENT_MAX_UPLOADS_PER_USER" in refused[0].json()["error"]["message"]
            assert refused[0].headers["retry-after"]
            assert second().status_code == 201  # the timed-out upload gave its slot back
        finally:
            slow.close()
