"""settings store and sender identities (admin settings)

The admin's settings over the environment's (`settings`), who changed what when
(`setting_changes`, append-only), generated DKIM keys (`dkim_keys`, private keys sealed), and a
session version on users (raised to sign a user out of every session).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MESSAGE = "setting_changes is append-only"


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "setting_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("old_value", sa.JSON(), nullable=True),
        sa.Column("new_value", sa.JSON(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("user_email", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setting_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("setting_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_setting_changes_changed_at"), ["changed_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_setting_changes_key"), ["key"], unique=False)
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), server_default="1", nullable=False)
        )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER setting_changes_no_{action.lower()} BEFORE {action} "
                f"ON setting_changes BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION setting_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER setting_changes_no_update_delete BEFORE UPDATE OR DELETE "
        "ON setting_changes FOR EACH ROW EXECUTE FUNCTION setting_changes_append_only()"
    )
    op.execute(
        "CREATE TRIGGER setting_changes_no_truncate BEFORE TRUNCATE "
        "ON setting_changes FOR EACH STATEMENT EXECUTE FUNCTION setting_changes_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS setting_changes_no_update")
        op.execute("DROP TRIGGER IF EXISTS setting_changes_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS setting_changes_no_truncate ON setting_changes")
        op.execute("DROP TRIGGER IF EXISTS setting_changes_no_update_delete ON setting_changes")
        op.execute("DROP FUNCTION IF EXISTS setting_changes_append_only()")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
    op.drop_table("dkim_keys")
    with op.batch_alter_table("setting_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_setting_changes_key"))
        batch_op.drop_index(batch_op.f("ix_setting_changes_changed_at"))
    op.drop_table("setting_changes")
    op.drop_table("settings")
