"""The error a dataset upload is refused with, whichever check refuses it."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A problem with the uploaded dataset that the user can fix.

    Attributes:
        message: human-readable description naming the line and/or column.
        field: which request field to fix: ``"file"`` (the CSV contents, the default),
            ``"target"`` (the target column name) or ``"task"``.
        row: 1-based physical line number in the file (the header is line 1); ``None`` when
            the problem is not tied to one line.
        column: the column name involved, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str = "file",
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.row = row
        self.column = column

    def __str__(self) -> str:
        return self.message
