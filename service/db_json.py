"""A JSON column that holds one pydantic type.

``TypedJSON(adapter)`` validates what is written (a model, or a dict of the right shape)
and stores its JSON dump; what is read back is validated into the model again. So a
row's document always has a known shape, code handles models rather than loose dicts,
and a row that does not fit (written by hand, or by a future version) fails where it is
read, naming the field, instead of somewhere downstream. Chosen over calling a
``TypeAdapter`` at each boundary because there are many boundaries (ORM attributes,
``select`` of the column, ``update().values()`` in fenced writes) and one forgotten call
would let a dict through; the column type covers all of them.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class TypedJSON(TypeDecorator[Any]):
    """JSON in the database, ``adapter``'s type in Python; None is SQL NULL."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def __init__(self, adapter: TypeAdapter[Any]) -> None:
        super().__init__()
        self.adapter = adapter

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self.adapter.dump_python(self.adapter.validate_python(value), mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.adapter.validate_python(value)
