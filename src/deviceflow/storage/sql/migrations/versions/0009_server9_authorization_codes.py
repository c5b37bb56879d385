"""Authorization code grant: clients' redirect URIs and an ``authorization_codes`` table.

Revision ID: 0009_server9
Revises: 0008
Create Date: 2026-12-02

Existing clients get no redirect URI (``''``): they keep the device grant as before, and need
``deviceflow client update --redirect-uri`` before ``/authorize`` accepts them. Written out in
full, not imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_server9"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("redirect_uris", sa.Text(), nullable=False,
                                   server_default=""))
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("redirect_uri_given", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.Text(), nullable=True),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("auth_time", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("ip_address", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('issued', 'redeemed')",
                           name="ck_authorization_codes_status"),
        sa.PrimaryKeyConstraint("code_hash", name="pk_authorization_codes"),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_authorization_codes_expires_at", table_name="authorization_codes")
    op.drop_table("authorization_codes")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("redirect_uris")
