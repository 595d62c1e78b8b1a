"""The last state seen of each connection, shared by every tab, user and instance
(`connection_state`), and the times before which an action may not be sent to Waycore again
(`backoffs`, from a `Retry-After`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connection_state",
        sa.Column("connection_id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("fetched_at", sa.Double(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("check_after", sa.Double()),
        sa.Column("refreshing_until", sa.Double()),
        sa.Column("sync_available_at", sa.Double()),
    )
    op.create_table(
        "backoffs",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("until", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("backoffs")
    op.drop_table("connection_state")
