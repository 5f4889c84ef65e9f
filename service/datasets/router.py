"""HTTP routes for uploaded datasets."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from fastapi import File, Form, UploadFile
from sqlalchemy.orm import Session

from service.datasets import service
from service.datasets.schemas import DatasetPage, DatasetRead
from service.datasets.slots import BODY_TIMEOUT_SCHEMA, TOO_MANY_UPLOADS_SCHEMA
from service.deps import CurrentUser, DatasetId, DbDep, SettingsDep, authenticated_router
from service.errors import (
    BAD_REQUEST_SCHEMA,
    CONFLICT_SCHEMA,
    NOT_FOUND_SCHEMA,
    TOO_LARGE_SCHEMA,
    PayloadTooLarge,
)
from service.query import Limit, Offset
from service.text import Label

router = authenticated_router(prefix="/v1/datasets", tags=["datasets"])

#: A small upload, as the docs show it (two features, two classes, twelve rows).
EXAMPLE_CSV = "x1,x2,label\n" + "".join(
    f"{0.1 * i:.1f},{1.2 - 0.1 * i:.1f},{'ab'[i % 2]}\n" for i in range(12)
)

UPLOAD_DOC = """\
Upload a CSV dataset; numeric features, a target column, one row per sample.

The file is streamed to disk and parsed from there in bounded memory. A user may have
`DESCENT_MAX_UPLOADS_PER_USER` uploads in progress at once (429 beyond), and the server
`DESCENT_MAX_CONCURRENT_UPLOADS` in all (503 beyond), both with `Retry-After`; a body that
arrives too slowly is cut off with 408 (docs/limits.md).
"""


@router.post(
    "",
    status_code=201,
    response_model=DatasetRead,
    description=UPLOAD_DOC,
    responses={
        400: BAD_REQUEST_SCHEMA,
        408: BODY_TIMEOUT_SCHEMA,
        413: TOO_LARGE_SCHEMA,
        429: TOO_MANY_UPLOADS_SCHEMA,
    },
)
async def upload_dataset(
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile,
        File(description="A UTF-8 CSV file with a header row.", examples=[EXAMPLE_CSV]),
    ],
    target: Annotated[
        str | None,
        Form(
            description="Name of the target column; default: the last column.",
            examples=["label"],
        ),
    ] = None,
    task: Annotated[
        Literal["classification", "regression"] | None,
        Form(description="Default: inferred from the target column.", examples=["classification"]),
    ] = None,
    name: Annotated[Label | None, Form(max_length=200, examples=["two-kinds"])] = None,
) -> DatasetRead:
    """Upload a CSV dataset; numeric features, a target column, one row per sample."""

    # The form's file is already on disk (spooled past 1 MiB to the temporary folder,
    # owner-only, gone when closed); it is parsed from there a block at a time, in the
    # call's thread, off the event loop. The session connects only to insert the row,
    # after the parse.
    def work(session: Session) -> DatasetRead:
        size = file.file.seek(0, os.SEEK_END)
        if size > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"file: the upload is larger than this server's cap of "
                f"{settings.max_upload_bytes} bytes"
            )
        row = service.create(
            session=session,
            settings=settings,
            owner=user.id,
            data=file.file,
            filename=file.filename,
            name=name,
            target=target,
            task=task,
        )
        return DatasetRead.model_validate(row)

    return await db.run(work)


@router.get("", response_model=DatasetPage)
async def list_datasets(
    user: CurrentUser, db: DbDep, limit: Limit = 50, offset: Offset = 0
) -> DatasetPage:
    """List your uploaded datasets, newest first."""

    def work(session: Session) -> DatasetPage:
        rows, total = service.list_datasets(
            session=session, owner=user.id, limit=limit, offset=offset
        )
        items = [DatasetRead.model_validate(r) for r in rows]
        return DatasetPage(items=items, total=total, limit=limit, offset=offset)

    return await db.run(work)


@router.get("/{dataset_id}", response_model=DatasetRead, responses={404: NOT_FOUND_SCHEMA})
async def get_dataset(dataset_id: DatasetId, user: CurrentUser, db: DbDep) -> DatasetRead:
    """One uploaded dataset's description."""

    def work(session: Session) -> DatasetRead:
        row = service.get(session=session, dataset_id=dataset_id, owner=user.id)
        return DatasetRead.model_validate(row)

    return await db.run(work)


@router.delete(
    "/{dataset_id}", status_code=204, responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA}
)
async def delete_dataset(
    dataset_id: DatasetId, user: CurrentUser, db: DbDep, settings: SettingsDep
) -> None:
    """Delete a dataset that no queued or running job uses."""

    def work(session: Session) -> None:
        service.delete(session=session, settings=settings, dataset_id=dataset_id, owner=user.id)

    await db.run(work)
