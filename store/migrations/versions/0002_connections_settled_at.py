"""A connection first seen ready has its drafts cleared once: `connections.settled_at`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connections", sa.Column("settled_at", sa.Double()))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("settled_at")
