"""Query-string helpers shared by the routers: comma-separated lists, paging, and the
largest number a query parameter may carry."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

from fastapi import Query

#: The largest number a query parameter may carry: an INTEGER column's largest value. A
#: larger one would reach the database and fail there (SQLite cannot bind an integer past
#: 2**63, PostgreSQL's integer stops at 2**31 - 1) as a 500 rather than a 422.
MAX_QUERY_INT = 2**31 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_QUERY_INT, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]


def comma_list_pattern(items: Iterable[str]) -> str:
    """The regular expression of what :func:`split_list` accepts: ``items`` separated by
    commas, with spaces around them and empty items allowed."""
    one = "|".join(re.escape(i) for i in items)
    item = rf" *(?:{one})? *"
    return rf"^{item}(?:,{item})*$"


def split_list(value: str | None) -> list[str]:
    """``"running, queued"`` → ``["running", "queued"]``; empty items are dropped."""
    return [part.strip(" ") for part in value.split(",") if part.strip(" ")] if value else []
