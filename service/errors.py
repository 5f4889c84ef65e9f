"""One JSON error body for every failure the API reports.

    {"error": {"status": 422, "code": "invalid_spec", "message": "...",
               "fields": [{"field": "optimizer.lr", "message": "...", "allowed": [...]}]}}

``fields`` is present when the problem is with named fields of the request.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.spec import FieldError, SpecError, format_validation_error

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "bad_request"
    #: extra response headers (``WWW-Authenticate`` on a 401)
    headers: dict[str, str] | None = None

    def __init__(
        self, message: str, *, fields: list[FieldError] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        if code:
            self.code = code


class Unauthorized(ApiError):
    """No token, or one that is unknown, revoked, expired or whose user is disabled."""

    status, code = 401, "unauthorized"

    def __init__(self, message: str, *, invalid_token: bool = False) -> None:
        super().__init__(message)
        # RFC 6750: a challenge on every 401; error="invalid_token" when one was sent.
        self.headers = {
            "WWW-Authenticate": 'Bearer error="invalid_token"' if invalid_token else "Bearer"
        }


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Invalid(ApiError):
    status, code = 422, "invalid_request"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class Unavailable(ApiError):
    status, code = 503, "unavailable"
    headers = {"Retry-After": "5"}


class ClientGone(ApiError):
    """The client closed its connection before its request was served: nobody reads the
    answer (nginx's 499 in the access log), and no database work was started for it."""

    status, code = 499, "client_closed_request"


def error_body(
    status: int, code: str, message: str, fields: list[FieldError] | None = None
) -> dict[str, Any]:
    err: dict[str, Any] = {"status": status, "code": code, "message": message}
    if fields:
        err["fields"] = [f.as_dict() for f in fields]
    return {"error": err}


def _response(
    status: int,
    code: str,
    message: str,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, code, message, fields), status_code=status, headers=headers
    )


def _summary(fields: list[FieldError]) -> str:
    return "; ".join(f"{f.field}: {f.message}" for f in fields)


# -- the error body in the OpenAPI docs ----------------------------------------------


class ErrorField(BaseModel):
    """One problem with one named field of the request."""

    field: str = Field(description="Where: a dotted path (`optimizer.lr`), a parameter or `body`.")
    message: str
    allowed: list[Any] | None = Field(None, description="The values allowed there, if few.")


class ErrorDetail(BaseModel):
    status: int = Field(description="The response's HTTP status.")
    code: str = Field(description="What went wrong: `invalid_spec`, `not_found`, `conflict`, …")
    message: str = Field(description="What went wrong, in words a user can act on.")
    fields: list[ErrorField] | None = Field(
        None, description="Present when the problem is with named fields of the request."
    )


class ErrorBody(BaseModel):
    """The body of every error the API reports (FastAPI's own 422 body is never used)."""

    error: ErrorDetail


def _header(description: str, *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


def error_schema(
    status: int,
    code: str,
    message: str,
    description: str,
    *,
    fields: list[FieldError] | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenAPI response entry: the ``ErrorBody`` schema, with an example of its own."""
    entry: dict[str, Any] = {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"example": error_body(status, code, message, fields)}},
    }
    if headers:
        entry["headers"] = headers
    return entry


#: The 422 of every route that takes parameters or a body, in place of FastAPI's own: the
#: request (its body, path or query) holds something that is not allowed.
ERROR_SCHEMA = error_schema(
    422,
    "invalid_spec",
    "optimizer.lr: Input should be greater than 0",
    "The request is not valid: the fields name each problem and what is allowed",
    fields=[FieldError("optimizer.lr", "Input should be greater than 0")],
)
UNAUTHORIZED_SCHEMA = error_schema(
    401,
    "unauthorized",
    "missing API token: send 'Authorization: Bearer <token>'",
    "No token, or one that is invalid, expired or revoked",
    headers={
        "WWW-Authenticate": _header(
            'The challenge: `Bearer`, or `Bearer error="invalid_token"` when a token was sent',
            required=True,
        )
    },
)
BAD_REQUEST_SCHEMA = error_schema(
    400,
    "bad_request",
    "Invalid multipart data.",
    "The request body cannot be parsed as its Content-Type says",
)
CONFLICT_SCHEMA = error_schema(
    409,
    "conflict",
    "job 3f0c… already ended as succeeded; nothing to cancel",
    "The resource is not in a state that allows this",
)
TOO_LARGE_SCHEMA = error_schema(
    413,
    "payload_too_large",
    "the request body is too large: a request body may be at most 1,048,576 bytes (1.0 MiB) "
    "(DESCENT_MAX_REQUEST_BYTES)",
    "The request body is larger than this server's cap",
)
UNAVAILABLE_SCHEMA = error_schema(
    503,
    "database_unavailable",
    "the database is unavailable; try again shortly",
    "The database or the task broker cannot be reached, or every database connection "
    "stayed busy for `DESCENT_DB_QUEUE_SECONDS` (code `unavailable`); nothing was written",
    headers={"Retry-After": _header("Seconds to wait before trying again.")},
)
FORBIDDEN_SCHEMA = error_schema(
    403, "forbidden", "this needs an admin's token", "The token's user is not an admin"
)
NOT_FOUND_SCHEMA = error_schema(
    404,
    "not_found",
    "no job with id '3f0c…'",
    "No such resource, or one that belongs to another user",
)


def api_error_response(exc: ApiError) -> JSONResponse:
    return _response(exc.status, exc.code, exc.message, exc.fields, headers=exc.headers)


def database_error_response(exc: DBAPIError | PoolTimeout) -> JSONResponse:
    """503 when the database cannot be reached, or no connection was free in time (never
    a bare 500); 500 for anything else."""
    if isinstance(exc, PoolTimeout):
        log.warning("no database connection free in time: %s", exc)
        return api_error_response(
            Unavailable("the server is busy: no database connection was free; try again shortly")
        )
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        log.warning("database unavailable: %s", exc)
        return _response(
            503,
            "database_unavailable",
            "the database is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )
    log.exception("database error", exc_info=exc)
    return _response(500, "internal_error", "internal error in the database layer")


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers to, for a 405's ``Allow`` (RFC 9110 §15.5.6).

    Starlette names only the methods of the first route whose path matched, and most paths
    here are served by one route per method (``GET`` and ``POST /v1/jobs``).
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI: app.routes is flat already
        routes: list[Any] = list(request.app.routes)
    else:
        routes = list(iter_route_contexts(request.app.routes))
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(SpecError)
    async def _spec_error(_: Request, exc: SpecError) -> JSONResponse:
        return _response(422, "invalid_spec", _summary(exc.errors), exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        in_body = [e for e in errors if e["loc"][:1] == ("body",)]
        body = getattr(exc, "body", None)
        fields = format_validation_error(
            [{**e, "loc": tuple(e["loc"][1:])} for e in in_body], body
        ) + format_validation_error(
            [{**e, "loc": tuple(e["loc"][1:])} for e in errors if e not in in_body], None
        )
        code = "invalid_spec" if in_body else "invalid_request"
        return _response(422, code, _summary(fields), fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers = {**headers, "Allow": ", ".join(allowed_methods(request))}
        return _response(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(DBAPIError)  # OperationalError is one
    @app.exception_handler(PoolTimeout)  # not a DBAPIError: the pool's own
    async def _db_error(_: Request, exc: DBAPIError | PoolTimeout) -> JSONResponse:
        return database_error_response(exc)

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _response(500, "internal_error", "internal error; the server log has details")
