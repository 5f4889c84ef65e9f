"""Nobody reaches another user's jobs, datasets, tokens or account.

User A (alice) uploads a dataset, submits a job on it and makes a token. User B then
tries every route of the app — enumerated from ``app.routes``, so a route added later is
covered without touching this file — with A's ids in its path, and every list with its
filters: every answer is the one a missing id gets (404), or 403 on the admin-only
routes, and nothing of A's shows up anywhere. Without a valid token every route but
/healthz, the docs and the dashboard's / answers 401.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bundles import IRIS_FEATURES, finish_with_bundle
from fastapi.testclient import TestClient
from faults import record_figures
from support import BACKENDS, Backend, bearer, make_backend, make_user

from service.deps import admin_user
from service.main import create_app

PUBLIC = {"/", "/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
#: Signing a browser in needs no credentials (it is how a page gets them): what each
#: answers here — nobody signed in (200), an empty body (422), the methods (200), no
#: local sign-in for a test client that is not on the loopback address (403).
SIGN_IN = {
    ("GET", "/v1/session"): 200,  # {"user": null, …}: nobody is signed in
    ("POST", "/v1/session"): 422,
    ("GET", "/v1/session/methods"): 200,
    ("POST", "/v1/session/local"): 403,
}
BODY_METHODS = {"POST", "PUT", "PATCH"}
#: Bodies that pass validation, so that the route's owner check is what answers.
PROBE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/v1/projects/{project_id}"): {"name": "taken-over"},
}
PARAM = re.compile(r"{(\w+)(?::\w+)?}")
#: Path parameters that are not ids: the same value for A's rows and for missing ones.
NOT_IDS = {"kind": "history", "fmt": "png", "view": "range_test"}


def all_routes(app) -> list[Any]:  # noqa: ANN001
    """Every route, with the routers' prefixes applied (FastAPI ≥ 0.150 includes routers
    lazily, so ``app.routes`` may hold whole routers)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI: routes are flat already
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def operations(app) -> list[tuple[str, str, Any]]:  # noqa: ANN001
    ops = [
        (method, route.path_format, route)
        for route in all_routes(app)
        for method in sorted(route.methods or ())
        if method != "HEAD"
    ]
    assert len(ops) >= 20, ops  # the enumeration works at all
    return ops


def needs_admin(route) -> bool:  # noqa: ANN001
    def walk(dependant) -> bool:  # noqa: ANN001
        return dependant.call is admin_user or any(walk(d) for d in dependant.dependencies)

    return hasattr(route, "dependant") and walk(route.dependant)


@dataclass
class World:
    client: TestClient
    alice: str  # tokens
    bob: str
    boss: str  # an admin, who manages users but not other people's jobs
    ids: dict[str, str]  # A's ids by path parameter name
    secrets: list[str]  # strings of A's that B must never see
    backend: str = "sqlite"
    #: A token's browser session: (cookie, CSRF token) headers used instead of it.
    cookies: dict[str, dict[str, str]] = field(default_factory=dict)
    #: A's succeeded job with a model bundle: predictions answer A, and nobody else.
    trained: str = ""

    def browser(self, token: str) -> dict[str, str]:
        return self.cookies.get(token) or bearer(token)

    def signed_in(self, token: str) -> str:
        """A stand-in for ``token`` that the client sends as a browser would: the session
        cookie it signed in with, and the session's CSRF token."""
        r = self.client.post("/v1/session", json={"token": token})
        assert r.status_code == 201, r.text
        self.client.cookies.clear()  # sent explicitly, by call()
        secret = r.headers["set-cookie"].split(";")[0]
        stand_in = f"cookie-of-{token}"
        self.cookies[stand_in] = {"Cookie": secret, "X-CSRF-Token": r.json()["csrf_token"]}
        return stand_in

    def fill(self, path: str, ids: dict[str, str] | None = None) -> str:
        ids = ids or self.ids

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in NOT_IDS:
                return NOT_IDS[name]
            assert name in ids, f"teach test_idor.py which of A's ids to use for {{{name}}}"
            return ids[name]

        return PARAM.sub(sub, path)

    def call(self, method: str, path: str, token: str | None, **kw: Any):  # noqa: ANN201
        headers = self.browser(token) if token else {}
        if method in BODY_METHODS:
            kw.setdefault("json", {})
        return self.client.request(method, path, headers=headers, **kw)


