"""The audit trail kept in the store (`audit_entries`), the durable queue of events for the host
(`host_event_outbox`), and what each user last saw of each connection (`connection_seen`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("user_name", sa.Text()),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("request_id", sa.Text()),
        sa.Column("connection_id", sa.Text()),
        sa.Column("draft_id", sa.Text()),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text()),
    )
    op.create_index("audit_entries_tenant_at", "audit_entries", ["tenant_id", "at"])
    op.create_table(
        "host_event_outbox",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text()),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double()),
        sa.Column("claimed_by", sa.Text()),
        sa.Column("claimed_until", sa.Double()),
    )
    op.create_index("host_event_outbox_due", "host_event_outbox", ["state", "due_at"])
    op.create_table(
        "connection_seen",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("connection_id", sa.Text(), primary_key=True),
        sa.Column("last_seen_status", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connection_seen")
    op.drop_index("host_event_outbox_due", table_name="host_event_outbox")
    op.drop_table("host_event_outbox")
    op.drop_index("audit_entries_tenant_at", table_name="audit_entries")
    op.drop_table("audit_entries")
