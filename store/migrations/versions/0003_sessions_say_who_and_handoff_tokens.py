"""Sessions say who they are for (`user_name`, `user_email`, `role`, `tenant_name`), and the ids
of single-use handoff tokens are kept until they expire (`handoff_tokens`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("user_name", "user_email", "role", "tenant_name"):
        op.add_column("sessions", sa.Column(name, sa.Text()))
    op.create_table(
        "handoff_tokens",
        sa.Column("jti", sa.Text(), primary_key=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("handoff_tokens")
    with op.batch_alter_table("sessions") as batch:
        for name in ("tenant_name", "role", "user_email", "user_name"):
            batch.drop_column(name)
