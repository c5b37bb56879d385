"""Server secrets record their encryption: 'aes-256-gcm' under the key-encryption key, or 'none'.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Rows written by 0.1 are plaintext and become 'none' here; the server seals them on its next start
(``server.keys.load_keyring``, a compare-and-set on ``encryption = 'none'``). The default only
fills the old rows: it is dropped afterwards, so every new row has to say how it is protected.
Frozen: written out in full rather than imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("server_secrets") as batch:
        batch.add_column(
            sa.Column("encryption", sa.Text(), nullable=False, server_default="none")
        )
    with op.batch_alter_table("server_secrets") as batch:
        batch.alter_column("encryption", existing_type=sa.Text(), server_default=None)
        batch.create_check_constraint(
            op.f("ck_server_secrets_encryption"), "encryption IN ('none', 'aes-256-gcm')"
        )


def downgrade() -> None:
    # Sealed values would be unreadable to 0.1: refuse rather than hand it ciphertext as keys.
    conn = op.get_bind()
    sealed = conn.execute(
        sa.text("SELECT count(*) FROM server_secrets WHERE encryption <> 'none'")
    ).scalar_one()
    if sealed:
        raise RuntimeError(
            "server_secrets holds encrypted secrets that 0.1 cannot read; downgrading would "
            "make the server generate new keys"
        )
    with op.batch_alter_table("server_secrets") as batch:
        batch.drop_constraint(op.f("ck_server_secrets_encryption"), type_="check")
        batch.drop_column("encryption")
