"""Notifications: ``users.email`` and the ``notification_outbox`` table (issue 10, "Recover
fast").

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Users added before this revision have no e-mail address (``user update --email`` sets one).
Written out in full, not imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.Text(), nullable=True))
    op.create_table(
        "notification_outbox",
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("claimed_until", sa.Double(), nullable=True),
        sa.Column("claim_token", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.CheckConstraint("kind IN ('event', 'email', 'webhook')",
                           name="ck_notification_outbox_kind"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')",
                           name="ck_notification_outbox_status"),
        sa.PrimaryKeyConstraint("message_id", name="pk_notification_outbox"),
    )
    op.create_index("ix_notification_outbox_status", "notification_outbox",
                    ["status", "next_attempt_at"])
    op.create_index("ix_notification_outbox_finished_at", "notification_outbox",
                    ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_notification_outbox_finished_at", table_name="notification_outbox")
    op.drop_index("ix_notification_outbox_status", table_name="notification_outbox")
    op.drop_table("notification_outbox")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email")
