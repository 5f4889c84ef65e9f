"""Labels users give things (job, dataset and token names): printable text only.

A control character in a label breaks logs, CSV exports and download file names, and
PostgreSQL refuses a NUL outright; so labels are checked where they come in, with a
message naming the character, rather than failing deep inside a write.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def check_printable(value: str) -> str:
    """``value`` unchanged if every character is printable; else ValueError saying which."""
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise ValueError(
            f"must be printable text: character {bad!r} (U+{ord(bad):04X}) at position "
            f"{value.index(bad)} is a control or other non-printable character"
        )
    return value


def printable_or_none(value: str | None) -> str | None:
    return None if value is None else check_printable(value)


def strip_unprintable(value: str) -> str:
    """For names we keep only as labels and never refuse (an uploaded file's name)."""
    return "".join(c if c.isprintable() else "_" for c in value)


#: A ``str`` that must be printable (pydantic validates it).
Label = Annotated[str, AfterValidator(check_printable)]
