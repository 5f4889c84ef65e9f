"""Labels with control characters (a NUL above all, which PostgreSQL refuses to store)
are refused with a 422 naming the field, or cleaned where they are only kept as a label
(an uploaded file's name) — on both databases, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from support import Backend, make_user

from service.main import create_app

CSV = b"a,b,y\n" + b"".join(b"%d,%d,%d\n" % (i, i * 2, i % 2) for i in range(40))


@pytest.fixture
def client(backend: Backend) -> Iterator[TestClient]:
    with TestClient(create_app(backend.settings())) as c:
        c.headers["Authorization"] = f"Bearer {make_user(backend, 'labels')}"
        yield c


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "bell\x07"])
def test_control_characters_in_labels_are_refused_by_field(client: TestClient, bad: str):
    r = client.post("/v1/jobs", json={"name": bad, "dataset": {"name": "iris"}})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "name", r.text
    r = client.post("/v1/tokens", json={"name": bad})
    assert r.status_code == 422 and "control character" in r.text, r.text
    r = client.post("/v1/datasets", files={"file": ("d.csv", CSV)}, data={"name": bad})
    assert r.status_code == 422 and "control character" in r.text, r.text
    assert client.get("/v1/datasets").json()["total"] == 0
    assert client.get("/v1/jobs").json()["total"] == 0


def test_an_uploaded_file_name_is_kept_only_as_a_clean_label(client: TestClient):
    # Built by hand: httpx would percent-encode the control characters.
    boundary = "descent-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="../ev\x00il\x07.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + CSV
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = client.post(
        "/v1/datasets",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["filename"] == "../ev_il_.csv" and out["name"] == "../ev_il_"
