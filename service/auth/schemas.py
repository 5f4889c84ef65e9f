"""Request and response shapes of the accounts API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from service.text import NAME_PATTERN, Label


def _not_coerced(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


#: An integer (or null) as the schema has it: 5 or 5.0, never "5" or true, which pydantic's
#: lax mode would turn into 5 and 1 (and its strict mode refuses 5.0).
OptionalInt = Annotated[int | None, BeforeValidator(_not_coerced)]


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    role: Literal["admin", "user"] = Field(description="`admin` manages users; `user` does not.")
    disabled: bool = Field(description="A disabled user's tokens are refused (401).")
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, examples=["ada"])
    role: Literal["admin", "user"] = "user"


class UserPage(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    user_id: str
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    created_at: datetime
    last_used_at: datetime | None = Field(
        None, description="When it was last used (updated at most once a minute)."
    )
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Label = Field("api", min_length=1, max_length=100, description="A label for the token.")
    expires_in_days: OptionalInt = Field(
        None, ge=1, le=3650, description="Days until the token stops working; default: never."
    )


class TokenCreated(TokenRead):
    token: str = Field(
        description="The secret: send it as `Authorization: Bearer <token>`. It is shown "
        "only in this response and cannot be read back."
    )


class TokenPage(BaseModel):
    items: list[TokenRead]
    total: int
    limit: int
    offset: int
