"""API tokens over HTTP, on a real SQLite database: shown once, hashed at rest, revocable,
expiring, refused for disabled users."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text, update
from support import bearer, make_user

from service.auth.models import ApiToken
from service.db import utcnow


def db(api):  # noqa: ANN001, ANN201
    return create_engine(str(api.app.state.settings.database_url))


def tokens_table(api) -> list[dict]:
    engine = db(api)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_tokens"))]
    engine.dispose()
    return rows


def set_token(api, token_id: str, **values) -> None:
    engine = db(api)
    with engine.begin() as conn:
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(**values))
    engine.dispose()


def get_token(api, token_id: str) -> ApiToken:
    from sqlalchemy.orm import Session

    engine = db(api)
    with Session(engine) as session:
        row = session.scalar(select(ApiToken).where(ApiToken.id == token_id))
    engine.dispose()
    return row


def assert_401(r) -> None:  # noqa: ANN001
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    err = r.json()["error"]
    assert err["status"] == 401 and err["code"] == "unauthorized" and err["message"]


def test_a_new_token_is_shown_once_and_stored_only_as_its_hash(api):
    r = api.post("/v1/tokens", json={"name": "laptop"})
    assert r.status_code == 201, r.text
    created = r.json()
    plain = created["token"]
    assert plain.startswith("dsc_") and len(plain) >= 40
    assert created["prefix"] == plain[:12] and created["name"] == "laptop"
    # It works, as the same user.
    me = api.get("/v1/me", headers=bearer(plain)).json()
    assert me["name"] == "tester" and me["role"] == "user"
    # Never shown again: lists carry the prefix only.
    listed = api.get("/v1/tokens").json()
    assert listed["total"] == 2  # the fixture's and this one
    assert all("token" not in t for t in listed["items"])
    assert plain not in api.get("/v1/tokens").text
    # At rest: the SHA-256 digest, never the token.
    (row,) = [t for t in tokens_table(api) if t["id"] == created["id"]]
    assert row["token_hash"] == hashlib.sha256(plain.encode()).hexdigest()
    for t in tokens_table(api):
        assert all(plain not in str(v) for v in t.values())
    settings = api.app.state.settings
    for path in settings.data_dir.glob("descent.sqlite*"):
        assert plain.encode() not in path.read_bytes(), path


def test_a_token_without_a_body_gets_a_default_name(api):
    r = api.post("/v1/tokens")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "api" and r.json()["expires_at"] is None


def test_a_revoked_token_is_refused_and_the_others_keep_working(api):
    created = api.post("/v1/tokens", json={"name": "ci"}).json()
    other = api.post("/v1/tokens", json={"name": "other"}).json()
    assert api.get("/v1/jobs", headers=bearer(created["token"])).status_code == 200
    assert api.delete(f"/v1/tokens/{created['id']}").status_code == 204
    assert_401(api.get("/v1/jobs", headers=bearer(created["token"])))
    assert api.get("/v1/jobs", headers=bearer(other["token"])).status_code == 200
    (row,) = [t for t in api.get("/v1/tokens").json()["items"] if t["id"] == created["id"]]
    assert row["revoked_at"] is not None
    # Revoking again changes nothing, and an unknown token id is 404.
    assert api.delete(f"/v1/tokens/{created['id']}").status_code == 204
    again = [t for t in api.get("/v1/tokens").json()["items"] if t["id"] == created["id"]]
    assert again[0]["revoked_at"] == row["revoked_at"]
    missing = "00000000-0000-4000-8000-000000000000"
    r = api.delete(f"/v1/tokens/{missing}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_user_can_revoke_the_token_it_is_using(api):
    created = api.post("/v1/tokens").json()
    h = bearer(created["token"])
    assert api.delete(f"/v1/tokens/{created['id']}", headers=h).status_code == 204
    assert_401(api.get("/v1/me", headers=h))


def test_an_expired_token_is_refused(api):
    r = api.post("/v1/tokens", json={"name": "short", "expires_in_days": 1})
    created = r.json()
    expires = created["expires_at"]
    assert expires is not None
    assert api.get("/v1/me", headers=bearer(created["token"])).status_code == 200
    set_token(api, created["id"], expires_at=utcnow() - timedelta(seconds=1))
    assert_401(api.get("/v1/me", headers=bearer(created["token"])))


@pytest.mark.parametrize("days", [0, -1, 3651, "soon"])
def test_expiry_out_of_bounds_is_422(api, days):
    r = api.post("/v1/tokens", json={"expires_in_days": days})
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "expires_in_days"


def test_last_used_at_is_written_at_most_once_a_minute(api):
    created = api.post("/v1/tokens").json()
    h = bearer(created["token"])
    assert get_token(api, created["id"]).last_used_at is None
    api.get("/v1/me", headers=h)
    first = get_token(api, created["id"]).last_used_at
    assert first is not None
    api.get("/v1/me", headers=h)
    api.get("/v1/jobs", headers=h)
    assert get_token(api, created["id"]).last_used_at == first
    # A minute later, the next request records the use again.
    set_token(api, created["id"], last_used_at=first - timedelta(seconds=61))
    api.get("/v1/me", headers=h)
    assert get_token(api, created["id"]).last_used_at > first - timedelta(seconds=1)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-token",
        "Bearer dsc_" + "A" * 43,
        "Bearer dsc_" + "A" * 5000,
        "Token dsc_abc",
    ],
)
def test_missing_or_malformed_tokens_are_401(api, header):
    headers = {"Authorization": header} if header is not None else {}
    client_headers = dict(api.headers)
    api.headers.pop("Authorization")
    try:
        assert_401(api.get("/v1/jobs", headers=headers))
    finally:
        api.headers.update(client_headers)


def test_a_tampered_token_is_401(api):
    plain = api.post("/v1/tokens").json()["token"]
    flipped = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    r = api.get("/v1/me", headers=bearer(flipped))
    assert_401(r)
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_a_disabled_users_tokens_are_refused_until_enabled(api, sqlite_backend):
    admin = bearer(make_user(sqlite_backend, "root", admin=True))
    me = api.get("/v1/me").json()
    r = api.post(f"/v1/users/{me['id']}/disable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert_401(api.get("/v1/me"))
    assert_401(api.post("/v1/tokens"))
    r = api.post(f"/v1/users/{me['id']}/enable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert api.get("/v1/me").status_code == 200
