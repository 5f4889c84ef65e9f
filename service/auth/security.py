"""API tokens: how they are made, stored and found.

A token is ``dsc_`` followed by 32 random bytes (url-safe base64). Only its SHA-256 digest
is stored: a token has 256 bits of entropy, so a fast hash is as good as a slow one and
lets every request find its token with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.models import ApiToken

TOKEN_PREFIX = "dsc_"
#: ``dsc_`` and 43 base64 characters; anything much longer is not one of ours.
MAX_TOKEN_LENGTH = 128
#: Characters kept (in clear) to tell tokens apart in lists: ``dsc_`` and 8 more.
SHOWN_PREFIX_LENGTH = 12


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Hex SHA-256 of the whole token, as stored in ``api_tokens.token_hash``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def shown_prefix(token: str) -> str:
    return token[:SHOWN_PREFIX_LENGTH]


def looks_like_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and len(token) <= MAX_TOKEN_LENGTH and token.isascii()


def find_token(session: Session, token: str) -> ApiToken | None:
    """The stored token whose hash matches ``token``, or None.

    The lookup is by digest, so the time it takes says nothing about the secret; the
    final comparison is constant-time all the same.
    """
    if not looks_like_token(token):
        return None
    digest = hash_token(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row
