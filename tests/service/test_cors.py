"""CORS for dashboards served from another origin (DESCENT_CORS_ORIGINS): preflights are
answered before authentication, listed origins read answers (a 401's too), unlisted
ones get no CORS headers, and cookies are never allowed across origins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from support import Backend, bearer, make_user

from service.config import Settings, parse_origins
from service.main import create_app

DASH = "http://dash.example:5173"


@pytest.fixture(scope="module")
def cors(module_sqlite_backend: Backend) -> Iterator[tuple[TestClient, str]]:
    settings = module_sqlite_backend.settings().model_copy(
        update={"cors_origins": f"{DASH}, https://other.example"}
    )
    token = make_user(module_sqlite_backend, "ada")
    with TestClient(create_app(settings)) as client:
        yield client, token


def preflight(client: TestClient, origin: str, method: str = "GET", path: str = "/v1/jobs"):  # noqa: ANN201
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_a_listed_origins_preflight_is_answered_before_authentication(cors):
    client, _ = cors
    for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/events")]:
        r = preflight(client, DASH, method, path)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == DASH
        assert method in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers


def test_a_listed_origin_reads_answers_with_a_bearer_token_and_its_401s(cors):
    client, token = cors
    r = client.get("/v1/jobs", headers={"Origin": DASH, **bearer(token)})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == DASH
    r = client.get("/v1/jobs", headers={"Origin": DASH})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == DASH
    assert "www-authenticate" in r.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://dash.example", "http://dash.example:5174", "null"]
)
def test_an_unlisted_origin_gets_no_cors_headers(cors, origin):
    client, token = cors
    r = preflight(client, origin)
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
    r = client.get("/v1/jobs", headers={"Origin": origin, **bearer(token)})
    assert "access-control-allow-origin" not in r.headers


def test_without_the_setting_there_are_no_cors_headers(api):
    r = api.get("/v1/jobs", headers={"Origin": DASH})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "value", ["*", "http://a.example/", "http://a.example/path", "a.example", "ftp://a.example"]
)
def test_anything_but_exact_origins_is_refused_at_start(value):
    with pytest.raises(ValidationError, match="DESCENT_CORS_ORIGINS"):
        Settings(cors_origins=value)


def test_origins_are_a_comma_separated_list():
    assert parse_origins(" http://a.example:1 ,https://B.example,, ") == [
        "http://a.example:1",
        "https://b.example",
    ]
