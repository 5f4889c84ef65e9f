"""Users over HTTP: who am I, admin-only user management, DESCENT_AUTH=none, and the
embedded default's local admin."""

from __future__ import annotations

import stat

import pytest
from fastapi.testclient import TestClient
from support import bearer, make_user

from service.auth.service import ensure_local_admin
from service.main import create_app


@pytest.fixture
def admin(api, sqlite_backend) -> dict[str, str]:
    return bearer(make_user(sqlite_backend, "root", admin=True))


def test_me_names_the_tokens_user(api, admin):
    me = api.get("/v1/me").json()
    assert (me["name"], me["role"], me["disabled"]) == ("tester", "user", False)
    root = api.get("/v1/me", headers=admin).json()
    assert (root["name"], root["role"]) == ("root", "admin")
    assert root["id"] != me["id"]


def test_user_management_is_403_for_a_user(api):
    me = api.get("/v1/me").json()["id"]
    for method, path, body in [
        ("GET", "/v1/users", None),
        ("POST", "/v1/users", {"name": "mallory", "role": "admin"}),
        ("GET", f"/v1/users/{me}", None),
        ("POST", f"/v1/users/{me}/disable", None),
        ("POST", f"/v1/users/{me}/enable", None),
        ("GET", f"/v1/users/{me}/tokens", None),
        ("POST", f"/v1/users/{me}/tokens", {}),
    ]:
        r = api.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
        assert "admin" in r.json()["error"]["message"]
    # Nothing was created, and the user is still a user.
    assert api.get("/v1/me").json()["role"] == "user"


def test_an_admin_creates_a_user_and_a_token_for_it(api, admin):
    r = api.post("/v1/users", json={"name": "ada"}, headers=admin)
    assert r.status_code == 201, r.text
    ada = r.json()
    assert (ada["name"], ada["role"], ada["disabled"]) == ("ada", "user", False)
    names = {u["name"] for u in api.get("/v1/users", headers=admin).json()["items"]}
    assert names == {"tester", "root", "ada"}
    assert api.get(f"/v1/users/{ada['id']}", headers=admin).json()["name"] == "ada"
    r = api.post(f"/v1/users/{ada['id']}/tokens", json={"name": "notebook"}, headers=admin)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert r.json()["user_id"] == ada["id"]
    assert api.get("/v1/me", headers=bearer(token)).json()["name"] == "ada"
    listed = api.get(f"/v1/users/{ada['id']}/tokens", headers=admin).json()
    assert [t["name"] for t in listed["items"]] == ["notebook"]
    assert token not in str(listed)
    # Ada sees her token in her own list too, and can revoke it.
    mine = api.get("/v1/tokens", headers=bearer(token)).json()["items"]
    assert [t["id"] for t in mine] == [r.json()["id"]]


def test_user_creation_is_checked(api, admin):
    assert api.post("/v1/users", json={"name": "ada"}, headers=admin).status_code == 201
    dup = api.post("/v1/users", json={"name": "ada"}, headers=admin)
    assert dup.status_code == 409 and "already exists" in dup.json()["error"]["message"]
    for body, field in [
        ({"name": "../etc"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a" * 101}, "name"),
        ({"name": "bob", "role": "root"}, "role"),
        ({"name": "bob", "extra": 1}, "extra"),
    ]:
        r = api.post("/v1/users", json=body, headers=admin)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["fields"][0]["field"] == field


def test_unknown_user_is_404_and_a_malformed_id_422(api, admin):
    missing = "00000000-0000-4000-8000-000000000000"
    r = api.post(f"/v1/users/{missing}/disable", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.post("/v1/users/42/disable", headers=admin)
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "user_id"


def test_the_last_enabled_admin_cannot_be_disabled(api, admin):
    root = api.get("/v1/me", headers=admin).json()
    r = api.post(f"/v1/users/{root['id']}/disable", headers=admin)
    assert r.status_code == 409 and "last enabled admin" in r.json()["error"]["message"]
    assert api.get("/v1/me", headers=admin).status_code == 200
    # With a second admin, it can.
    second = api.post("/v1/users", json={"name": "ops", "role": "admin"}, headers=admin).json()
    assert second["role"] == "admin"
    assert api.post(f"/v1/users/{root['id']}/disable", headers=admin).status_code == 200
    assert api.get("/v1/me", headers=admin).status_code == 401


def test_auth_none_acts_as_the_local_admin(sqlite_backend):
    settings = sqlite_backend.settings().model_copy(update={"auth": "none"})
    with TestClient(create_app(settings)) as client:
        me = client.get("/v1/me")
        assert me.status_code == 200
        assert (me.json()["name"], me.json()["role"]) == ("admin", "admin")
        job = client.post("/v1/jobs", json={})
        assert job.status_code == 202
        assert client.get("/v1/jobs").json()["total"] == 1
        assert client.get("/v1/me").json()["id"] == me.json()["id"]  # created once
        assert [u["name"] for u in client.get("/v1/users").json()["items"]] == ["admin"]


def test_ensure_local_admin_creates_one_token_once(sqlite_backend):
    settings = sqlite_backend.settings()
    token = ensure_local_admin(settings)
    assert token is not None and token.startswith("dsc_")
    assert settings.token_file.read_text().strip() == token
    assert stat.S_IMODE(settings.token_file.stat().st_mode) == 0o600
    assert ensure_local_admin(settings) is None  # users exist now: nothing more
    assert settings.token_file.read_text().strip() == token
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        me = client.get("/v1/me").json()
        assert (me["name"], me["role"]) == ("admin", "admin")


def test_ensure_local_admin_leaves_a_database_with_users_alone(api, sqlite_backend):
    settings = sqlite_backend.settings()
    assert ensure_local_admin(settings) is None
    assert not settings.token_file.exists()


def test_openapi_declares_the_bearer_scheme_and_auth_errors(api):
    doc = api.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "dsc_…",
        "description": doc["components"]["securitySchemes"]["HTTPBearer"]["description"],
    }
    cookie = doc["components"]["securitySchemes"]["SessionCookie"]
    assert cookie["type"] == "apiKey" and cookie["in"] == "cookie"
    assert cookie["name"] == "descent_session"
    signing_in = {("post", "/v1/session"), ("get", "/v1/session/methods"), ("get", "/v1/session")}
    signing_in.add(("post", "/v1/session/local"))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path in ("/healthz", "/readyz") or (method, path) in signing_in:
                assert "security" not in op
                continue
            assert op.get("security") == [{"HTTPBearer": []}, {"SessionCookie": []}], (
                method,
                path,
            )
            assert "401" in op["responses"], (method, path)
            if path.startswith("/v1/users"):
                assert "403" in op["responses"], (method, path)
            if "{" in path:
                assert "404" in op["responses"] and "422" in op["responses"], (method, path)
