"""segments: indexes the segment queries need on large lists

Conditions on a subscriber's dates and sign-up form become index range scans (PostgreSQL
combines them with bitmap AND/OR), and a form's deletion (SET NULL) no longer scans every
subscriber.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SUBSCRIBER_INDEXES = {
    "ix_subscribers_created_at": ["created_at"],
    "ix_subscribers_confirmed_at": ["confirmed_at"],
    "ix_subscribers_last_open_at": ["last_open_at"],
    "ix_subscribers_last_click_at": ["last_click_at"],
    "ix_subscribers_source_form_id": ["source_form_id"],
}


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        for name, columns in SUBSCRIBER_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        for name in reversed(SUBSCRIBER_INDEXES):
            batch_op.drop_index(name)
