"""Projects, tags and notes through the API, on SQLite and PostgreSQL: set at submit
time and with PATCH, listed, renamed, deleted, owner-scoped; the filter's 422s; filters
shaped like SQL injection are refused or read as plain values."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from support import Backend, bearer, make_user

from service.db import make_engine
from service.jobs.models import Job
from service.main import create_app


@dataclass
class Api:
    client: TestClient
    alice: dict[str, str]
    bob: dict[str, str]
    backend: Backend
    rows_before: int = 0  # jobs other tests of the module left in the shared database

    def submit(self, who: dict[str, str], **body: object) -> dict:
        r = self.client.post("/v1/jobs", json={"dataset": {"name": "iris"}, **body}, headers=who)
        assert r.status_code == 202, r.text
        return r.json()

    def jobs(self, who: dict[str, str], **params: object) -> tuple[int, dict]:
        r = self.client.get("/v1/jobs", params=params, headers=who)
        return r.status_code, r.json()

    def all_rows(self) -> int:
        engine = make_engine(str(self.backend.settings().database_url))
        with engine.connect() as conn:
            n = conn.scalar(select(func.count()).select_from(Job))
        engine.dispose()
        return int(n or 0)

    def count_rows(self) -> int:
        """Job rows this test wrote (whoever's): the table as a whole, less what was there."""
        return self.all_rows() - self.rows_before


@pytest.fixture(scope="module")
def served(module_backend: Backend) -> Iterator[tuple[TestClient, Backend]]:
    """One app per backend for the module: each test has users of its own (every route
    is owner-scoped, so they see only their own jobs and projects)."""
    with TestClient(create_app(module_backend.settings())) as client:
        yield client, module_backend


_people = itertools.count()


@pytest.fixture
def api(served: tuple[TestClient, Backend]) -> Api:
    client, backend = served
    n = next(_people)
    alice, bob = make_user(backend, f"alice-{n}"), make_user(backend, f"bob-{n}")
    made = Api(client, bearer(alice), bearer(bob), backend)
    made.rows_before = made.all_rows()
    return made


def test_labels_set_at_submit_are_shown_and_stay_out_of_the_spec(api: Api) -> None:
    job = api.submit(
        api.alice, project="vision", tags={"stage": "baseline", "a.b-c": "x"}, note="first\ntry"
    )
    assert job["project"] == "vision"
    assert job["tags"] == {"stage": "baseline", "a.b-c": "x"}
    assert job["note"] == "first\ntry"
    assert not {"project", "tags", "note"} & set(job["spec"])
    again = api.client.get(f"/v1/jobs/{job['id']}", headers=api.alice).json()
    assert (again["project"], again["tags"], again["note"]) == ("vision", job["tags"], "first\ntry")
    plain = api.submit(api.alice)
    assert (plain["project"], plain["tags"], plain["note"]) == (None, {}, None)
    # The listing shows them too, and filters by project.
    status, page = api.jobs(api.alice, project="vision")
    assert status == 200 and [j["id"] for j in page["items"]] == [job["id"]]
    assert page["items"][0]["tags"] == job["tags"]
    assert api.jobs(api.alice, project="nowhere")[1]["total"] == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tags": {"bad key": "x"}}, "tags"),
        ({"tags": {"k": "x" * 257}}, "tags.k"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
        ({"note": "x" * 10_001}, "note"),
        ({"note": "nul\u0000"}, "note"),
        ({"project": ""}, "project"),
        ({"project": "p" * 101}, "project"),
        ({"tags": {"k": 1}}, "tags.k"),
    ],
)
def test_bad_labels_are_422s_naming_the_field_and_nothing_is_written(
    api: Api, extra: dict, field: str
) -> None:
    r = api.client.post("/v1/jobs", json={"dataset": {"name": "iris"}, **extra}, headers=api.alice)
    assert r.status_code == 422, r.text
    assert any(f["field"].startswith(field) for f in r.json()["error"]["fields"]), r.text
    assert api.count_rows() == 0


