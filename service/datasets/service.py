"""Uploaded datasets: parse and check a CSV, store its arrays, list, read, delete."""

from __future__ import annotations

import os
import uuid
import zipfile
from typing import BinaryIO, Literal

import numpy as np
from numpy.lib import format as npy_format
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.datasets.csv_parse import CsvLimits, DatasetError, ParsedDataset, parse_csv
from service.datasets.models import Dataset
from service.errors import Conflict, Invalid
from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.owned import get_owned
from service.spec import FieldError
from service.text import strip_control

#: Most classes an uploaded classification dataset may have.
MAX_CLASSES = 1000
#: Bytes of an array written to the dataset's file at a time.
_WRITE_BLOCK = 1024 * 1024


def csv_limits(settings: Settings) -> CsvLimits:
    return CsvLimits(
        max_bytes=settings.max_upload_bytes,
        max_rows=settings.max_dataset_rows,
        max_columns=settings.max_dataset_columns,
        max_line_bytes=settings.max_line_bytes,
    )


def create(
    *,
    session: Session,
    settings: Settings,
    owner: str,
    data: bytes | BinaryIO,
    filename: str | None,
    name: str | None,
    target: str | None,
    task: Literal["classification", "regression"] | None,
) -> Dataset:
    """Parse ``data`` (the bytes, or a file holding them: an upload spooled to disk is
    parsed a block at a time); on success write ``<id>.npz`` then the row. A rejected file
    writes nothing; a failed write or commit removes what it wrote."""
    try:
        parsed = parse_csv(data, target=target, task=task, limits=csv_limits(settings))
    except DatasetError as exc:
        raise Invalid(
            exc.message,
            fields=[FieldError(exc.field, exc.message)],
            code="invalid_dataset",
        ) from exc
    if parsed.classes and len(parsed.classes) > MAX_CLASSES:
        message = (
            f"the target column {parsed.target_name!r} has {len(parsed.classes)} distinct "
            f"values; classification allows at most {MAX_CLASSES} classes (for a numeric "
            "target, upload with task=regression)"
        )
        raise Invalid(message, fields=[FieldError("target", message)], code="invalid_dataset")
    if parsed.classes:
        counts = np.bincount(parsed.target, minlength=len(parsed.classes))
        rare = [parsed.classes[i] for i in np.flatnonzero(counts < 2)]
        if rare:
            message = (
                f"class {rare[0]!r} of target column {parsed.target_name!r} has only one row; "
                "every class needs at least 2 (the split puts one in training and one in "
                "validation)"
            )
            raise Invalid(message, fields=[FieldError("target", message)], code="invalid_dataset")
    dataset_id = str(uuid.uuid4())
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    path = settings.datasets_dir / f"{dataset_id}.npz"
    # Written to a temporary name and renamed, so a worker never sees half a file; the
    # arrays go straight to the file, not through a copy in memory.
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as out:
            _save(out, parsed)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    size = len(data) if isinstance(data, bytes) else data.seek(0, os.SEEK_END)
    row = Dataset(
        id=dataset_id,
        owner_id=owner,
        name=(name or strip_control(filename or "dataset").rsplit(".", 1)[0])[:200],
        filename=(filename or None) and strip_control(filename)[:255],
        target=parsed.target_name,
        task=parsed.task,
        n_rows=parsed.n_rows,
        n_features=len(parsed.feature_names),
        n_classes=len(parsed.classes) if parsed.classes else None,
        feature_names=parsed.feature_names,
        classes=parsed.classes,
        size_bytes=size,
    )
    try:
        session.add(row)
        session.commit()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return row


def _save(out: BinaryIO, parsed: ParsedDataset) -> None:
    """The dataset as ``.npz`` (what ``np.load`` reads), written without a copy of the
    arrays: ``np.savez`` copies each array whole into bytes on its way into the zip."""
    arrays = {
        "features": parsed.features,
        "target": parsed.target,
        "task": np.array(parsed.task),
        "n_classes": np.array(len(parsed.classes) if parsed.classes else 0),
        # A trained model's manifest names its inputs and outputs with these (strings,
        # so the file still loads without pickle).
        "feature_names": np.array(parsed.feature_names, dtype=str),
        "classes": np.array(parsed.classes or [], dtype=str),
    }
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                if array.dtype.kind in "biuf" and array.flags.c_contiguous:
                    npy_format.write_array_header_1_0(
                        member, npy_format.header_data_from_array_1_0(array)
                    )
                    flat = array.data.cast("B")
                    for start in range(0, len(flat), _WRITE_BLOCK):
                        member.write(flat[start : start + _WRITE_BLOCK])
                else:
                    npy_format.write_array(member, array, allow_pickle=False)


def get(*, session: Session, dataset_id: str, owner: str) -> Dataset:
    """``owner``'s dataset; anyone else's answers exactly as one that does not exist."""
    return get_owned(session, Dataset, dataset_id, owner=owner, what="dataset")


def list_datasets(
    *, session: Session, owner: str, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    mine = Dataset.owner_id == owner
    total = session.scalar(select(func.count()).select_from(Dataset).where(mine)) or 0
    rows = session.scalars(
        select(Dataset)
        .where(mine)
        .order_by(Dataset.created_at.desc(), Dataset.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def delete(*, session: Session, settings: Settings, dataset_id: str, owner: str) -> None:
    row = get(session=session, dataset_id=dataset_id, owner=owner)
    # Every job counts, whoever owns it: the file must outlive any job that reads it.
    in_use = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.dataset_id == dataset_id, Job.status.in_(JobStatus.ACTIVE))
    )
    if in_use:
        raise Conflict(f"dataset {dataset_id} is used by {in_use} queued or running job(s)")
    session.delete(row)
    session.commit()
    (settings.datasets_dir / f"{dataset_id}.npz").unlink(missing_ok=True)
