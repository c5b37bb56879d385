"""Signed-in devices: a ``grants`` table (where and when each refresh-token family began); the
index on ``refresh_tokens.user_id`` these need came with 0005.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Families begun before this revision have no ``grants`` row; they are still listed (from their
refresh tokens) with an unknown origin. Written out in full, not imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("family_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("approved_at", sa.Double(), nullable=False),
        sa.Column("ip_address", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("family_id", name="pk_grants"),
    )
    op.create_index("ix_grants_expires_at", "grants", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_grants_expires_at", table_name="grants")
    op.drop_table("grants")
