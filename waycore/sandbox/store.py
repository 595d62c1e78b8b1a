"""The sandbox's state: in-memory dictionaries, written through to SQLite when a file is set.

All reads and writes happen on the event loop between awaits, so no locking is needed. Changed
and deleted records are remembered and written in one transaction by `flush()`, which the app
calls after every request and every worker tick. With ":memory:" nothing touches the disk.

Layout: one `records(kind, id, body)` table holding each record as JSON, and a `meta` table for
the clock offset and the sequence counter. The file's directory is created if missing. One
sandbox at a time may use a file: state is read once at start and written through afterwards.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from .records import (
    AccountRec,
    BalanceRec,
    ConnectionRec,
    DeliveryRec,
    EntityRec,
    KeyRec,
    Record,
    TransactionRec,
    WebhookRec,
)

R = TypeVar("R", bound=Record)

_KINDS: tuple[type[Record], ...] = (
    EntityRec,
    ConnectionRec,
    AccountRec,
    BalanceRec,
    TransactionRec,
    WebhookRec,
    KeyRec,
    DeliveryRec,
)


class Store:
    """Every resource of the sandbox, keyed by record kind and id."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.entities: dict[str, EntityRec] = {}
        self.connections: dict[str, ConnectionRec] = {}
        self.accounts: dict[str, AccountRec] = {}
        self.balances: dict[str, BalanceRec] = {}
        self.transactions: dict[str, TransactionRec] = {}
        self.webhooks: dict[str, WebhookRec] = {}
        self.keys: dict[str, KeyRec] = {}
        self.deliveries: dict[str, DeliveryRec] = {}
        self.clock_offset = 0.0
        self.seq = 0
        self._db: sqlite3.Connection | None = None
        self._dirty: dict[tuple[str, str], Record | None] = {}
        self._meta_dirty = False
        self.loaded = False

    # -- the tables by kind ------------------------------------------------------------------

    def table(self, kind: type[R]) -> dict[str, R]:
        tables: dict[str, Any] = {
            EntityRec.KIND: self.entities,
            ConnectionRec.KIND: self.connections,
            AccountRec.KIND: self.accounts,
            BalanceRec.KIND: self.balances,
            TransactionRec.KIND: self.transactions,
            WebhookRec.KIND: self.webhooks,
            KeyRec.KIND: self.keys,
            DeliveryRec.KIND: self.deliveries,
        }
        table: dict[str, R] = tables[kind.KIND]
        return table

    def next_seq(self) -> int:
        self.seq += 1
        self._meta_dirty = True
        return self.seq

    def set_clock_offset(self, offset: float) -> None:
        self.clock_offset = offset
        self._meta_dirty = True

    def put(self, record: Record) -> None:
        """Insert or replace a record (and mark it for the next flush)."""
        self.table(type(record))[record.key()] = record
        self._dirty[(record.KIND, record.key())] = record

    def touch(self, record: Record) -> None:
        """Mark a record changed in place."""
        self._dirty[(record.KIND, record.key())] = record

    def delete(self, record: Record) -> None:
        self.table(type(record)).pop(record.key(), None)
        self._dirty[(record.KIND, record.key())] = None

    def delete_many(self, records: Iterable[Record]) -> None:
        for record in list(records):
            self.delete(record)

    # -- persistence -------------------------------------------------------------------------

    def open(self) -> None:
        """Open the SQLite file (if any) and load every record. Idempotent."""
        if self.loaded:
            return
        self.loaded = True
        if self.database == ":memory:":
            return
        Path(self.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.database, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS records ("
            " kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id))"
        )
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db = db
        by_kind = {k.KIND: k for k in _KINDS}
        for kind, body in db.execute("SELECT kind, body FROM records"):
            cls = by_kind.get(kind)
            if cls is not None:
                record = cls.from_json(json.loads(body))
                self.table(cls)[record.key()] = record
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.clock_offset = float(meta.get("clock_offset", "0"))
        self.seq = int(meta.get("seq", "0"))

    @property
    def persistent(self) -> bool:
        return self._db is not None

    def flush(self) -> None:
        """Write every changed record in one transaction."""
        db = self._db
        if db is None:
            self._dirty.clear()
            self._meta_dirty = False
            return
        if not self._dirty and not self._meta_dirty:
            return
        dirty, self._dirty = self._dirty, {}
        db.execute("BEGIN")
        try:
            for (kind, key), record in dirty.items():
                if record is None:
                    db.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, key))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO records (kind, id, body) VALUES (?, ?, ?)",
                        (kind, key, json.dumps(record.to_json(), separators=(",", ":"))),
                    )
            if self._meta_dirty:
                db.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("clock_offset", repr(self.clock_offset)), ("seq", str(self.seq))],
                )
                self._meta_dirty = False
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._dirty = {**dirty, **self._dirty}
            raise

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None
        self.loaded = False
