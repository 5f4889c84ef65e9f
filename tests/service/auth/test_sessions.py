"""Browser sessions (service/auth/sessions.py) over HTTP, on both storage/broker pairs:
the cookie's flags, CSRF refused without the session's proof, sign-out, the session
ending with its token or its user, and the one-click local sign-in's conditions."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from support import Backend, bearer, make_user

from service.auth import sessions
from service.auth.models import BrowserSession
from service.auth.security import hash_token
from service.jobs.models import Job
from service.main import create_app


@pytest.fixture(scope="module")
def served(module_backend: Backend) -> Iterator[tuple[TestClient, Backend]]:
    """One app per backend for the module; each test makes users of its own (user())."""
    with TestClient(create_app(module_backend.settings())) as client:
        yield client, module_backend


_users = itertools.count()


def user(backend: Backend, *, admin: bool = False) -> str:
    """A token of a new user, named apart from every other test's."""
    return make_user(backend, f"user-{next(_users)}", admin=admin)


def set_cookie(r) -> SimpleCookie:  # noqa: ANN001
    jar: SimpleCookie = SimpleCookie()
    jar.load(r.headers["set-cookie"])
    return jar


def sign_in(client: TestClient, token: str) -> tuple[str, str]:
    """(cookie secret, csrf token), with the client's own jar left empty: each request
    below says which credentials it sends."""
    r = client.post("/v1/session", json={"token": token})
    assert r.status_code == 201, r.text
    client.cookies.clear()
    return set_cookie(r)[sessions.COOKIE].value, r.json()["csrf_token"]


