"""The initial schema: sessions, entity map, drafts, owned connections, webhook events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 (the schema of store/db.py, before Alembic)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("sid", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )
    op.create_index("sessions_expiry", "sessions", ["expires_at"])

    op.create_table(
        "entity_map",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("entity_id", sa.Text(), nullable=False, unique=True),
        sa.Column("created_at", sa.Double(), nullable=False),
    )

    op.create_table(
        "drafts",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("institution_id", sa.Text()),
        sa.Column("institution_name", sa.Text()),
        sa.Column("portal_url", sa.Text()),
        sa.Column("requested_institution_name", sa.Text()),
        sa.Column("connection_id", sa.Text()),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("drafts_tenant", "drafts", ["tenant_id", "updated_at"])
    op.create_index("drafts_connection", "drafts", ["connection_id"])

    op.create_table(
        "connections",
        sa.Column("connection_id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("institution_name", sa.Text()),
        sa.Column("requested_institution_name", sa.Text()),
        sa.Column("sync_allowed_at", sa.Double()),
        sa.Column("created_at", sa.Double(), nullable=False),
    )
    op.create_index("connections_tenant", "connections", ["tenant_id"])

    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    for table in ("webhook_events", "connections", "drafts", "entity_map", "sessions"):
        op.drop_table(table)
