"""The API token table and its API shapes. Only a hash of each token is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.auth.roles import Role
from gateway.db import Base, UtcDateTime, utcnow
from gateway.events.lifecycle.models import Actor


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(
        String(128), doc="Who or what holds it, e.g. 'city-dispatch' or 'li.na'."
    )
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, doc="SHA-256 of the token, hex.")
    token_prefix: Mapped[str] = mapped_column(
        String(16), doc="The token's first characters, to recognise it."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, name and role."""

    token_id: int
    name: str
    role: Role

    def actor(self) -> Actor:
        """As the lifecycle's audit records name whoever acts."""
        return Actor(name=self.name, role=self.role)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token. ``token`` is shown once and never stored."""

    token_id: int
    name: str
    role: Role
    token: str


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    token_prefix: str = Field(description="First characters of the token, to tell tokens apart.")
    created_at: datetime
    revoked_at: datetime | None
