"""HTTP routes for the caller's account and tokens, and (admins only) for users."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Response
from sqlalchemy.orm import Session

from service.auth import service
from service.auth.models import ApiToken, User
from service.auth.schemas import (
    TokenCreate,
    TokenCreated,
    TokenPage,
    TokenRead,
    UserCreate,
    UserPage,
    UserRead,
)
from service.db import utcnow
from service.deps import AdminUser, CurrentUser, DbDep, TokenId, UserId, authenticated_router
from service.errors import CONFLICT_SCHEMA, NOT_FOUND_SCHEMA, TOO_LARGE_SCHEMA
from service.query import Limit, Offset

router = authenticated_router(prefix="/v1", tags=["accounts"])
#: User management: admins only, 403 for anyone else.
admin = authenticated_router(prefix="/v1/users", tags=["users"], admin=True)


def _created(row: ApiToken, plain: str) -> TokenCreated:
    return TokenCreated.model_validate(
        {**TokenRead.model_validate(row).model_dump(), "token": plain}
    )


def _mint(session: Session, user: User, body: TokenCreate) -> TokenCreated:
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, plain = service.create_token(
        session=session, user_id=user.id, name=body.name, expires_at=expires
    )
    return _created(row, plain)


def _tokens(session: Session, user_id: str, limit: int, offset: int) -> TokenPage:
    rows, total = service.list_tokens(session=session, user_id=user_id, limit=limit, offset=offset)
    items = [TokenRead.model_validate(r) for r in rows]
    return TokenPage(items=items, total=total, limit=limit, offset=offset)


def _set_disabled(session: Session, user_id: str, disabled: bool) -> UserRead:
    user = service.set_disabled(session=session, user_id=user_id, disabled=disabled)
    return UserRead.model_validate(user)


@router.get("/me", response_model=UserRead)
async def me(user: CurrentUser) -> UserRead:
    """The user the request's token belongs to."""
    return UserRead.model_validate(user)


@router.get("/tokens", response_model=TokenPage)
async def list_my_tokens(
    user: CurrentUser, db: DbDep, limit: Limit = 50, offset: Offset = 0
) -> TokenPage:
    """Your tokens, newest first (prefixes only; a secret is never shown again)."""
    return await db.run(lambda session: _tokens(session, user.id, limit, offset))


@router.post(
    "/tokens", status_code=201, response_model=TokenCreated, responses={413: TOO_LARGE_SCHEMA}
)
async def create_my_token(
    user: CurrentUser, db: DbDep, body: TokenCreate | None = None
) -> TokenCreated:
    """Create a token for yourself; the secret is in this response only."""
    return await db.run(lambda session: _mint(session, user, body or TokenCreate()))


@router.delete("/tokens/{token_id}", status_code=204, responses={404: NOT_FOUND_SCHEMA})
async def revoke_my_token(token_id: TokenId, user: CurrentUser, db: DbDep) -> Response:
    """Revoke one of your tokens; it is refused from then on."""
    await db.run(
        lambda session: service.revoke_token(session=session, token_id=token_id, user_id=user.id)
    )
    return Response(status_code=204)


@admin.get("", response_model=UserPage)
async def list_users(_: AdminUser, db: DbDep, limit: Limit = 50, offset: Offset = 0) -> UserPage:
    """Every user, oldest first (admins only)."""

    def work(session: Session) -> UserPage:
        rows, total = service.list_users(session=session, limit=limit, offset=offset)
        items = [UserRead.model_validate(r) for r in rows]
        return UserPage(items=items, total=total, limit=limit, offset=offset)

    return await db.run(work)


@admin.post(
    "",
    status_code=201,
    response_model=UserRead,
    responses={409: CONFLICT_SCHEMA, 413: TOO_LARGE_SCHEMA},
)
async def create_user(_: AdminUser, db: DbDep, body: UserCreate) -> UserRead:
    """Create a user (admins only); `POST /v1/users/{id}/tokens` gives it a token."""
    return await db.run(
        lambda session: UserRead.model_validate(
            service.create_user(session=session, name=body.name, role=body.role)
        )
    )


@admin.get("/{user_id}", response_model=UserRead, responses={404: NOT_FOUND_SCHEMA})
async def get_user(user_id: UserId, _: AdminUser, db: DbDep) -> UserRead:
    """One user (admins only)."""
    return await db.run(
        lambda session: UserRead.model_validate(service.get_user(session=session, user_id=user_id))
    )


@admin.post(
    "/{user_id}/disable",
    response_model=UserRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
async def disable_user(user_id: UserId, _: AdminUser, db: DbDep) -> UserRead:
    """Disable a user: their tokens are refused until enabled (admins only)."""
    return await db.run(lambda session: _set_disabled(session, user_id, True))


@admin.post("/{user_id}/enable", response_model=UserRead, responses={404: NOT_FOUND_SCHEMA})
async def enable_user(user_id: UserId, _: AdminUser, db: DbDep) -> UserRead:
    """Enable a disabled user again (admins only)."""
    return await db.run(lambda session: _set_disabled(session, user_id, False))


@admin.get("/{user_id}/tokens", response_model=TokenPage, responses={404: NOT_FOUND_SCHEMA})
async def list_user_tokens(
    user_id: UserId, _: AdminUser, db: DbDep, limit: Limit = 50, offset: Offset = 0
) -> TokenPage:
    """A user's tokens, newest first (admins only)."""

    def work(session: Session) -> TokenPage:
        service.get_user(session=session, user_id=user_id)  # 404 for an unknown user
        return _tokens(session, user_id, limit, offset)

    return await db.run(work)


@admin.post(
    "/{user_id}/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses={404: NOT_FOUND_SCHEMA, 413: TOO_LARGE_SCHEMA},
)
async def create_user_token(
    user_id: UserId, _: AdminUser, db: DbDep, body: TokenCreate | None = None
) -> TokenCreated:
    """Create a token for a user (admins only); the secret is in this response only."""

    def work(session: Session) -> TokenCreated:
        user = service.get_user(session=session, user_id=user_id)
        return _mint(session, user, body or TokenCreate())

    return await db.run(work)
