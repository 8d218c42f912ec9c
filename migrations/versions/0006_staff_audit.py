"""staff audit log: every view and export of personal data by staff, append-only

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MESSAGE = "staff_audit_log is append-only"


def upgrade() -> None:
    op.create_table(
        "staff_audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("api_key_name", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("subject_hmac", sa.String(length=64), nullable=True),
        sa.Column("subject_masked", sa.String(length=320), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_audit_log")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("staff_audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_audit_log_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_staff_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(
            "ix_staff_audit_log_subject", ["subject_hmac", "occurred_at"], unique=False
        )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER staff_audit_log_no_{action.lower()} BEFORE {action} "
                f"ON staff_audit_log BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION staff_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER staff_audit_log_no_update_delete BEFORE UPDATE OR DELETE "
        "ON staff_audit_log FOR EACH ROW EXECUTE FUNCTION staff_audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER staff_audit_log_no_truncate BEFORE TRUNCATE "
        "ON staff_audit_log FOR EACH STATEMENT EXECUTE FUNCTION staff_audit_log_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS staff_audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS staff_audit_log_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS staff_audit_log_no_truncate ON staff_audit_log")
        op.execute("DROP TRIGGER IF EXISTS staff_audit_log_no_update_delete ON staff_audit_log")
        op.execute("DROP FUNCTION IF EXISTS staff_audit_log_append_only()")
    with op.batch_alter_table("staff_audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_audit_log_subject")
        batch_op.drop_index(batch_op.f("ix_staff_audit_log_action"))
        batch_op.drop_index(batch_op.f("ix_staff_audit_log_occurred_at"))
    op.drop_table("staff_audit_log")
