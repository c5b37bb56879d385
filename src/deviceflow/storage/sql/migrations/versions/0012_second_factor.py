"""Second factors: ``totp_factors`` (authenticator apps, RFC 6238, the secret sealed under the
KEK) and ``recovery_codes`` (HMAC-SHA-256 of one-time codes); and how each sign-in, approval and
login was authenticated (RFC 8176 ``amr``, nullable: older rows read as "pwd").

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

Written out in full, not imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_AMR_TABLES = ("browser_sessions", "device_authorizations", "authorization_codes",
               "refresh_tokens")


def upgrade() -> None:
    for table in _AMR_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("amr", sa.Text(), nullable=True))
    op.create_table(
        "totp_factors",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_totp_factors"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_recovery_codes"),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_recovery_codes_user_id", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("totp_factors")
    for table in reversed(_AMR_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("amr")
