"""tracking: tracking events (opens, clicks) and bounces (hard, soft, complaints)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracking_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("link_index", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_tracking_events_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_tracking_events_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_tracking_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
        sa.UniqueConstraint("stream_id", name=op.f("uq_tracking_events_stream_id")),
    )
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tracking_events_campaign_kind", ["campaign_id", "kind"], unique=False
        )
        batch_op.create_index("ix_tracking_events_delivery", ["delivery_id"], unique=False)
        batch_op.create_index("ix_tracking_events_subscriber", ["subscriber_id"], unique=False)

    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("email_hmac", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("diagnostic", sa.String(length=500), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_bounces_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_bounces_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_bounces_fingerprint")),
    )
    with op.batch_alter_table("bounces", schema=None) as batch_op:
        batch_op.create_index("ix_bounces_campaign_kind", ["campaign_id", "kind"], unique=False)
        batch_op.create_index("ix_bounces_delivery", ["delivery_id"], unique=False)
        batch_op.create_index("ix_bounces_email_hmac", ["email_hmac"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bounces", schema=None) as batch_op:
        batch_op.drop_index("ix_bounces_email_hmac")
        batch_op.drop_index("ix_bounces_delivery")
        batch_op.drop_index("ix_bounces_campaign_kind")
    op.drop_table("bounces")

    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_events_subscriber")
        batch_op.drop_index("ix_tracking_events_delivery")
        batch_op.drop_index("ix_tracking_events_campaign_kind")
    op.drop_table("tracking_events")
