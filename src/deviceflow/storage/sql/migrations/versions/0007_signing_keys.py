"""Signing keys: several per algorithm, with their lifecycle, for key rotation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Each row names a key (``kid``), its algorithm, the ``server_secrets`` row that holds its private
JWK (sealed under the key-encryption key, as before) and its times: published from
``created_at``, signing from ``active_from`` until ``signs_until``, refused from
``retire_after``. The partial unique index allows one newest key (``signs_until IS NULL``) per
algorithm. No data moves here: the key a database already has (``signing_key:RS256``) is adopted
as its algorithm's first key on the next start (``server.keys.load_keyring``), since opening it
needs the key-encryption key, which migrations never see. Written out in full, not imported from
``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("alg", sa.Text(), nullable=False),
        sa.Column("secret_name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("active_from", sa.Double(), nullable=False),
        sa.Column("signs_until", sa.Double(), nullable=True),
        sa.Column("retire_after", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_index(
        "uq_signing_keys_newest_alg", "signing_keys", ["alg"], unique=True,
        sqlite_where=sa.text("signs_until IS NULL"),
        postgresql_where=sa.text("signs_until IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_signing_keys_newest_alg", table_name="signing_keys")
    op.drop_table("signing_keys")
