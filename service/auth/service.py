"""Accounts and tokens, without HTTP: used by the API, its auth dependency and the CLI."""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth.models import ADMIN, ROLES, USER, ApiToken, User
from service.auth.security import find_token, generate_token, hash_token, shown_prefix
from service.config import Settings
from service.datasets.models import Dataset
from service.db import make_engine, make_sessionmaker, session_scope, utcnow
from service.errors import Conflict, Invalid, NotFound
from service.jobs.models import Job
from service.spec import FieldError
from service.text import NAME_PATTERN

#: The embedded default's user: created on first start, and the one every request acts
#: as when ``DESCENT_AUTH=none``.
LOCAL_ADMIN = "admin"
#: ``last_used_at`` is written at most this often per token, so reads stay reads.
TOUCH_INTERVAL = timedelta(seconds=60)
_NAME_RE = re.compile(NAME_PATTERN)


# -- users --------------------------------------------------------------------------


def create_user(*, session: Session, name: str, role: str = USER) -> User:
    if not _NAME_RE.match(name):
        message = (
            f"user name {name!r} is not allowed: 1 to 100 letters, digits, '.', '_', '@' "
            "or '-', starting with a letter or digit"
        )
        raise Invalid(message, fields=[FieldError("name", message)])
    if role not in ROLES:
        message = f"unknown role {role!r}"
        raise Invalid(message, fields=[FieldError("role", message, list(ROLES))])
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"a user named {name!r} already exists")
    user = User(id=str(uuid.uuid4()), name=name, role=role, disabled=False)
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:  # created by someone else at the same moment
        session.rollback()
        raise Conflict(f"a user named {name!r} already exists") from exc
    return user


def get_user(*, session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id!r}")
    return user


def get_user_by_name(*, session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def list_users(*, session: Session, limit: int = 50, offset: int = 0) -> tuple[list[User], int]:
    total = session.scalar(select(func.count()).select_from(User)) or 0
    rows = session.scalars(
        select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def set_disabled(*, session: Session, user_id: str, disabled: bool) -> User:
    """Disable or enable a user; a disabled user's tokens are refused until enabled again.

    The last enabled admin cannot be disabled: nobody could manage users after that.
    """
    user = get_user(session=session, user_id=user_id)
    if disabled and not user.disabled and user.role == ADMIN:
        admins = session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == ADMIN, User.disabled.is_(False), User.id != user.id)
        )
        if not admins:
            raise Conflict(f"{user.name!r} is the last enabled admin; enable another one first")
    user.disabled = disabled
    session.commit()
    return user


# -- tokens -------------------------------------------------------------------------


def create_token(
    *, session: Session, user_id: str, name: str = "api", expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for ``user_id``: the row, and the plain token, which is never stored
    and cannot be shown again."""
    get_user(session=session, user_id=user_id)
    plain = generate_token()
    row = ApiToken(
        id=str(uuid.uuid4()),
        user_id=user_id,
        name=name,
        token_hash=hash_token(plain),
        prefix=shown_prefix(plain),
        expires_at=expires_at,
    )
    session.add(row)
    session.commit()
    return row, plain


def list_tokens(
    *, session: Session, user_id: str, limit: int = 50, offset: int = 0
) -> tuple[list[ApiToken], int]:
    query = select(ApiToken).where(ApiToken.user_id == user_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(ApiToken.created_at.desc(), ApiToken.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def revoke_token(*, session: Session, token_id: str, user_id: str | None) -> ApiToken:
    """Revoke a token (once; revoking it again changes nothing). With ``user_id``, only
    that user's tokens are found: anyone else's answer as missing."""
    row = session.get(ApiToken, token_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise NotFound(f"no token with id {token_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


def valid_token_user(*, session: Session, row: ApiToken | None) -> User | None:
    """The user of token ``row`` while the token is valid (not revoked, not expired) and
    its user enabled; else None."""
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return user


def token_holder(*, session: Session, token: str) -> tuple[ApiToken, User] | None:
    """The stored token and its user, or None when the token is unknown, revoked or
    expired, or its user is disabled. Records when the token was last used, at most once
    a minute."""
    row = find_token(session, token)
    user = valid_token_user(session=session, row=row)
    if row is None or user is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
        # Conditional, so concurrent requests with the same token write once; committed
        # at once, so the request's own transaction stays free of this write.
        session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == row.id,
                or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - TOUCH_INTERVAL),
            )
            .values(last_used_at=now)
        )
        session.commit()
    return row, user


# -- the local admin (embedded default, DESCENT_AUTH=none) ---------------------------


def local_admin(*, session: Session) -> User:
    """The local admin user, created if it does not exist yet."""
    user = session.scalar(select(User).where(User.name == LOCAL_ADMIN))
    if user is not None:
        return user
    try:
        return create_user(session=session, name=LOCAL_ADMIN, role=ADMIN)
    except Conflict:  # another request created it first
        return get_user_by_name(session=session, name=LOCAL_ADMIN)


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path``, readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask, or a leftover file's mode
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ensure_local_admin(settings: Settings) -> str | None:
    """On a database with no users (the embedded default's first start), create the local
    admin and a token, write it to ``settings.token_file`` and return it; else None."""
    engine = make_engine(str(settings.database_url))
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            if session.scalar(select(func.count()).select_from(User)):
                return None
            user = local_admin(session=session)
            _, plain = create_token(session=session, user_id=user.id, name="local")
            # Jobs and datasets from before accounts existed (an embedded data dir from
            # an older version) belong to whoever ran it: the local admin.
            for model in (Job, Dataset):
                session.execute(
                    update(model).where(model.owner_id.is_(None)).values(owner_id=user.id)
                )
    finally:
        engine.dispose()
    write_token_file(settings.token_file, plain)
    return plain


def mint_local_token(settings: Settings) -> str:
    """A new token for the local admin (created if needed), written to the token file."""
    engine = make_engine(str(settings.database_url))
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            user = local_admin(session=session)
            if user.disabled:
                raise Conflict(
                    f"the local admin {user.name!r} is disabled; "
                    f"`descent admin enable-user {user.name}` enables it"
                )
            _, plain = create_token(session=session, user_id=user.id, name="local")
    finally:
        engine.dispose()
    write_token_file(settings.token_file, plain)
    return plain
