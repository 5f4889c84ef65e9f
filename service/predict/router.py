"""``POST /v1/jobs/{id}/predict``: a succeeded job's model on rows sent over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from service.deps import CurrentUser, DbDep, JobId, SettingsDep, authenticated_router
from service.errors import (
    BAD_REQUEST_SCHEMA,
    CONFLICT_SCHEMA,
    NOT_FOUND_SCHEMA,
    TOO_LARGE_SCHEMA,
    ApiError,
    Invalid,
    error_schema,
)
from service.gate import LoopLimiter
from service.predict import inputs, service
from service.predict.cache import ModelCache
from service.predict.schemas import EXAMPLE_CSV_ANSWER, REQUEST_BODY, PredictionRead
from service.spec import FieldError

router = authenticated_router(prefix="/v1/jobs", tags=["predictions"])

#: Predictions running at once in one API process: CPU work, so about one per core.
_WORKERS = LoopLimiter(max(2, os.cpu_count() or 1))


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


_MEDIA = "application/json, text/csv or multipart/form-data (a CSV file in the field `file`)"
UNSUPPORTED_SCHEMA = error_schema(
    415,
    "unsupported_media_type",
    f"the body is text/plain; send {_MEDIA}",
    "The body is neither JSON nor CSV",
)

PREDICT_DOC = f"""\
Run a succeeded training job's model on raw feature values (no scaling: the model applies
the preprocessing it was trained with) and get its predictions: the class label and every
class's probability (classification), or the value in the target's own units (regression).

Send {_MEDIA}: `{{"rows": [[...], ...]}}` with each row in the model's feature order (the
answer's `feature_names`), or `{{"rows": [{{"name": value, ...}}, ...]}}` by name, or a CSV
whose header names every feature, in any order. Columns the model does not take are refused
unless `?extra_columns=ignore`. At most `DESCENT_PREDICT_MAX_ROWS` rows (10,000 by default)
and `DESCENT_PREDICT_MAX_BYTES` of body. A bad value is a 422 naming its row and column.

The answer is JSON, or CSV (`?format=csv` or `Accept: text/csv`): a `prediction` column,
then `probability_<label>` per class. 409 for a job that has no model to predict with
(not succeeded, a lab job, or trained before bundles: download its state dict instead).
"""


def model_cache(request: Request) -> ModelCache:
    """The API process's loaded models (:func:`service.main.create_app` makes the cache)."""
    cache: ModelCache = request.app.state.model_cache
    return cache


def _media_type(request: Request) -> str:
    value = request.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def _wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "csv"
    accept = request.headers.get("accept", "").lower()
    return "text/csv" in accept and "application/json" not in accept


async def _csv_upload(request: Request) -> bytes:
    """The CSV file of a form: the field ``file``."""
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            message = "the form has no file field `file`: send the CSV as -F file=@rows.csv"
            raise Invalid(message, fields=[FieldError("file", "required")])
        return await upload.read()


@router.post(
    "/{job_id}/predict",
    response_model=PredictionRead,
    openapi_extra={"requestBody": REQUEST_BODY},
    description=PREDICT_DOC,
    responses={
        200: {"content": {"text/csv": {"example": EXAMPLE_CSV_ANSWER}}},
        400: BAD_REQUEST_SCHEMA,
        404: NOT_FOUND_SCHEMA,
        409: CONFLICT_SCHEMA,
        413: TOO_LARGE_SCHEMA,
        415: UNSUPPORTED_SCHEMA,
    },
)
async def predict(
    job_id: JobId,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    request: Request,
    # `Literal`, not `Literal | None`: the schema then offers the two values, never null.
    format: Annotated[
        Literal["json", "csv"],
        Query(description="`csv` for a CSV answer (as `Accept: text/csv` asks); default JSON."),
    ] = None,  # type: ignore[assignment]
    extra_columns: Annotated[
        inputs.Extra,
        Query(
            description="What to do with columns (CSV headers, names in row objects) the "
            "model does not take: `refuse` (422) or `ignore` them."
        ),
    ] = "refuse",
) -> Response:
    """Predict with a succeeded job's model: JSON rows or a CSV in, predictions out."""

    def work(session: Session) -> Path:
        return service.bundle_folder(
            session=session, settings=settings, job_id=job_id, owner=user.id
        )

    # The body is read (not parsed) before the database call, whose check for a departed
    # client takes a message from the request; then ownership and the job's state: another
    # user's job is a 404 whatever the body holds.
    body = await request.body()
    folder = await db.run(work)
    media = _media_type(request)
    if media in ("", "application/json") or media.endswith("+json"):
        form = None
    elif media in ("text/csv", "application/csv"):
        form = "body"
    elif media == "multipart/form-data":
        body, form = await _csv_upload(request), "file"  # parsed from the body read above
    else:
        raise UnsupportedMediaType(f"the body is {media}; send {_MEDIA}")
    cache = model_cache(request)

    def compute() -> Response:
        # Loading (first time), parsing and running are CPU work: off the event loop.
        model = cache.get(job_id, folder)
        names = model.feature_names
        if form is None:
            rows = inputs.from_json(
                body, names=names, max_rows=settings.predict_max_rows, extra=extra_columns
            )
        else:
            rows = inputs.from_csv(
                body,
                names=names,
                max_rows=settings.predict_max_rows,
                max_bytes=settings.predict_max_bytes,
                max_line_bytes=settings.max_line_bytes,
                field=form,
                extra=extra_columns,
            )
        doc = service.predict(model, rows)
        if _wants_csv(request, format):
            return Response(service.answer_csv(doc), media_type="text/csv")
        return Response(service.answer_json(doc), media_type="application/json")

    return await anyio.to_thread.run_sync(compute, limiter=_WORKERS())
