"""The OpenAPI document holds together: every reference in it, the hand-written event
stream schemas included, points at something the document has."""

from __future__ import annotations

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
