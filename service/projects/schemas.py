"""Request and response shapes of projects, tags and notes (no SQL: clients import them).

Tags are a flat map of short keys to short text values; a note is free text. Both are
set at submit time beside the spec's sections, and changed later with ``PATCH``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.text import LABEL_PATTERN

#: A tag key: what a filter names after ``tags.`` (``tags.stage``).
TAG_KEY_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
MAX_TAGS = 50
MAX_TAG_VALUE = 256
MAX_NOTE = 10_000
MAX_PROJECT_NAME = 100
#: A note may hold line breaks and tabs, no other control character (PostgreSQL refuses
#: a NUL outright; the others break logs and terminals).
NOTE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

TagKey = Annotated[str, StringConstraints(pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE, pattern=LABEL_PATTERN)]
Tags = Annotated[
    dict[TagKey, TagValue],
    Field(
        max_length=MAX_TAGS,
        description=f"Key → value labels (at most {MAX_TAGS}): keys of 1 to 64 letters, "
        f"digits, `_`, `.` or `-`; values up to {MAX_TAG_VALUE} characters. Filter with "
        "`tags.<key> = '…'`.",
        examples=[{"stage": "baseline", "owner": "ana"}],
        # Keys outside the pattern are refused: say so in the schema too.
        json_schema_extra={"additionalProperties": False},
    ),
]
Note = Annotated[
    str,
    Field(
        max_length=MAX_NOTE,
        pattern=NOTE_PATTERN,
        description=f"Free text, up to {MAX_NOTE:,} characters.",
        examples=["lr warm-up looks too short; try 5 epochs"],
    ),
]
ProjectName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PROJECT_NAME,
        pattern=LABEL_PATTERN,
        description="A project's name (unique among yours); made on first use.",
        examples=["digits-baselines"],
    ),
]

#: The fields a submit body takes beside the spec's sections.
ORGANISE_FIELDS = ("project", "tags", "note")


class Organised(BaseModel):
    """``project``, ``tags`` and ``note``: what ``POST /v1/jobs``, ``/v1/sweeps`` and
    ``/v1/comparisons`` take beside the spec (they are not part of the stored spec)."""

    project: ProjectName | None = Field(
        None, description="Put it in this project of yours (made on first use)."
    )
    tags: Tags | None = None
    note: Note | None = None


class LabelsUpdate(BaseModel):
    """``PATCH``: each field sent is changed, the others kept."""

    model_config = ConfigDict(extra="forbid")

    tags: Tags | None = Field(
        None,
        description="Replaces every tag (`{}` removes them all). To change some and keep "
        "the rest, use `merge_tags`.",
    )
    merge_tags: dict[TagKey, TagValue | None] | None = Field(
        None,
        max_length=MAX_TAGS,
        description="Sets these tags and keeps the others; a null value removes that tag. "
        "Applied after `tags`.",
        examples=[{"stage": "final", "draft": None}],
        json_schema_extra={"additionalProperties": False},
    )
    note: Note | None = Field(None, description='The note; `""` clears it.')
    project: ProjectName | None = Field(
        None, description="Move it into this project (made on first use); null: out of any."
    )


class ProjectRead(BaseModel):
    id: str
    name: str
    created_at: datetime
    jobs: int = Field(description="Jobs in it (a sweep's trials count too).")
    sweeps: int = Field(description="Sweeps and comparisons in it.")


class ProjectPage(BaseModel):
    items: list[ProjectRead]
    total: int
    limit: int
    offset: int


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProjectName


Spec = TypeVar("Spec", bound=BaseModel)


def split_body(body: BaseModel, spec_class: type[Spec]) -> tuple[Spec, Organised]:
    """A submit body (a spec's fields and :class:`Organised`'s) as the spec alone — what
    is stored and what a worker reads, with the fields the user set — and the labels.
    Both were validated with the body: nothing is checked twice."""
    sent = body.model_fields_set
    spec = spec_class.model_construct(
        _fields_set=sent - set(ORGANISE_FIELDS),
        **{name: getattr(body, name) for name in spec_class.model_fields},
    )
    labels = Organised.model_construct(
        _fields_set=sent & set(ORGANISE_FIELDS),
        **{name: getattr(body, name) for name in ORGANISE_FIELDS},
    )
    return spec, labels