def test_patch_replaces_merges_and_clears(api: Api) -> None:
    job = api.submit(api.alice, tags={"a": "1", "b": "2"}, project="p", note="n")
    url = f"/v1/jobs/{job['id']}"

    def patch(body: dict) -> dict:
        r = api.client.patch(url, json=body, headers=api.alice)
        assert r.status_code == 200, r.text
        return r.json()

    assert patch({"merge_tags": {"b": None, "c": "3"}})["tags"] == {"a": "1", "c": "3"}
    assert patch({"tags": {"z": "9"}})["tags"] == {"z": "9"}
    out = patch({})  # nothing sent: nothing changes
    assert (out["tags"], out["note"], out["project"]) == ({"z": "9"}, "n", "p")
    out = patch({"note": "", "project": "q"})
    assert (out["note"], out["project"]) == (None, "q")
    assert patch({"project": None})["project"] is None
    assert patch({"tags": {}})["tags"] == {}
    too_many = {"merge_tags": {f"k{i}": "v" for i in range(50)}, "tags": {"x": "y"}}
    r = api.client.patch(url, json=too_many, headers=api.alice)
    assert r.status_code == 422 and "at most 50 tags" in r.text
    r = api.client.patch(url, json={"name": "x"}, headers=api.alice)
    assert r.status_code == 422


def test_projects_list_rename_delete_and_are_owner_scoped(api: Api) -> None:
    a1 = api.submit(api.alice, project="vision")
    api.submit(api.alice, project="vision")
    api.submit(api.alice, project="tabular")
    api.submit(api.bob, project="vision")  # bob's own "vision"
    page = api.client.get("/v1/projects", headers=api.alice).json()
    assert [(p["name"], p["jobs"], p["sweeps"]) for p in page["items"]] == [
        ("tabular", 1, 0),
        ("vision", 2, 0),
    ]
    ids = {p["name"]: p["id"] for p in page["items"]}
    bobs = api.client.get("/v1/projects", headers=api.bob).json()["items"]
    assert [(p["name"], p["jobs"]) for p in bobs] == [("vision", 1)]
    # Renaming onto another of one's names is a conflict; bob cannot touch alice's.
    r = api.client.patch(
        f"/v1/projects/{ids['vision']}", json={"name": "tabular"}, headers=api.alice
    )
    assert r.status_code == 409, r.text
    r = api.client.patch(f"/v1/projects/{ids['vision']}", json={"name": "x"}, headers=api.bob)
    assert r.status_code == 404
    r = api.client.patch(
        f"/v1/projects/{ids['vision']}", json={"name": "images"}, headers=api.alice
    )
    assert r.status_code == 200 and r.json()["name"] == "images"
    assert api.client.get(f"/v1/jobs/{a1['id']}", headers=api.alice).json()["project"] == "images"
    assert api.jobs(api.alice, filter="project = 'images'")[1]["total"] == 2
    assert api.jobs(api.bob, project="vision")[1]["total"] == 1
    # Deleting keeps the jobs, in no project.
    assert api.client.delete(f"/v1/projects/{ids['vision']}", headers=api.bob).status_code == 404
    assert api.client.delete(f"/v1/projects/{ids['vision']}", headers=api.alice).status_code == 204
    assert api.client.get(f"/v1/jobs/{a1['id']}", headers=api.alice).json()["project"] is None
    assert api.jobs(api.alice, filter="project is null")[1]["total"] == 2
    assert api.count_rows() == 4