def cookie(secret: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{sessions.COOKIE}={secret}"}
    if csrf is not None:
        headers[sessions.CSRF_HEADER] = csrf
    return headers


def count(backend: Backend, model) -> int:  # noqa: ANN001
    engine = create_engine(str(backend.settings().database_url))
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return int(n or 0)


def test_signing_in_sets_an_httponly_strict_cookie_and_answers_the_csrf_token(served):
    client, backend = served
    token = user(backend)
    r = client.post("/v1/session", json={"token": token})
    assert r.status_code == 201, r.text
    client.cookies.clear()
    body = r.json()
    assert body["user"]["name"].startswith("user-") and len(body["csrf_token"]) >= 40
    morsel = set_cookie(r)[sessions.COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "strict" and morsel["path"] == "/"
    assert not morsel["secure"]  # plain http here; over https it is Secure (below)
    assert int(morsel["max-age"]) == int(backend.settings().session_hours * 3600)
    # The token is not the cookie, and only the secret's digest is stored.
    assert token not in r.headers["set-cookie"]
    engine = create_engine(str(backend.settings().database_url))
    with engine.connect() as conn:
        stored = conn.execute(select(BrowserSession.secret_hash)).scalars().all()
    engine.dispose()
    assert hash_token(morsel.value) in stored
    assert not [h for h in stored if morsel.value in h]


def test_the_cookie_is_secure_over_https(backend):
    token = make_user(backend, "ada")
    with TestClient(create_app(backend.settings()), base_url="https://testserver") as client:
        r = client.post("/v1/session", json={"token": token})
    assert r.status_code == 201 and set_cookie(r)[sessions.COOKIE]["secure"]


def test_the_cookie_reads_like_a_token_and_writes_only_with_the_csrf_proof(served):
    client, backend = served
    secret, csrf = sign_in(client, user(backend))
    me = client.get("/v1/me", headers=cookie(secret))
    assert me.status_code == 200
    session = client.get("/v1/session", headers=cookie(secret)).json()
    assert session["csrf_token"] == csrf and session["user"]["name"] == me.json()["name"]
    jobs = count(backend, Job)
    # A write without the proof (what a forged cross-site form would send) is refused,
    # and leaves nothing behind; with a wrong proof, too.
    for headers in (cookie(secret), cookie(secret, "not-the-token"), cookie(secret, "")):
        r = client.post("/v1/jobs", json={"name": "forged"}, headers=headers)
        assert r.status_code == 403, r.text
        assert (
            r.json()["error"]["code"] == "csrf" and "X-CSRF-Token" in r.json()["error"]["message"]
        )
    assert count(backend, Job) == jobs
    r = client.post("/v1/jobs", json={"name": "mine"}, headers=cookie(secret, csrf))
    assert r.status_code == 202, r.text
    assert count(backend, Job) == jobs + 1


def test_a_bearer_token_needs_no_csrf_proof_and_wins_over_a_cookie(served):
    client, backend = served
    ada, bob = user(backend), user(backend)
    secret, _ = sign_in(client, ada)
    r = client.post("/v1/jobs", json={"name": "x"}, headers=bearer(bob))
    assert r.status_code == 202
    both = {**cookie(secret), **bearer(bob)}
    bobs = client.get("/v1/me", headers=bearer(bob)).json()["name"]
    assert client.get("/v1/me", headers=both).json()["name"] == bobs
    assert client.get("/v1/session", headers=bearer(bob)).json()["csrf_token"] is None


def test_signing_out_ends_the_session_and_clears_the_cookie(served):
    client, backend = served
    secret, csrf = sign_in(client, user(backend))
    assert client.delete("/v1/session", headers=cookie(secret)).status_code == 403  # no proof
    r = client.delete("/v1/session", headers=cookie(secret, csrf))
    assert r.status_code == 204
    cleared = set_cookie(r)[sessions.COOKIE]
    assert cleared.value == "" and int(cleared["max-age"]) == 0
    r = client.get("/v1/me", headers=cookie(secret))
    assert r.status_code == 401 and "session has ended" in r.json()["error"]["message"]
    # Asking who is signed in is not an error: nobody.
    r = client.get("/v1/session", headers=cookie(secret))
    assert r.status_code == 200 and r.json()["user"] is None
    assert client.get("/v1/session").json()["user"] is None


@pytest.mark.parametrize("how", ["revoke the token", "disable the user", "expire"])
def test_the_session_ends_with_its_token_or_its_user(served, how):
    client, backend = served
    admin = user(backend, admin=True)
    token = user(backend)
    secret, _ = sign_in(client, token)
    assert client.get("/v1/me", headers=cookie(secret)).status_code == 200
    if how == "revoke the token":
        mine = client.get("/v1/tokens", headers=bearer(token)).json()["items"][0]
        assert client.delete(f"/v1/tokens/{mine['id']}", headers=bearer(token)).status_code == 204
    elif how == "disable the user":
        ada = client.get("/v1/me", headers=bearer(token)).json()["id"]
        r = client.post(f"/v1/users/{ada}/disable", headers=bearer(admin))
        assert r.status_code == 200, r.text
    else:
        from sqlalchemy import update

        from service.db import utcnow

        engine = create_engine(str(backend.settings().database_url))
        with engine.begin() as conn:
            mine = BrowserSession.secret_hash == hash_token(secret)
            conn.execute(update(BrowserSession).where(mine).values(expires_at=utcnow()))
        engine.dispose()
    assert client.get("/v1/me", headers=cookie(secret)).status_code == 401


@pytest.mark.parametrize(
    "body",
    [{"token": "dsc_not-a-real-one"}, {"token": ""}, {}, {"token": "x", "extra": 1}],
)
def test_a_bad_sign_in_is_refused_and_sets_no_cookie(served, body):
    client, backend = served
    before = count(backend, BrowserSession)
    r = client.post("/v1/session", json=body)
    assert r.status_code in (401, 422), r.text
    assert "set-cookie" not in r.headers
    assert count(backend, BrowserSession) == before


def test_a_token_in_the_query_string_is_never_accepted(served):
    client, backend = served
    token = user(backend)
    for name in ("token", "access_token", "api_key"):
        assert client.get("/v1/me", params={name: token}).status_code == 401


def test_no_token_or_cookie_secret_reaches_a_log_line(served, caplog):
    client, backend = served
    token = user(backend)
    with caplog.at_level(logging.DEBUG):
        secret, csrf = sign_in(client, token)
        client.get("/v1/me", headers=cookie(secret))
        client.post("/v1/jobs", json={"name": "x"}, headers=cookie(secret))  # 403
        client.post("/v1/session", json={"token": token + "x"})  # 401
        client.delete("/v1/session", headers=cookie(secret, csrf))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in (token, secret, csrf):
        assert value not in logged


# -- the one-click local sign-in ----------------------------------------------------------


def local_client(backend: Backend, host: str = "127.0.0.1", **settings) -> TestClient:
    app = create_app(backend.settings().model_copy(update=settings))
    return TestClient(app, base_url="http://localhost:8000", client=(host, 50000))


def test_the_local_admin_signs_in_with_one_click_from_this_machine(sqlite_backend):
    with local_client(sqlite_backend) as client:
        assert client.get("/v1/session/methods").json() == {"token": True, "local": True}
        r = client.post("/v1/session/local", headers={"Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 201, r.text
        assert r.json()["user"] == {**r.json()["user"], "name": "admin", "role": "admin"}
        secret = set_cookie(r)[sessions.COOKIE].value
        client.cookies.clear()
        # Its session hangs on a token of its own, which the admin sees and can revoke.
        tokens = client.get("/v1/tokens", headers=cookie(secret)).json()["items"]
        mine = [t for t in tokens if t["name"] == sessions.LOCAL_TOKEN_NAME]
        assert len(mine) == 1 and mine[0]["expires_at"]
        csrf = r.json()["csrf_token"]
        revoke = client.delete(f"/v1/tokens/{mine[0]['id']}", headers=cookie(secret, csrf))
        assert revoke.status_code == 204
        assert client.get("/v1/me", headers=cookie(secret)).status_code == 401


@pytest.mark.parametrize(
    "case",
    ["remote peer", "through a proxy", "rebound host name", "another site's page", "turned off"],
)
def test_the_one_click_sign_in_is_refused_beyond_this_machine(sqlite_backend, case):
    host, headers, settings = "127.0.0.1", {}, {}
    if case == "remote peer":
        host = "192.0.2.7"
    elif case == "through a proxy":
        headers = {"X-Forwarded-For": "203.0.113.9"}
    elif case == "rebound host name":
        headers = {"Host": "attacker.example:8000"}
    elif case == "another site's page":
        headers = {"Sec-Fetch-Site": "cross-site"}
    else:
        settings = {"local_signin": False}
    with local_client(sqlite_backend, host, **settings) as client:
        assert client.get("/v1/session/methods", headers=headers).json()["local"] is False
        r = client.post("/v1/session/local", headers=headers)
        assert r.status_code == 403, r.text
        assert "set-cookie" not in r.headers
    assert count(sqlite_backend, BrowserSession) == 0


def test_local_sign_in_is_off_by_default_with_a_database_server():
    from service.config import Settings

    assert Settings(database_url="sqlite:///x.sqlite").local_signin_enabled
    assert not Settings(database_url="postgresql://u:p@db/descent").local_signin_enabled
    assert not Settings(database_url="sqlite:///x.sqlite", local_signin=False).local_signin_enabled


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:8000", "localhost"), ("[::1]:8000", "[::1]"), ("127.0.0.1", "127.0.0.1")],
)
def test_host_name_drops_the_port(header, name):
    assert sessions.host_name(header) == name
