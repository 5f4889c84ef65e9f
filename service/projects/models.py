"""Projects: a named group of a user's jobs and sweeps, made on first use."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, column_property, mapped_column

from service.db import Base, UTCDateTime, utcnow


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # A name is unique per owner; the index also serves "this owner's projects by name".
    __table_args__ = (UniqueConstraint("owner_id", "name"),)


def name_column(project_id: Any) -> Any:
    """A row's project name, read with the row (a job or sweep is shown outside its
    session too): a ``column_property`` over the row's ``project_id`` column."""
    return column_property(
        select(Project.name)
        .where(Project.id == project_id)
        .correlate_except(Project)
        .scalar_subquery()
    )
