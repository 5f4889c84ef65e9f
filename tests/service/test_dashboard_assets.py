"""The dashboard's files and the API docs are served by the API itself: /docs and /redoc load
nothing from another host, every file they name is served with its right type and without
a token, every other route still needs one, nothing outside the folders can be reached,
and a missing vendor install is a 503 that says what to run."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from support import Backend, bearer, make_user, serve

import service.dashboard
from scripts.vendor_assets import load_manifest
from service.dashboard import STATIC_DIR, VENDOR_DIR
from service.main import create_app

#: src= and href= values, and the spec URLs the pages hand to Swagger UI and ReDoc.
LINK = re.compile(r"""(?:\b(?:src|href|spec-url)\s*=\s*|\burl:\s*)["']([^"']*)["']""")
JAVASCRIPT = "text/javascript; charset=utf-8"
TYPES = {
    ".js": JAVASCRIPT,
    ".mjs": JAVASCRIPT,
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE, NOTICE
}


@pytest.fixture(scope="module")
def anon(module_sqlite_backend: Backend) -> Iterator[TestClient]:
    """A client without a token, on an app with token authentication on."""
    if not (VENDOR_DIR / "installed.json").is_file():
        pytest.fail(f"{VENDOR_DIR} is not installed: run `make assets`", pytrace=False)
    with TestClient(create_app(module_sqlite_backend.settings())) as client:
        yield client


def links(page: str) -> list[str]:
    found = LINK.findall(page)
    assert found, page
    return found


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/"])
def test_a_page_names_no_other_host_and_everything_it_names_is_served(
    anon: TestClient, page: str
) -> None:
    answer = anon.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    for url in links(answer.text):
        parts = urlsplit(url)
        assert parts.scheme in ("", "data") and not parts.netloc, f"{page} loads {url}"
        if parts.scheme or url.startswith("#"):
            continue
        url = urljoin(page, url)
        got = anon.get(url)
        assert got.status_code == 200, (page, url, got.status_code)
        if url.startswith("/static/"):
            assert got.headers["content-type"] == TYPES[Path(urlsplit(url).path).suffix], url
    assert "fonts.googleapis" not in answer.text and "cdn" not in answer.text.lower()


def test_the_docs_pages_use_the_vendored_scripts(anon: TestClient) -> None:
    assert "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in links(anon.get("/docs").text)
    assert "/static/vendor/redoc/bundles/redoc.standalone.js" in links(anon.get("/redoc").text)
    # No validator badge, which would hand the document's URL to validator.swagger.io.
    assert '"validatorUrl": null' in anon.get("/docs").text
    redirect = anon.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and "oauth2" in redirect.text.lower()


def test_every_vendored_file_is_served_as_installed_with_its_type(anon: TestClient) -> None:
    for package in load_manifest():
        for name in package.files:
            url = f"/static/vendor/{package.name}/{name}"
            got = anon.get(url)
            assert got.status_code == 200, url
            assert got.content == (VENDOR_DIR / package.name / name).read_bytes(), url
            assert got.headers["content-type"] == TYPES[Path(name).suffix], url
            assert got.headers["cache-control"] == "no-cache", url
            assert got.headers["x-content-type-options"] == "nosniff", url
    licences = anon.get("/static/vendor/LICENSES.md")
    assert licences.status_code == 200 and "swagger-ui-dist | 5.35.0 | Apache-2.0" in licences.text


def test_a_file_is_revalidated_by_its_etag(anon: TestClient) -> None:
    url = "/static/vendor/js-yaml/dist/js-yaml.mjs"
    etag = anon.get(url).headers["etag"]
    again = anon.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


def test_the_dashboard_page_is_its_index(anon: TestClient) -> None:
    page = anon.get("/")
    assert page.content == (STATIC_DIR / "index.html").read_bytes()
    assert page.headers["cache-control"] == "no-cache"
    assert anon.get("/static/index.html").content == page.content


def test_only_the_pages_and_files_are_public(
    anon: TestClient, module_sqlite_backend: Backend
) -> None:
    for path in ("/v1/jobs", "/v1/catalog", "/v1/datasets", "/staticx", "/docsx"):
        assert anon.get(path).status_code == 401, path
    token = make_user(module_sqlite_backend, "viewer")
    assert anon.get("/v1/jobs", headers=bearer(token)).status_code == 200
    assert anon.get("/static/no-such-file.js").status_code == 404
    assert anon.post("/static/index.html").status_code == 405


def test_without_the_vendor_files_the_pages_say_what_to_run(
    module_sqlite_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.dashboard, "VENDOR_DIR", tmp_path / "not-installed")
    with TestClient(create_app(module_sqlite_backend.settings())) as client:
        for path in ("/docs", "/redoc", "/"):
            page = client.get(path, headers={"Accept": "text/html"})
            assert page.status_code == 503, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert "scripts/vendor_assets.py" in page.text and "make assets" in page.text
        answer = client.get("/static/vendor/redoc/bundles/redoc.standalone.js")
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["code"] == "assets_not_installed" and "make assets" in error["message"]
        # The dashboard's own files and the API document do not depend on them.
        assert client.get("/static/index.html").status_code == 200
        assert client.get("/openapi.json").status_code == 200


#: Paths that would reach service/dashboard/files.py or service/config.py if a static
#: mount let them out of its folder, raw as a client may send them.
TRAVERSALS = [
    "/static/../files.py",
    "/static/%2e%2e/files.py",
    "/static/%2E%2E%2Ffiles.py",
    "/static/..%2f..%2fconfig.py",
    "/static/vendor/../files.py",
    "/static/vendor/%2e%2e/%2e%2e/config.py",
    "/static/vendor/..%5c..%5cconfig.py",
    "/static//etc/passwd",
    "/static/../../../pyproject.toml",
    "/static/../../../v1/jobs",  # public prefix: must not reach the jobs route either
]


@pytest.mark.server
def test_paths_out_of_the_static_folders_are_refused(module_sqlite_backend: Backend) -> None:
    assert (STATIC_DIR.parent / "files.py").is_file()  # what a traversal would reach
    with serve(create_app(module_sqlite_backend.settings())) as url:
        address = urlsplit(url)
        for path in TRAVERSALS:
            conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
            try:
                conn.request("GET", path)  # sent as is: http.client resolves no dots
                answer = conn.getresponse()
                body = answer.read()
            finally:
                conn.close()
            assert answer.status == 404, (path, answer.status, body[:200])
            assert b"not_found" in body and b"import" not in body, path