def csv_bytes(rows: int = 60) -> bytes:
    lines = ["x1,x2,label"] + [
        f"{i * 0.5},{(i % 7) - 3},{'yes' if i % 2 else 'no'}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp(f"idor-{request.param}")
    backend: Backend = make_backend(request.param, tmp)
    alice, bob = make_user(backend, "alice"), make_user(backend, "bob")
    boss = make_user(backend, "boss", admin=True)
    try:
        # A queued job's event stream would wait for it forever: cut streams short.
        settings = backend.settings().model_copy(update={"events_max_seconds": 0.2})
        with TestClient(create_app(settings)) as client:
            a = bearer(alice)
            ds = client.post(
                "/v1/datasets",
                files={"file": ("alice-secret.csv", csv_bytes(), "text/csv")},
                data={"name": "alice-secret-data"},
                headers=a,
            )
            assert ds.status_code == 201, ds.text
            job = client.post(
                "/v1/jobs",
                json={
                    "name": "alice-secret-job",
                    "dataset": {"name": "uploaded", "id": ds.json()["id"]},
                    "project": "alice-secret-project",
                    "tags": {"alice-secret-tag": "alice-secret-value"},
                    "note": "alice-secret-note",
                },
                headers=a,
            )
            assert job.status_code == 202, job.text
            token = client.post("/v1/tokens", json={"name": "alice-secret-token"}, headers=a)
            sweep = client.post(
                "/v1/sweeps",
                json={
                    "name": "alice-secret-sweep",
                    "base": {"dataset": {"name": "uploaded", "id": ds.json()["id"]}},
                    "space": {"optimizer.lr": {"loguniform": [0.001, 0.1]}},
                },
                headers=a,
            )
            assert sweep.status_code == 201, sweep.text
            assert token.status_code == 201, token.text
            me = client.get("/v1/me", headers=a).json()
            ids = {
                "job_id": job.json()["id"],
                "dataset_id": ds.json()["id"],
                "token_id": token.json()["id"],
                "user_id": me["id"],
                "sweep_id": sweep.json()["id"],
                "project_id": client.get("/v1/projects", headers=a).json()["items"][0]["id"],
            }
            # B has rows of its own, so its lists are not trivially empty.
            assert (
                client.post("/v1/jobs", json={"name": "bob-job"}, headers=bearer(bob)).status_code
                == 202
            )
            trained = client.post(
                "/v1/jobs",
                json={"name": "alice-secret-model", "dataset": {"name": "iris"}},
                headers=a,
            ).json()["id"]
            finish_with_bundle(str(settings.database_url), settings.jobs_dir, trained)
            secrets = [
                *ids.values(),
                token.json()["prefix"],
                "alice-secret",
                trained,
                *IRIS_FEATURES,  # what the model's answer names
            ]
            yield World(client, alice, bob, boss, ids, secrets, backend.name, trained=trained)
    finally:
        backend.close()


def assert_untouched(world: World) -> None:
    a = bearer(world.alice)
    job = world.client.get(f"/v1/jobs/{world.ids['job_id']}", headers=a).json()
    assert job["status"] == "queued" and job["cancel_requested"] is False
    assert world.client.get(f"/v1/datasets/{world.ids['dataset_id']}", headers=a).status_code == 200
    tokens = world.client.get("/v1/tokens", headers=a).json()["items"]
    assert all(t["revoked_at"] is None for t in tokens)
    assert world.client.get("/v1/me", headers=a).json()["disabled"] is False
    sweep = world.client.get(f"/v1/sweeps/{world.ids['sweep_id']}", headers=a).json()
    assert sweep["status"] == "running" and sweep["cancel_requested"] is False
    assert job["project"] == "alice-secret-project" and job["note"] == "alice-secret-note"
    assert job["tags"] == {"alice-secret-tag": "alice-secret-value"}
    projects = world.client.get("/v1/projects", headers=a).json()["items"]
    assert [(p["id"], p["name"]) for p in projects] == [
        (world.ids["project_id"], "alice-secret-project")
    ]


@pytest.mark.parametrize("who", ["user", "admin", "user's browser"])
def test_another_user_gets_404_on_every_route_with_an_id(world: World, who: str) -> None:
    token = world.boss if who == "admin" else world.bob
    if who == "user's browser":
        token = world.signed_in(world.bob)
    checked = 0
    for method, path, route in operations(world.client.app):
        if path in PUBLIC or not PARAM.search(path):
            continue
        admin_only = needs_admin(route)
        if admin_only and who == "admin":
            continue  # managing users is what admins are for
        probe = {"json": PROBE_BODIES[method, path]} if (method, path) in PROBE_BODIES else {}
        r = world.call(method, world.fill(path), token, **probe)
        where = f"{method} {path} as {who}: {r.status_code} {r.text}"
        if admin_only:
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", where
        else:
            assert r.status_code == 404, where
            # Exactly what a missing id gets, but for the id itself.
            missing = {k: str(uuid.uuid4()) for k in world.ids}
            ref = world.call(method, world.fill(path, missing), token, **probe)
            assert ref.status_code == 404, ref.text
            expected = ref.text
            for k, v in missing.items():
                expected = expected.replace(v, world.ids[k])
            assert r.text == expected, where
        for secret in world.secrets[len(world.ids) :]:
            assert secret not in r.text, where
        checked += 1
    assert checked >= (7 if who == "admin" else 12)
    assert_untouched(world)
    record_figures(
        f"another user ({who}) on every route with an id",
        backend=world.backend,
        payloads=checked,
        rejected_4xx=checked,
        server_errors=0,
        leaks=0,
    )


@pytest.mark.parametrize("who", ["user", "admin", "user's browser"])
def test_another_users_model_predicts_nothing(world: World, who: str) -> None:
    """A's trained model answers A; for anyone else it is a job that does not exist,
    whatever the body (rows that fit it, or none)."""
    rows = {"rows": [[5.1, 3.5, 1.4, 0.2]]}
    path = "/v1/jobs/{}/predict"
    assert world.call("POST", path.format(world.trained), world.alice, json=rows).status_code == 200
    token = world.boss if who == "admin" else world.bob
    if who == "user's browser":
        token = world.signed_in(world.bob)
    missing = str(uuid.uuid4())
    for kw in ({"json": rows}, {"json": {}}, {"content": "a,b\n1,2\n"}):
        r = world.call("POST", path.format(world.trained), token, **kw)
        ref = world.call("POST", path.format(missing), token, **kw)
        assert r.status_code == ref.status_code == 404, r.text
        assert r.text == ref.text.replace(missing, world.trained)


def test_the_owner_reaches_those_same_routes(world: World) -> None:
    """The 404s above come from ownership, not from routes that never answer."""
    for method, path, route in operations(world.client.app):
        if method != "GET" or path in PUBLIC or not PARAM.search(path) or needs_admin(route):
            continue
        r = world.call(method, world.fill(path), world.alice)
        assert r.status_code != 404 or "weights" in r.text, f"{path}: {r.text}"
        assert r.status_code < 500, f"{path}: {r.text}"


LIST_QUERIES: dict[str, list[dict[str, str]]] = {
    "/v1/jobs": [
        {"status": "queued"},
        {"status": "queued,running,succeeded,failed,cancelled,diverged"},
        {"sort": "name"},
        {"sort": "-status", "limit": "200"},
        {"offset": "0", "limit": "1"},
        {"kind": "train,lr_range_test,landscape"},
        {"name": "alice-secret"},
        {"project": "alice-secret-project"},
        {"filter": "project = 'alice-secret-project' or tags.alice-secret-tag is not null"},
        {"filter": "note contains 'alice' or name contains 'alice'", "sort": "tags.stage"},
    ],
    "/v1/projects": [{"limit": "200"}],
    "/v1/datasets": [{"limit": "200"}],
    "/v1/sweeps": [
        {"status": "running"},
        {"kind": "sweep,comparison", "limit": "200"},
        {"project": "alice-secret-project"},
    ],
    "/v1/tokens": [{"limit": "200"}],
}


@pytest.mark.parametrize("who", ["user", "admin", "user's browser"])
def test_nothing_of_a_users_shows_up_in_anothers_lists_or_writes(world: World, who: str) -> None:
    token = world.boss if who == "admin" else world.bob
    if who == "user's browser":
        token = world.signed_in(world.bob)
    for method, path, route in operations(world.client.app):
        if path in PUBLIC or PARAM.search(path):
            continue
        if needs_admin(route) and who == "admin":
            continue
        if (method, path) == ("DELETE", "/v1/session"):
            continue  # signs the caller out: the routes after it would all be 401s
        for params in [{}, *LIST_QUERIES.get(path, [])] if method == "GET" else [{}]:
            r = world.call(method, path, token, params=params)
            where = f"{method} {path} {params} as {who}: {r.status_code} {r.text}"
            assert r.status_code < 500, where
            for secret in world.secrets:
                assert secret not in r.text, where
            body = (
                r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            )
            if method == "GET" and "total" in body:
                assert body["total"] >= len(body["items"]), where
    # Totals count only B's own rows.
    jobs = world.client.get(
        "/v1/jobs", params={"status": "queued"}, headers=world.browser(token)
    ).json()
    assert all(j["name"] != "alice-secret-job" for j in jobs["items"])
    assert jobs["total"] == len(jobs["items"])
    datasets = world.client.get("/v1/datasets", headers=world.browser(token)).json()
    assert datasets["total"] == 0 and datasets["items"] == []
    sweeps = world.client.get("/v1/sweeps", headers=world.browser(token)).json()
    assert sweeps["total"] == 0 and sweeps["items"] == []
    projects = world.client.get("/v1/projects", headers=world.browser(token)).json()
    assert all(p["name"] != "alice-secret-project" for p in projects["items"])
    assert_untouched(world)


def test_a_job_on_another_users_dataset_answers_as_a_missing_dataset(world: World) -> None:
    def submit(dataset_id: str):  # noqa: ANN202
        spec = {"dataset": {"name": "uploaded", "id": dataset_id}}
        return world.client.post("/v1/jobs", json=spec, headers=bearer(world.bob))

    mine = world.ids["dataset_id"]
    missing = str(uuid.uuid4())
    r, ref = submit(mine), submit(missing)
    assert r.status_code == ref.status_code == 422
    assert r.text == ref.text.replace(missing, mine)
    assert r.json()["error"]["fields"][0]["field"] == "dataset.id"


def test_deleting_a_dataset_in_use_by_its_owners_job_is_still_refused(world: World) -> None:
    r = world.client.delete(f"/v1/datasets/{world.ids['dataset_id']}", headers=bearer(world.alice))
    assert r.status_code == 409 and "queued or running" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "credential", ["none", "garbage", "basic", "revoked", "tampered", "other-scheme"]
)
def test_without_a_valid_token_every_route_but_health_and_docs_is_401(
    world: World, credential: str
) -> None:
    headers: dict[str, str] = {}
    if credential == "garbage":
        headers = bearer("garbage")
    elif credential == "basic":
        headers = {"Authorization": "Basic YWxpY2U6c2VjcmV0"}
    elif credential == "other-scheme":
        headers = {"Authorization": f"Token {world.alice}"}
    elif credential == "tampered":
        headers = bearer(world.alice[:-2] + ("xy" if not world.alice.endswith("xy") else "yz"))
    elif credential == "revoked":
        created = world.client.post("/v1/tokens", headers=bearer(world.bob)).json()
        r = world.client.delete(f"/v1/tokens/{created['id']}", headers=bearer(created["token"]))
        assert r.status_code == 204
        headers = bearer(created["token"])
    checked = 0
    for method, path, _ in operations(world.client.app):
        url = world.fill(path)
        kw: dict[str, Any] = {"json": {}} if method in BODY_METHODS else {}
        r = world.client.request(method, url, headers=headers, **kw)
        if path in PUBLIC:
            assert r.status_code == 200, f"{method} {path}: {r.text}"
            continue
        if (method, path) in SIGN_IN:
            assert r.status_code == SIGN_IN[method, path], f"{method} {path}: {r.text}"
            assert "set-cookie" not in r.headers
            if (method, path) == ("GET", "/v1/session"):
                assert r.json() == {"user": None, "csrf_token": None, "expires_at": None}
            continue
        where = f"{method} {path}: {r.status_code} {r.text}"
        assert r.status_code == 401, where
        assert r.headers["www-authenticate"].startswith("Bearer"), where
        assert r.json()["error"]["code"] == "unauthorized", where
        checked += 1
    assert checked >= 20
    assert_untouched(world)
