"""Labels users give things (job, dataset and token names): no control characters.

A control character in a label breaks logs, CSV exports and download file names, and
PostgreSQL refuses a NUL outright; so labels are checked where they come in, with a
message naming the character, rather than failing deep inside a write. The rule is a
character class, so the OpenAPI schema states it as a ``pattern`` too.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

#: C0 and C1 control characters, DEL, the line and paragraph separators, and the
#: bidirectional overrides and isolates (which make "exe.txt" display as "txt.exe").
_CLASS = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CLASS}]")
LABEL_PATTERN = f"^[^{_CLASS}]*$"
#: A user's name (an account, not a label): what the API and `descent admin` accept. Here
#: rather than in the accounts service so that its schemas import no SQLAlchemy.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


def check_label(value: str) -> str:
    """``value`` unchanged if it holds no control character; else ValueError saying which."""
    bad = _CONTROL.search(value)
    if bad:
        c = bad.group()
        raise ValueError(
            f"must be plain text: character {c!r} (U+{ord(c):04X}) at position {bad.start()} "
            "is a control character"
        )
    return value


def label_or_none(value: str | None) -> str | None:
    return None if value is None else check_label(value)


def strip_control(value: str) -> str:
    """For names we keep only as labels and never refuse (an uploaded file's name)."""
    return _CONTROL.sub("_", value)


#: A ``str`` without control characters. ``check_label`` validates it (its message names
#: the character); the pattern only tells the OpenAPI schema.
Label = Annotated[
    str, AfterValidator(check_label), Field(json_schema_extra={"pattern": LABEL_PATTERN})
]


def safe_filename(name: str) -> str:
    """``name`` for a Content-Disposition header: only ``[A-Za-z0-9._-]`` (anything else
    becomes ``_``), at most 100 characters, no leading dots."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].lstrip(".") or "model"
