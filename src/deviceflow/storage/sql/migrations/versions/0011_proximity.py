"""Proximity (RFC 10027 §6.1): the device's network facts and the distinct-accounts counter on
``device_authorizations``, the ``code_accounts`` table behind that counter, and the per-client
device-flow rules on ``clients``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Every new column is nullable or has a default: rows from before this revision read as "not
looked up" and "no rule". Written out in full, not imported from ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLIENT_COLUMNS = (
    ("proximity_policy", sa.Text()),
    ("device_networks", sa.Text()),
    ("device_countries", sa.Text()),
    ("device_scopes", sa.Text()),
    ("device_access_token_lifetime", sa.Integer()),
    ("device_refresh_token_lifetime", sa.Integer()),
)
_DEVICE_COLUMNS = (
    ("net_country", sa.Text()),
    ("net_country_name", sa.Text()),
    ("net_asn", sa.BigInteger()),
    ("net_as_org", sa.Text()),
    ("net_hosting", sa.Text()),
    ("net_local", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        for name, type_ in _CLIENT_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table("device_authorizations") as batch:
        for name, type_ in _DEVICE_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.add_column(sa.Column("accounts_tried", sa.Integer(), nullable=False,
                                   server_default="0"))
    op.create_table(
        "code_accounts",
        sa.Column("device_code_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("device_code_hash", "user_id", name="pk_code_accounts"),
    )
    op.create_index("ix_code_accounts_expires_at", "code_accounts", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_code_accounts_expires_at", table_name="code_accounts")
    op.drop_table("code_accounts")
    with op.batch_alter_table("device_authorizations") as batch:
        batch.drop_column("accounts_tried")
        for name, _ in reversed(_DEVICE_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("clients") as batch:
        for name, _ in reversed(_CLIENT_COLUMNS):
            batch.drop_column(name)
