"""Response shapes of the datasets API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description='Use it in a job: {"dataset": {"name": "uploaded", "id": ...}}')
    name: str
    filename: str | None = Field(None, description="The uploaded file's name, as a label only.")
    target: str
    task: str
    n_rows: int
    n_features: int
    n_classes: int | None
    feature_names: list[str]
    classes: list[str] | None = Field(None, description="Class labels, in index order.")
    size_bytes: int
    created_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetRead]
    total: int
    limit: int
    offset: int
