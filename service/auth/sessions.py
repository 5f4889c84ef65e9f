"""Browser sessions: how a page signs in without holding an API token.

A browser cannot put ``Authorization`` on an ``EventSource`` or an ``<img>``, and a token
kept in page script is one XSS away from theft. So a page hands a token over once
(``POST /v1/session``) and gets an HttpOnly cookie back; the token itself is not kept.

- The cookie carries 256 random bits; only their SHA-256 digest is stored (as a token's).
- A session belongs to the token it was made from: it is valid while that token is
  (not revoked, not expired, its user enabled) and until its own end — sign-out, or
  ``DESCENT_SESSION_HOURS`` after sign-in, whichever comes first.
- CSRF: the cookie is ``SameSite=Strict``, and every cookie-authenticated request that
  changes state (any method but GET, HEAD, OPTIONS) must also carry the session's
  ``X-CSRF-Token``, which the page learns from the sign-in answer (or ``GET /v1/session``)
  and a page of another origin cannot read. Bearer-token requests need no such proof: a
  browser never adds a bearer token by itself.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.models import ApiToken, BrowserSession, User
from service.auth.security import hash_token
from service.auth.service import create_token, local_admin, valid_token_user
from service.db import utcnow
from service.errors import Forbidden

COOKIE = "descent_session"
CSRF_HEADER = "X-CSRF-Token"
#: Methods that only read: no CSRF proof asked of them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: A cookie secret is 43 url-safe base64 characters; anything much longer is not ours.
MAX_SECRET_LENGTH = 128
#: The name of the token a one-click local sign-in mints (it ends with the session).
LOCAL_TOKEN_NAME = "dashboard (local sign-in)"


@dataclass(frozen=True)
class SignedIn:
    """A valid session, as a request found it (detached from any database session)."""

    id: str
    user: User
    csrf_token: str
    expires_at: datetime

    def check_csrf(self, method: str, sent: str | None) -> None:
        """Refuse (403 ``csrf``) a request that changes state without the session's proof."""
        if method.upper() in SAFE_METHODS:
            return
        if not sent or not hmac.compare_digest(sent.encode(), self.csrf_token.encode()):
            raise Forbidden(
                f"a request signed in by the session cookie that changes state must send "
                f"the session's CSRF token in the {CSRF_HEADER} header (GET /v1/session "
                "returns it)",
                code="csrf",
            )


def start(
    *, session: Session, token: ApiToken, user: User, lifetime: timedelta
) -> tuple[SignedIn, str]:
    """A new session for ``user`` bound to ``token``: what it is, and the cookie's secret
    (never stored, never shown again)."""
    now = utcnow()
    expires = now + lifetime
    if token.expires_at is not None:
        expires = min(expires, token.expires_at)
    secret = secrets.token_urlsafe(32)
    row = BrowserSession(
        id=str(uuid.uuid4()),
        token_id=token.id,
        user_id=user.id,
        secret_hash=hash_token(secret),
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=expires,
    )
    session.add(row)
    session.commit()
    return SignedIn(row.id, user, row.csrf_token, row.expires_at), secret


def start_local(*, session: Session, lifetime: timedelta) -> tuple[SignedIn, str]:
    """A session for the local admin, bound to a token of its own that expires with it
    (listed by ``GET /v1/tokens``; revoking it signs the browser out)."""
    user = local_admin(session=session)
    if user.disabled:
        raise Forbidden(f"the local admin {user.name!r} is disabled")
    token, _ = create_token(
        session=session,
        user_id=user.id,
        name=LOCAL_TOKEN_NAME,
        expires_at=utcnow() + lifetime,
    )
    return start(session=session, token=token, user=user, lifetime=lifetime)


def find(*, session: Session, secret: str) -> SignedIn | None:
    """The valid session a cookie's secret opens, or None: unknown, ended, expired, or
    its token revoked or expired, or its user disabled."""
    if not secret or len(secret) > MAX_SECRET_LENGTH or not secret.isascii():
        return None
    digest = hash_token(secret)
    row = session.scalar(select(BrowserSession).where(BrowserSession.secret_hash == digest))
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    if row.ended_at is not None or row.expires_at <= utcnow():
        return None
    user = valid_token_user(session=session, row=session.get(ApiToken, row.token_id))
    if user is None or user.id != row.user_id:
        return None
    return SignedIn(row.id, user, row.csrf_token, row.expires_at)


def end(*, session: Session, session_id: str) -> None:
    """Sign a session out (once; again changes nothing)."""
    row = session.get(BrowserSession, session_id)
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.commit()


# -- the one-click local sign-in --------------------------------------------------------

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: Headers a reverse proxy adds: a request that came through one is not from this host,
#: whatever its socket's peer address says.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str | None) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8000`` → ``[::1]``)."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def local_signin_refusal(
    *, enabled: bool, client_host: str | None, headers: dict[str, str]
) -> str | None:
    """Why a one-click local sign-in is refused here, or None when it is allowed.

    Allowed only where whoever can reach the page could read the local admin's token file
    anyway: the embedded default (``enabled``), a request from this host's loopback
    address, naming a loopback host (a page on another site whose name was rebound to
    127.0.0.1 sends its own name), not relayed by a proxy, and — since it needs no
    secret — not sent by a page of another origin (``Sec-Fetch-Site``).
    """
    if not enabled:
        return "the one-click local sign-in is off (DESCENT_LOCAL_SIGNIN)"
    if not is_loopback(client_host):
        return "the one-click local sign-in is offered on this machine's loopback address only"
    if any(h in headers for h in PROXY_HEADERS):
        return "the one-click local sign-in is not offered through a proxy"
    if host_name(headers.get("host")) not in LOOPBACK_NAMES:
        return "the one-click local sign-in needs the page opened at localhost or 127.0.0.1"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "the one-click local sign-in must come from the dashboard's own page"
    return None
