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
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.spec import FieldError, SpecError, format_validation_error

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, fields: list[FieldError] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        if code:
            self.code = code


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


#: Shown in the OpenAPI docs for every route that can fail.
ERROR_SCHEMA = {
    "description": "Error",
    "content": {
        "application/json": {
            "example": error_body(
                422,
                "invalid_spec",
                "optimizer.lr: Input should be greater than 0",
                [FieldError("optimizer.lr", "Input should be greater than 0")],
            )
        }
    },
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _response(exc.status, exc.code, exc.message, exc.fields)

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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return _response(
            503,
            "database_unavailable",
            "the database is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return await _db_down(_, exc)  # type: ignore[arg-type]
        log.exception("database error")
        return _response(500, "internal_error", "internal error in the database layer")

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _response(500, "internal_error", "internal error; the server log has details")
