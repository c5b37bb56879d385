"""Refresh tokens: the family's absolute end, the grant that began the login, and the successor a
rotated token was replaced by (for the reuse grace window).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Existing tokens get ``grant_type`` = the device grant (the only grant that begins a login) and a
family end 90 days (the default ``refresh_token_absolute_lifetime``) after the sign-in they
descend from (``auth_time``). Written out in full, not imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_ABSOLUTE_LIFETIME = 90 * 86400


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("family_expires_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("grant_type", sa.Text(), nullable=True))
        batch.add_column(sa.Column("successor_hash", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rotated_at", sa.Double(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE refresh_tokens SET family_expires_at = auth_time + :lifetime,"
            " grant_type = :grant"
        ).bindparams(lifetime=float(_ABSOLUTE_LIFETIME), grant=_DEVICE_CODE_GRANT)
    )
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.alter_column("family_expires_at", existing_type=sa.Double(), nullable=False)
        batch.alter_column("grant_type", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("rotated_at")
        batch.drop_column("successor_hash")
        batch.drop_column("grant_type")
        batch.drop_column("family_expires_at")
