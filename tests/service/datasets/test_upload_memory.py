"""Uploads against a served API (``descent api`` in a process of its own): five
maximum-size uploads at once keep the API's memory bounded, a sixth is refused, and no
temporary file outlives its upload.

The API's resident memory is sampled from /proc while the uploads run; what is asserted is
the peak's growth over the API's memory before them, against the uploads' total size.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ROOT, Backend, bearer, make_user, require_mark, wait_for

pytestmark = pytest.mark.server

#: The server's upload cap in this test: moderate, to keep the test cheap.
MAX_UPLOAD = 20 * 2**20
UPLOADS = 5


def csv_of_size(size: int) -> bytes:
    """A CSV of about ``size`` bytes: 16 features written with 16 digits, two classes."""
    header = ",".join(f"f{j}" for j in range(16)) + ",label\n"
    row_of = [
        ",".join(f"{(i * 16 + j) % 9973 / 9973:.16f}" for j in range(16)) + f",{'ab'[i % 2]}\n"
        for i in range(64)
    ]
    block = "".join(row_of).encode()
    data = header.encode() + block * ((size - len(header)) // len(block))
    assert len(data) <= size
    return data


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def served_api(sqlite_backend: Backend, tmp_path: Path) -> Iterator[tuple[str, int, Backend]]:
    require_mark("server", "serves the API with uvicorn")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = sqlite_backend.process_env()
    env.pop("TMPDIR", None)  # the API's uploads spool under its artifacts dir
    env.update(
        DESCENT_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        DESCENT_MAX_UPLOADS_PER_USER=str(UPLOADS),
        DESCENT_MAX_CONCURRENT_UPLOADS=str(UPLOADS),
    )
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "api", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
            return False

    try:
        wait_for(up, 60, what="the API to serve")
        yield base, proc.pid, sqlite_backend
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def test_five_maximum_size_uploads_at_once_keep_memory_bounded(
    served_api: tuple[str, int, Backend],
) -> None:
    base, pid, backend = served_api
    headers = bearer(make_user(backend, "uploader"))
    data = csv_of_size(MAX_UPLOAD)
    settings = backend.settings()
    spool = settings.artifacts_dir / "tmp"

    # Warm up: the first upload imports and allocates what every later one shares.
    small = csv_of_size(64 * 1024)
    r = httpx.post(f"{base}/v1/datasets", headers=headers, files={"file": ("w.csv", small)})
    assert r.status_code == 201, r.text
    time.sleep(0.5)
    before = rss_bytes(pid)

    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_bytes(pid))
            time.sleep(0.01)

    answers: list[httpx.Response] = []

    def upload(i: int) -> None:
        files = {"file": (f"big{i}.csv", data, "text/csv")}
        answers.append(httpx.post(f"{base}/v1/datasets", headers=headers, files=files, timeout=300))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=upload, args=(i,)) for i in range(UPLOADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    stop.set()
    sampler.join(5)

    assert [r.status_code for r in answers] == [201] * UPLOADS, [r.text[:300] for r in answers]
    assert {r.json()["n_rows"] for r in answers} == {(len(data.splitlines()) - 1)}
    growth = peak - before
    # Read whole and parsed in memory, each upload took about 2.8 times its size (14 times
    # one upload for five). Parsed from disk a block at a time, each takes about twice its
    # arrays (a fifth of the file here) and a few MiB: the five together grow the API by
    # less than three quarters of their bytes, which they could not all be held in.
    assert growth < 0.75 * UPLOADS * MAX_UPLOAD, f"peak RSS grew {growth / 2**20:.0f} MiB"
    # Nothing of the uploads' bodies is left beside the datasets.
    assert sorted(p.suffix for p in settings.datasets_dir.iterdir()) == [".npz"] * (UPLOADS + 1)
    assert not spool.exists() or not list(spool.iterdir())


def test_an_upload_cut_off_midway_leaves_nothing_behind(
    served_api: tuple[str, int, Backend],
) -> None:
    base, _, backend = served_api
    headers = bearer(make_user(backend, "quitter"))
    settings = backend.settings()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + csv_of_size(4 * 2**20)
    )  # and no closing boundary: the client goes away
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: test\r\nAuthorization: {headers['Authorization']}"
        f"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body) + 1000}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=30) as s:
        s.sendall(head + body)
    spool = settings.artifacts_dir / "tmp"
    # The API notices the client has gone; whatever it had spooled goes with the request.
    wait_for(
        lambda: (
            httpx.get(f"{base}/v1/datasets", headers=headers).json()["total"] == 0
            and (not spool.exists() or not list(spool.iterdir()))
        ),
        30,
        what="the cut-off upload to leave nothing",
    )
    datasets = settings.datasets_dir
    assert not datasets.exists() or not [p for p in datasets.iterdir() if p.suffix != ".npz"]
    assert os.path.isdir(settings.artifacts_dir)
