"""Remembered consent (issue 11): the ``consents`` table, one row per person, client and granted
scope (the empty scope marks the client as approved).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

Written out in full, not imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("granted_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "client_id", "scope", name="pk_consents"),
    )


def downgrade() -> None:
    op.drop_table("consents")
