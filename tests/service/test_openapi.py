"""The OpenAPI document holds together: every reference in it, the hand-written event
stream schemas included, points at something the document has."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_reference_in_the_openapi_document_resolves(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    found = refs(doc)
    assert found  # the models are referenced from components
    dangling = []
    for ref in set(found):
        try:
            resolve(doc, ref)
        except (KeyError, AssertionError):
            dangling.append(ref)
    assert not dangling, sorted(dangling)


def test_the_event_streams_describe_their_events_inline(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    for path in ("/v1/jobs/{job_id}/events", "/v1/sweeps/{sweep_id}/events"):
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        data = content["text/event-stream"]["schema"]["properties"]["data"]
        assert not refs(data["contentSchema"]), path
        statuses = [
            s["properties"]["status"]
            for s in data["contentSchema"]["anyOf"]
            if "status" in s.get("properties", {})
        ]
        assert statuses and all("enum" in s for s in statuses), (path, statuses)


# -- what client generators need ---------------------------------------------------------


def test_operation_ids_are_the_route_names_and_unique(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    ids = {
        (method.upper(), path): op["operationId"]
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert ids[("POST", "/v1/jobs")] == "create_job"
    assert ids[("GET", "/v1/jobs")] == "list_jobs"
    assert ids[("GET", "/v1/jobs/{job_id}")] == "get_job"
    assert ids[("POST", "/v1/jobs/{job_id}/cancel")] == "cancel_job"
    assert ids[("GET", "/v1/jobs/{job_id}/metrics.csv")] == "job_metrics_csv"
    assert ids[("POST", "/v1/sweeps")] == "create_sweep"
    duplicated = sorted(i for i in set(ids.values()) if list(ids.values()).count(i) > 1)
    assert not duplicated, duplicated
    assert all(i.isidentifier() and i == i.lower() for i in ids.values()), ids


def test_component_titles_are_unique(api: TestClient) -> None:
    # Generators name each model's class after its schema's title.
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    titles = [s.get("title", name) for name, s in schemas.items()]
    assert sorted(t for t in set(titles) if titles.count(t) > 1) == []


def consts(node: Any) -> list[Any]:
    """Every ``const`` keyword in a schema document (not inside examples or defaults)."""
    if isinstance(node, list):
        return [c for v in node for c in consts(v)]
    if not isinstance(node, dict):
        return []
    own = [node["const"]] if "const" in node else []
    inner = [
        c
        for k, v in node.items()
        if k not in ("const", "default", "enum", "example", "examples")
        for c in (consts(list(v.values())) if k == "properties" else consts(v))
    ]
    return own + inner


def test_literals_are_one_value_enums_not_const(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    assert consts(doc) == []
    assert "prefixItems" not in json.dumps(doc)  # tuples of one type: arrays of it
    adam = doc["components"]["schemas"]["Adam"]["properties"]
    assert {"type": "string", "enum": ["auto"]} in adam["lr"]["anyOf"]
    assert adam["name"]["enum"] == ["adam"]


def test_the_rewritten_schema_accepts_and_refuses_what_the_original_did() -> None:
    import copy

    import jsonschema_rs

    from service.openapi import generator_friendly
    from service.spec import JobSpec

    schema = JobSpec.model_json_schema()
    assert consts(schema), "pydantic writes a Literal as const"
    assert "prefixItems" in json.dumps(schema), "and a tuple as prefixItems"
    rewritten = generator_friendly(copy.deepcopy(schema))
    assert not consts(rewritten) and "prefixItems" not in json.dumps(rewritten)
    base = {"dataset": {"name": "digits"}}
    bodies = [
        base,
        {**base, "optimizer": {"name": "adam", "lr": 0.001}},
        {**base, "optimizer": {"name": "adam", "lr": "auto"}},
        {**base, "optimizer": {"name": "adam", "lr": "fast"}},
        {**base, "optimizer": {"name": "adamx"}},
        {**base, "schedule": {"name": "one_cycle", "max_lr": "auto"}},
        {**base, "training": {"batch_size": "full"}},
        {**base, "training": {"batch_size": "all"}},
        {**base, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}},
        {**base, "optimizer": {"name": "adam", "betas": [0.9]}},
        {**base, "optimizer": {"name": "adam", "betas": [0.9, 0.99, 0.9]}},
        {**base, "optimizer": {"name": "adam", "betas": ["0.9", 0.99]}},
    ]
    before = jsonschema_rs.validator_for(schema)
    after = jsonschema_rs.validator_for(rewritten)
    verdicts = [(before.is_valid(b), after.is_valid(b)) for b in bodies]
    assert all(b == a for b, a in verdicts), verdicts
    assert [v for v, _ in verdicts] == [True, True, True, False, False, True, True, False] + [
        True,
        False,
        False,
        False,
    ]


#: The schema each non-JSON media type of a response has.
MEDIA_SCHEMAS = {
    "text/csv": {"type": "string"},
    "image/svg+xml": {"type": "string"},
    "image/png": {"type": "string", "format": "binary"},
    "application/zip": {"type": "string", "format": "binary"},
    "application/octet-stream": {"type": "string", "format": "binary"},
}


def test_csv_image_and_file_answers_have_their_schemas(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    seen: set[str] = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                for media_type, media in response.get("content", {}).items():
                    if media_type in ("application/json", "text/event-stream"):
                        continue
                    where = (method, path, status, media_type)
                    assert "schema" in media, where
                    if media_type in MEDIA_SCHEMAS:
                        assert media["schema"] == MEDIA_SCHEMAS[media_type], where
                        seen.add(media_type)
    assert seen == set(MEDIA_SCHEMAS)
    csv = doc["paths"]["/v1/jobs/{job_id}/metrics.csv"]["get"]["responses"]["200"]["content"]
    assert list(csv) == ["text/csv"]


def test_the_operation_ids_docs_api_clients_names_exist(api: TestClient) -> None:
    import re
    from pathlib import Path

    doc = api.get("/openapi.json").json()
    ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    text = (Path(__file__).parents[2] / "docs" / "api-clients.md").read_text()
    table = text.split("| operationId | operation |", 1)[1].split("\n\n", 1)[0]
    named = {n for row in table.splitlines()[2:] for n in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert len(named) >= 30 and named <= ids, sorted(named - ids)


def test_a_route_added_later_gets_a_schema_for_its_media_type() -> None:
    from service.openapi import media_schema

    assert media_schema("text/plain; version=0.0.4; charset=utf-8") == {"type": "string"}
    assert media_schema("image/webp") == {"type": "string", "format": "binary"}
    assert media_schema("application/problem+json") is None
    assert media_schema("text/event-stream") is None
