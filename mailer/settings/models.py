"""Rows of the settings store: current values, their append-only history, and DKIM keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, UTCDateTime, utcnow


class SettingValue(Base):
    """One setting the admin changed; no row means the environment's value applies.

    `value` is the validated JSON form (see `mailer.settings.schema`); a secret's value is
    sealed (`mailer.settings.sealing`), never stored in clear."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SettingChange(Base):
    """Who changed which setting when, from what to what. Append-only (triggers, migration
    0007). Secrets appear masked. `None` stands for "the environment's default". No foreign
    key: the record must outlive what it names."""

    __tablename__ = "setting_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    old_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The staff member's address at the time (staff, not subscribers: no pseudonym needed).
    user_email: Mapped[str] = mapped_column(String(320), default="")


class StoredDkimKey(Base):
    """A DKIM key generated here. The newest one signs (unless the environment configures a
    key); older ones stay listed so their DNS records can be kept while mail signed with them
    is still in flight, then deleted. The private key is sealed at rest."""

    __tablename__ = "dkim_keys"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(253))
    selector: Mapped[str] = mapped_column(String(63))
    # Base64 of the DER SubjectPublicKeyInfo: what goes after `p=` in the DNS record.
    public_key: Mapped[str] = mapped_column(Text)
    private_key_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
