"""``/v1/session``: a browser signs in with a token once and is then carried by a cookie.

See :mod:`service.auth.sessions` for what a session is and how CSRF is refused. Signing
in is public (it is how a page gets credentials), and so is asking who is signed in (a
page asks before it knows; nobody is an answer, not an error); signing out needs the
session (and its CSRF token), like every other route.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service.auth import sessions
from service.auth.middleware import (
    SESSION_STATE,
    holder_of_token,
    session_cookie,
    user_for_authorization,
)
from service.auth.models import User
from service.auth.schemas import UserRead
from service.auth.service import local_admin
from service.config import Settings
from service.deps import CurrentUser, DbDep, SettingsDep
from service.errors import (
    ERROR_SCHEMA,
    FORBIDDEN_SCHEMA,
    UNAUTHORIZED_SCHEMA,
    UNAVAILABLE_SCHEMA,
    Forbidden,
    Unauthorized,
)

router = APIRouter(
    prefix="/v1/session",
    tags=["session"],
    responses={422: ERROR_SCHEMA, 503: UNAVAILABLE_SCHEMA},
)

#: Routes the auth middleware lets through without credentials ("METHOD path" or path).
PUBLIC = frozenset(
    {"GET /v1/session", "POST /v1/session", "/v1/session/methods", "/v1/session/local"}
)


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1,
        max_length=256,
        description="An API token (`descent token` prints the local one). It is not kept: "
        "the session cookie stands in for it, and ends when it is revoked.",
    )


class SessionRead(BaseModel):
    user: UserRead | None = Field(description="Who is signed in; null: nobody.")
    csrf_token: str | None = Field(
        description="Send it as `X-CSRF-Token` with every cookie-authenticated request that "
        "changes state (POST, PUT, PATCH, DELETE). None when the request did not come with "
        "a session cookie (a bearer token needs no such proof)."
    )
    expires_at: str | None = Field(description="When the session ends at the latest (UTC).")


class SignInMethods(BaseModel):
    token: bool = Field(description="Signing in with an API token (always offered).")
    local: bool = Field(
        description="The one-click sign-in as the local admin: offered to pages opened at "
        "localhost on the machine running the embedded default."
    )


def _read(signed_in: sessions.SignedIn) -> SessionRead:
    return SessionRead(
        user=UserRead.model_validate(signed_in.user),
        csrf_token=signed_in.csrf_token,
        expires_at=signed_in.expires_at.isoformat().replace("+00:00", "Z"),
    )


def _set_cookie(response: Response, request: Request, secret: str, settings: Settings) -> None:
    response.set_cookie(
        sessions.COOKIE,
        secret,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        # Behind a TLS-terminating proxy, uvicorn's --proxy-headers makes the scheme https.
        secure=request.url.scheme == "https",
    )


def _lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.session_hours)


def _local_refusal(request: Request, settings: Settings) -> str | None:
    return sessions.local_signin_refusal(
        enabled=settings.local_signin_enabled and settings.auth == "token",
        client_host=request.client.host if request.client else None,
        headers=dict(request.headers),
    )


@router.get("/methods", response_model=SignInMethods)
async def methods(request: Request, settings: SettingsDep) -> SignInMethods:
    """How this page may sign in (public)."""
    return SignInMethods(token=True, local=_local_refusal(request, settings) is None)


@router.post(
    "",
    status_code=201,
    response_model=SessionRead,
    responses={401: UNAUTHORIZED_SCHEMA},
)
async def sign_in(
    body: SessionCreate, request: Request, response: Response, db: DbDep, settings: SettingsDep
) -> SessionRead:
    """Sign a browser in with an API token: answers a session cookie (HttpOnly,
    SameSite=Strict, Secure over HTTPS) and the CSRF token its writes must carry."""

    def work(session: Session) -> tuple[sessions.SignedIn, str]:
        token, user = holder_of_token(session=session, token=body.token)  # 401 unless valid
        return sessions.start(session=session, token=token, user=user, lifetime=_lifetime(settings))

    signed_in, secret = await db.run(work)
    _set_cookie(response, request, secret, settings)
    return _read(signed_in)


@router.post(
    "/local",
    status_code=201,
    response_model=SessionRead,
    responses={403: FORBIDDEN_SCHEMA},
)
async def sign_in_local(
    request: Request, response: Response, db: DbDep, settings: SettingsDep
) -> SessionRead:
    """Sign in as the local admin with one click: only the embedded default, only from a
    page opened at localhost on this machine (403 otherwise)."""
    if refusal := _local_refusal(request, settings):
        raise Forbidden(refusal)

    def work(session: Session) -> tuple[sessions.SignedIn, str]:
        return sessions.start_local(session=session, lifetime=_lifetime(settings))

    signed_in, secret = await db.run(work)
    _set_cookie(response, request, secret, settings)
    return _read(signed_in)


def _signed_in(request: Request) -> sessions.SignedIn | None:
    return getattr(request.state, SESSION_STATE, None)


@router.get("", response_model=SessionRead)
async def read_session(request: Request, db: DbDep, settings: SettingsDep) -> SessionRead:
    """Who is signed in (public): the user and the session's CSRF token; `user` null when
    the request has no valid session or token — a page asks this before it has signed
    in, so it is not an error."""
    authorization = request.headers.get("authorization")
    cookie = None if authorization else session_cookie(request.headers)

    def work(session: Session) -> SessionRead:
        if settings.auth == "none":
            return _without_session(local_admin(session=session))
        if cookie is not None:
            found = sessions.find(session=session, secret=cookie)
            return _read(found) if found is not None else _without_session(None)
        if authorization:
            try:
                return _without_session(
                    user_for_authorization(session=session, authorization=authorization)
                )
            except Unauthorized:
                pass
        return _without_session(None)

    return await db.run(work)


def _without_session(user: User | None) -> SessionRead:
    """No session: the user a token (or DESCENT_AUTH=none) names, if any."""
    read = UserRead.model_validate(user) if user is not None else None
    return SessionRead(user=read, csrf_token=None, expires_at=None)


@router.delete(
    "",
    status_code=204,
    response_class=Response,
    responses={401: UNAUTHORIZED_SCHEMA, 403: FORBIDDEN_SCHEMA},
)
async def sign_out(request: Request, user: CurrentUser, db: DbDep) -> Response:
    """Sign out: the session ends at once, and its cookie is cleared."""
    signed_in = _signed_in(request)
    if signed_in is not None:
        session_id = signed_in.id

        def work(session: Session) -> None:
            sessions.end(session=session, session_id=session_id)

        await db.run(work)
    response = Response(status_code=204)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return response


__all__ = ["PUBLIC", "SessionCreate", "SessionRead", "SignInMethods", "router"]
