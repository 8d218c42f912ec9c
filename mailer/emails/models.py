"""Compiled MJML, keyed by the SHA-256 of its source: compile once per template version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, UTCDateTime, utcnow


class CompiledTemplate(Base):
    __tablename__ = "compiled_templates"

    source_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    html: Mapped[str] = mapped_column(Text)
    mjml_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