def test_a_sweep_and_its_trials_share_its_project(api: Api) -> None:
    body = {
        "base": {"dataset": {"name": "iris"}, "optimizer": {"name": "sgd", "lr": "auto"}},
        "space": {"optimizer.lr": {"loguniform": ["auto", 0.5]}},
        "project": "tuning",
        "tags": {"stage": "search"},
        "note": "lr",
    }
    r = api.client.post("/v1/sweeps", json=body, headers=api.alice)
    assert r.status_code == 201, r.text
    sweep = r.json()
    assert (sweep["project"], sweep["tags"], sweep["note"]) == ("tuning", {"stage": "search"}, "lr")
    assert not {"project", "tags", "note"} & set(sweep["spec"])
    # Its range test (made with it) is in the project: a job of the sweep.
    status, page = api.jobs(api.alice, project="tuning")
    assert status == 200 and page["total"] == 1
    assert page["items"][0]["id"] == sweep["auto_bounds"]["job_id"]
    listed = api.client.get("/v1/sweeps", params={"project": "tuning"}, headers=api.alice)
    assert [s["id"] for s in listed.json()["items"]] == [sweep["id"]]
    r = api.client.patch(
        f"/v1/sweeps/{sweep['id']}", json={"merge_tags": {"k": "v"}}, headers=api.alice
    )
    assert r.status_code == 200 and r.json()["tags"] == {"stage": "search", "k": "v"}
    r = api.client.patch(f"/v1/sweeps/{sweep['id']}", json={"note": "x"}, headers=api.bob)
    assert r.status_code == 404
    comparison = {
        "base": {"dataset": {"name": "iris"}},
        "configurations": [{"set": {}}, {"set": {"optimizer.lr": 0.01}}],
        "project": "tuning",
    }
    r = api.client.post("/v1/comparisons", json=comparison, headers=api.alice)
    assert r.status_code == 201 and r.json()["project"] == "tuning", r.text
    projects = api.client.get("/v1/projects", headers=api.alice).json()["items"]
    assert [(p["name"], p["jobs"], p["sweeps"]) for p in projects] == [("tuning", 1, 2)]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("optimizer.lr > and status = 'queued'", "at column 16: expected a value after '>'"),
        ("status = 'queued' and", "at column 22: expected a field name"),
        ("name = 'open", "at column 8: the string opened here has no closing '"),
        ("optimizer.lr = null", "write 'is null'"),
        ("bogus = 1", "unknown field 'bogus'"),
        ("optimizer.rate = 1", "optimizer has no 'rate'"),
        ("optimizer = 'adam'", "optimizer is a section"),
        ("saved.val_acc > 0.9", "unknown metric 'val_acc'"),
        ("epochs_completed = 'ten'", "epochs_completed is a number, not a string"),
        ("name > 'b'", "only numbers (and times) are ordered"),
        ("tags.stage = 1", "tags.stage is a string, not a number"),
        ("created_at > 'yesterday'", "not an ISO 8601 date"),
        ("status in ('queued', 'sleeping')", "unknown status 'sleeping'"),
        ("(" * 40 + "status = 'queued'" + ")" * 40, "nested more than 32 deep"),
        ("status = 'queued' # comment", "at column 19: unexpected character '#'"),
        ("optimizer.lr > 1e999", "out of range"),
    ],
)
def test_a_bad_filter_is_a_422_naming_the_place(api: Api, text: str, needle: str) -> None:
    status, body = api.jobs(api.alice, filter=text)
    assert status == 422, body
    error = body["error"]
    assert error["fields"][0]["field"] == "filter"
    assert needle in error["message"], error["message"]


def test_unknown_fields_list_what_is_allowed(api: Api) -> None:
    _, body = api.jobs(api.alice, filter="saved.val_acc > 0.9")
    assert "saved.val_accuracy" in body["error"]["fields"][0]["allowed"]
    _, body = api.jobs(api.alice, filter="bogus = 1")
    allowed = body["error"]["fields"][0]["allowed"]
    assert {"status", "optimizer.<field>", "tags.<key>", "best.<metric>"} <= set(allowed)
    _, body = api.jobs(api.alice, sort="-bogus")
    assert body["error"]["fields"][0]["field"] == "sort"


INJECTIONS = [
    "name = 'x'' or 1=1 --'",
    'name = "x\\" or 1=1 --"',
    "optimizer.name = '; drop table jobs;'",
    "name = 'x''); DROP TABLE jobs; --'",
    "tags.stage = '\\' or ''='",
    "note contains '%'' or 1=1'",
    "name in ('a', 'b'' union select * from users --')",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_shaped_values_are_plain_values(api: Api, text: str) -> None:
    job = api.submit(api.alice, name="x", tags={"stage": "s"}, note="n")
    status, body = api.jobs(api.alice, filter=text)
    assert status == 200, body
    assert body["total"] == 0 and body["items"] == []
    assert api.count_rows() == 1
    # What such a value matches is a job that holds it, literally.
    odd = api.submit(api.alice, name="x' or 1=1 --")
    _, body = api.jobs(api.alice, filter="name = 'x'' or 1=1 --'")
    assert [j["id"] for j in body["items"]] == [odd["id"]]
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=api.alice).status_code == 200


@pytest.mark.parametrize(
    "text",
    [
        "tags.a'b = 1",
        "tags.a;b = 'x'",
        "optimizer.na\"me = 'adam'",
        "1=1",
        "name = 'x'); DROP TABLE jobs; --'",
        "status = 'queued'; drop table jobs",
        "status = 'queued' -- comment",
        "tags.\"stage\" = 'x'",
        "optimizer.name = 'adam' or 1",
        "name = 'x' union select id from users",
    ],
)
def test_injection_shaped_fields_and_syntax_are_422s(api: Api, text: str) -> None:
    api.submit(api.alice)
    status, body = api.jobs(api.alice, filter=text)
    assert status == 422, body
    assert "at column" in body["error"]["message"]
    assert api.count_rows() == 1
    assert api.jobs(api.alice)[1]["total"] == 1
