"""sign-up intake: consent events keyed by the Redis stream entry they were written from

Revision ID: 0010
Revises: 0009

Sign-ups are accepted into a Redis stream and written by the workers in batches
(mailer.subscribers.intake, mailer.subscribers.drain). `intake_id` is unique so that an entry
written by a drain that died before acknowledging it is never written twice.

The column is added in place (no batch copy of the table: that would drop the append-only
triggers with it). On SQLite the update trigger lists the frozen columns one by one, so it is
recreated with the new column frozen too; PostgreSQL's trigger compares whole rows already.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "consent_events is append-only"
# As in 0001: every column but the erasable ones (email, ip, user_agent).
FROZEN = (
    "id",
    "seq",
    "occurred_at",
    "type",
    "subscriber_id",
    "subject_hmac",
    "topics",
    "lawful_basis",
    "form_id",
    "form_version_id",
    "consent_text_sha256",
    "locale",
    "source",
    "ip_hmac",
    "user_agent_hmac",
    "evidence",
    "actor",
    "prev_hash",
    "row_hash",
)


def upgrade() -> None:
    op.add_column("consent_events", sa.Column("intake_id", sa.String(length=64), nullable=True))
    op.create_index(
        op.f("ix_consent_events_intake_id"), "consent_events", ["intake_id"], unique=True
    )
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_update_trigger((*FROZEN, "intake_id"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_update_trigger(FROZEN)
    op.drop_index(op.f("ix_consent_events_intake_id"), table_name="consent_events")
    op.drop_column("consent_events", "intake_id")


def _sqlite_update_trigger(frozen: tuple[str, ...]) -> None:
    """The erasure path may blank email, ip and user_agent; nothing else may change."""
    op.execute("DROP TRIGGER IF EXISTS consent_events_no_update")
    unchanged = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in frozen)
    erasure = f"{unchanged} AND NEW.email IS NULL AND NEW.ip IS NULL AND NEW.user_agent IS NULL"
    op.execute(
        "CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events "
        f"WHEN NOT ({erasure}) "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    )
