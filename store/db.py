"""The app's SQLite file: opening it with safe pragmas, and its schema.

One aiosqlite connection per app, opened in the lifespan. WAL mode, a busy timeout and
`synchronous=FULL`: a write is acknowledged to the user only after its commit returns. The schema
is versioned with `PRAGMA user_version`; each entry of `MIGRATIONS` moves it one step.

Nothing secret is ever stored here: no bank password, no Waycore API key. Drafts hold only the
non-secret progress of the wizard.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        sid TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_at);

    -- hostCustomerId -> waycoreEntityId (externalEntityId at Waycore = tenant_id)
    CREATE TABLE entity_map (
        tenant_id TEXT PRIMARY KEY,
        entity_id TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );

    -- Local wizard progress, scoped by tenant; non-secret fields only.
    CREATE TABLE drafts (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        created_by TEXT NOT NULL,
        institution_id TEXT,
        institution_name TEXT,
        portal_url TEXT,
        requested_institution_name TEXT,
        connection_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX drafts_tenant ON drafts (tenant_id, updated_at);
    CREATE INDEX drafts_connection ON drafts (connection_id);

    -- Which tenant owns which Waycore connection: proof of ownership before any Waycore call,
    -- plus host-only context (the bank name typed for an unlisted bank) and the sync cooldown.
    CREATE TABLE connections (
        connection_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        institution_name TEXT,
        requested_institution_name TEXT,
        sync_allowed_at REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX connections_tenant ON connections (tenant_id);

    -- Webhook deliveries already processed (Waycore may deliver an event more than once).
    CREATE TABLE webhook_events (
        event_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    """,
    # A connection first seen ready and active has its drafts cleared once ("settled").
    """
    ALTER TABLE connections ADD COLUMN settled_at REAL;
    """,
    # A session says who it is for (demo sign-in and the host's sign-in handoff both start one),
    # and handoff tokens are single use: their ids are kept until they expire.
    """
    ALTER TABLE sessions ADD COLUMN user_name TEXT;
    ALTER TABLE sessions ADD COLUMN user_email TEXT;
    ALTER TABLE sessions ADD COLUMN role TEXT;
    ALTER TABLE sessions ADD COLUMN tenant_name TEXT;
    CREATE TABLE handoff_tokens (
        jti TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    """,
)


async def connect(path: str) -> aiosqlite.Connection:
    """Open (creating if needed) and migrate the database at `path` (or ":memory:")."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = aiosqlite.Row
    await db.execute("PRAGMA busy_timeout = 5000")
    if path != ":memory:":
        await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = FULL")
    await db.execute("PRAGMA foreign_keys = ON")
    await _migrate(db)
    return db


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
