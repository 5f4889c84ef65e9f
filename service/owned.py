"""The one owner-scoped getter: a user's row, or a 404 that says nothing more.

Another user's job, sweep or dataset answers exactly as one that does not exist — the
same status and the same message — so ids cannot be probed.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from service.errors import NotFound


class OwnedRow(Protocol):
    @property
    def owner_id(self) -> str | None: ...


R = TypeVar("R", bound=OwnedRow)


def get_owned(session: Session, model: type[R], row_id: str, *, owner: str, what: str) -> R:
    """``owner``'s ``model`` row ``row_id``; :class:`NotFound` ("no ``what`` with id …")
    when there is none, or it is anyone else's."""
    row = session.get(model, row_id)
    if row is None or row.owner_id != owner:
        raise NotFound(f"no {what} with id {row_id!r}")
    return row
