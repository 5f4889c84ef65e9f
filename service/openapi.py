"""The OpenAPI document: helpers for its hand-written parts, and the rewriting that makes
client generators accept it. pydantic only at run time: the API's response schemas import
this module, and the client side imports them without FastAPI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.routing import APIRoute


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with every nested model and enum written in place: the
    schema is embedded in an OpenAPI document (an event stream's ``contentSchema``),
    where pydantic's ``#/$defs/…`` references would point nowhere."""
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    return _resolve(schema, defs)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _resolve(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


# -- a document client generators accept ------------------------------------------------

#: The schema of a non-JSON body, for responses that name only the media type: without
#: one, generators (openapi-python-client) drop the response and the method returns
#: nothing. Text (CSV, SVG, Prometheus' text format) is a string, anything else bytes.
TEXT_SCHEMA: dict[str, str] = {"type": "string"}
BINARY_SCHEMA: dict[str, str] = {"type": "string", "format": "binary"}


def media_schema(media_type: str) -> dict[str, str] | None:
    """The schema a ``media_type`` answer without one gets; None for JSON and event streams,
    which carry their own."""
    base = media_type.split(";")[0].strip().lower()
    if base.endswith(("/json", "+json")) or base == "text/event-stream":
        return None
    if base.startswith("text/") or base.endswith("+xml"):
        return dict(TEXT_SCHEMA)
    return dict(BINARY_SCHEMA)


#: Keywords whose values are data, not schemas: nothing inside them is rewritten.
_DATA_KEYWORDS = frozenset({"default", "enum", "const", "example", "examples"})
#: Keywords whose values map names (of properties, of components) to schemas: a property
#: named ``const`` is a name there, not the keyword.
_NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "schemas"})


def operation_id(route: APIRoute) -> str:
    """A route's ``operationId``: its function's name (``create_job``, ``list_jobs``), the
    method name a generated client gives it. FastAPI's default appends the path and the
    method (``create_job_v1_jobs_post``). tests/service/test_openapi.py keeps them unique."""
    return route.name


def install_generator_friendly_openapi(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document as client generators read it: every ``const``
    written as a one-value ``enum`` and every image, CSV or file response with its schema
    (:func:`generator_friendly`). Swagger UI, ReDoc and schemathesis read the same one."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = generator_friendly(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def generator_friendly(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (changed in place) with what code generators stumble on rewritten, and what
    it accepts unchanged.

    - ``const: X`` becomes ``enum: [X]``, which validates the same values. pydantic
      writes a ``Literal`` as ``const``; openapi-python-client turns a ``const`` inside
      ``anyOf`` into a check that raises instead of trying the union's next member, so a
      client parsing ``lr: 0.001`` against ``anyOf[number, const "auto"]`` failed.
    - A tuple of one type (``tuple[int, int, int]``: ``prefixItems`` of equal schemas and
      as many items as it lists) becomes an array of that type with its length, which
      generators make a list of that type (and schemathesis 4.32 checks answers against
      without tripping over ``prefixItems``).
    - A response's media type without a schema gets one (:func:`media_schema`): CSV and
      SVG are strings, PNG, zip and other files binary.
    """
    _rewrite_schemas(doc)
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                for media_type, media in response.get("content", {}).items():
                    if "schema" not in media and (schema := media_schema(media_type)):
                        media["schema"] = schema
    return doc


def _rewrite_schemas(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite_schemas(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _DATA_KEYWORDS:
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            for schema in value.values():
                _rewrite_schemas(schema)
        else:
            _rewrite_schemas(value)
    if "const" in node and "enum" not in node:
        node["enum"] = [node.pop("const")]
    prefix = node.get("prefixItems")
    if (
        isinstance(prefix, list)
        and prefix
        and "items" not in node
        and all(item == prefix[0] for item in prefix)
        and node.get("minItems") == node.get("maxItems") == len(prefix)
    ):
        node["items"] = node.pop("prefixItems")[0]
