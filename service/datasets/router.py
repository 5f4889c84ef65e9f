"""HTTP routes for uploaded datasets."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile

from service.datasets import service
from service.datasets.schemas import DatasetPage, DatasetRead
from service.deps import SessionDep, SettingsDep
from service.errors import ERROR_SCHEMA, PayloadTooLarge

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses={422: ERROR_SCHEMA})


@router.post("", status_code=201, response_model=DatasetRead, responses={413: ERROR_SCHEMA})
def upload_dataset(
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="A UTF-8 CSV file with a header row.")],
    target: Annotated[
        str | None, Form(description="Name of the target column; default: the last column.")
    ] = None,
    task: Annotated[
        Literal["classification", "regression"] | None,
        Form(description="Default: inferred from the target column."),
    ] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> DatasetRead:
    """Upload a CSV dataset; numeric features, a target column, one row per sample."""
    # A plain (threadpool) route: parsing a large file must not block the event loop.
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"file: the upload is larger than this server's cap of "
            f"{settings.max_upload_bytes} bytes"
        )
    row = service.create(
        session=session,
        settings=settings,
        data=data,
        filename=file.filename,
        name=name,
        target=target,
        task=task,
    )
    return DatasetRead.model_validate(row)


@router.get("", response_model=DatasetPage)
def list_datasets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DatasetPage:
    """List uploaded datasets, newest first."""
    rows, total = service.list_datasets(session=session, limit=limit, offset=offset)
    return DatasetPage(
        items=[DatasetRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{dataset_id}", response_model=DatasetRead, responses={404: ERROR_SCHEMA})
def get_dataset(dataset_id: str, session: SessionDep) -> DatasetRead:
    """One uploaded dataset's description."""
    return DatasetRead.model_validate(service.get(session=session, dataset_id=dataset_id))


@router.delete("/{dataset_id}", status_code=204, responses={404: ERROR_SCHEMA, 409: ERROR_SCHEMA})
def delete_dataset(dataset_id: str, session: SessionDep, settings: SettingsDep) -> None:
    """Delete a dataset that no queued or running job uses."""
    service.delete(session=session, settings=settings, dataset_id=dataset_id)
