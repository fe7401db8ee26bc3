"""Create, revoke and check bearer tokens. Plain functions taking a Session; the caller commits.

Tokens are 256 random bits from ``secrets``, stored as a SHA-256 hash. A slow password hash
(bcrypt, argon2) protects low-entropy secrets against guessing; a 256-bit random token cannot be
guessed whatever the hash, while a slow hash would add ~100 ms of CPU to every API request and
would prevent looking the token up by its hash (an index, no per-row comparison).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth.models import ApiToken, IssuedToken, Principal
from gateway.auth.roles import Role, token_role
from gateway.db import utcnow
from gateway.fields import check_name

TOKEN_PREFIX = "cw_"  # recognisable in logs and by secret scanners
_PREFIX_SHOWN = 10


class TokenNotFound(LookupError):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, name: str, role: Role | str) -> IssuedToken:
    """A new token for ``name`` with ``role``; the plaintext is in the result, and nowhere else."""
    name = check_name(name.strip(), what="a token's name")  # it is in every audit entry its holder makes
    if not name or len(name) > 128:
        raise ValueError("a token needs a name of 1 to 128 characters saying who holds it")
    role = token_role(role)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name, role=role.value, token_hash=hash_token(token), token_prefix=token[:_PREFIX_SHOWN]
    )
    session.add(row)
    session.flush()
    return IssuedToken(token_id=row.id, name=name, role=role, token=token)


def revoke_token(session: Session, *, token_id: int, at: datetime | None = None) -> ApiToken:
    """Revoke a token (idempotent: revoking twice keeps the first time). The row stays, for the audit."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise TokenNotFound(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = at or utcnow()
        session.flush()
    return row


def authenticate(session: Session, *, token: str) -> Principal | None:
    """The caller behind a presented token, or None when it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    # Looking up by hash leaks nothing useful through timing: the hash of a guess says nothing
    # about the hashes stored.
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        return None
    return Principal(token_id=row.id, name=row.name, role=Role(row.role))


def list_tokens(session: Session, *, include_revoked: bool = False) -> Sequence[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return session.scalars(query).all()
