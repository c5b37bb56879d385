"""The access-token denylist (revocation, RFC 7009 §2), and an index on the refresh tokens'
user, so that all of a person's logins can be revoked at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A denylist row names one access token (``kind`` 'jti') or every access token of one login
(``kind`` 'family', the access token's ``fam`` claim) and is kept until ``expires_at``, when
every token it can match has expired anyway. Written out in full, not imported from
``tables.py``. Constraint names follow ``tables.NAMING_CONVENTION``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_denylist",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.CheckConstraint("kind IN ('jti', 'family')", name=op.f("ck_token_denylist_kind")),
        sa.PrimaryKeyConstraint("kind", "value", name=op.f("pk_token_denylist")),
    )
    op.create_index(op.f("ix_token_denylist_created_at"), "token_denylist", ["created_at"])
    op.create_index(op.f("ix_token_denylist_expires_at"), "token_denylist", ["expires_at"])
    op.create_index(op.f("ix_refresh_tokens_user_id"), "refresh_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_tokens_user_id"), table_name="refresh_tokens")
    op.drop_index(op.f("ix_token_denylist_expires_at"), table_name="token_denylist")
    op.drop_index(op.f("ix_token_denylist_created_at"), table_name="token_denylist")
    op.drop_table("token_denylist")
