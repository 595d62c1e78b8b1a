"""The store's tables as SQLAlchemy Core metadata: what `Store` queries are written against.

The schema itself is created and changed only by the Alembic migrations under
`store/migrations/versions/`; a test compares this metadata with the migrated database on both
engines, so the two cannot drift apart. Timestamps are epoch seconds (floats) on both engines.

Nothing secret is ever stored here: no bank password, no Waycore API key. Drafts hold only the
non-secret progress of the wizard.
"""

from __future__ import annotations

from sqlalchemy import Column, Double, Index, Integer, MetaData, Table, Text

metadata = MetaData()

#: Server-side sessions behind the signed cookie (sign-out deletes the row), saying who they
#: are for (the demo sign-in and the host's sign-in handoff both start one).
sessions = Table(
    "sessions",
    metadata,
    Column("sid", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("user_name", Text),
    Column("user_email", Text),
    Column("role", Text),
    Column("tenant_name", Text),
    Index("sessions_expiry", "expires_at"),
)

#: Handoff tokens are single use: their ids are kept until the token would have expired.
handoff_tokens = Table(
    "handoff_tokens",
    metadata,
    Column("jti", Text, primary_key=True),
    Column("expires_at", Double, nullable=False),
)

#: hostCustomerId -> waycoreEntityId (externalEntityId at Waycore = tenant_id).
entity_map = Table(
    "entity_map",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("entity_id", Text, nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
)

#: Local wizard progress, scoped by tenant; non-secret fields only.
drafts = Table(
    "drafts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("institution_id", Text),
    Column("institution_name", Text),
    Column("portal_url", Text),
    Column("requested_institution_name", Text),
    Column("connection_id", Text),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("drafts_tenant", "tenant_id", "updated_at"),
    Index("drafts_connection", "connection_id"),
)

#: Which tenant owns which Waycore connection: proof of ownership before any Waycore call, plus
#: host-only context (the bank name typed for an unlisted bank), the sync cooldown, and when the
#: connection was first seen ready (its drafts cleared once).
connections = Table(
    "connections",
    metadata,
    Column("connection_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("institution_name", Text),
    Column("requested_institution_name", Text),
    Column("sync_allowed_at", Double),
    Column("created_at", Double, nullable=False),
    Column("settled_at", Double),
    Index("connections_tenant", "tenant_id"),
)

#: Webhook deliveries already processed (Waycore may deliver an event more than once).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("received_at", Double, nullable=False),
)


#: The last state seen of each connection (`resource`: Waycore's JSON of it), shared by every
#: tab, user and instance: `version` moves when what a page shows changes, `data_version` when
#: new account data may be available; `source` says where it came from (poll, webhook, action);
#: no upstream check before `check_after` (a `Retry-After`); `refreshing_until` is the claim of
#: the one instance checking it now.
connection_state = Table(
    "connection_state",
    metadata,
    Column("connection_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("data_version", Integer, nullable=False),
    Column("fetched_at", Double, nullable=False),
    Column("source", Text, nullable=False),
    Column("check_after", Double),
    Column("refreshing_until", Double),
    Column("sync_available_at", Double),
)

#: Actions Waycore asked to wait for (`Retry-After`): none is sent again before `until`.
backoffs = Table(
    "backoffs",
    metadata,
    Column("key", Text, primary_key=True),
    Column("until", Double, nullable=False),
)


#: The audit trail: who created, completed, synced, deleted or discarded what, and when (epoch
#: seconds), with the request id; `fields` names the credential fields sent (comma-separated,
#: never their values). Read newest first, per tenant.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("action", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("user_name", Text),
    Column("at", Double, nullable=False),
    Column("request_id", Text),
    Column("connection_id", Text),
    Column("draft_id", Text),
    Column("fields", Text, nullable=False),
    Column("outcome", Text),
    Index("audit_entries_tenant_at", "tenant_id", "at"),
)

#: Events for the host, until it has them: `body` is the exact JSON signed and sent on every
#: attempt; `state` is pending, delivered or dead (after the last attempt); a pending row is
#: sent once `due_at` has passed by the one instance that claimed it (`claimed_by`, until
#: `claimed_until`: an instance that stops mid-delivery leaves it to another after that).
host_event_outbox = Table(
    "host_event_outbox",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("tenant_id", Text),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("due_at", Double, nullable=False),
    Column("state", Text, nullable=False),
    Column("last_error", Text),
    Column("created_at", Double, nullable=False),
    Column("delivered_at", Double),
    Column("claimed_by", Text),
    Column("claimed_until", Double),
    Index("host_event_outbox_due", "state", "due_at"),
)

#: The status each user last saw each connection in (on the list or its own screens), for the
#: list's "Connected while you were away" and "Needs attention" marks.
connection_seen = Table(
    "connection_seen",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("connection_id", Text, primary_key=True),
    Column("last_seen_status", Text, nullable=False),
    Column("seen_at", Double, nullable=False),
)
