"""Coordination between app instances sharing one database: named locks and notifications.

Two implementations behind one interface (`Coordinator`), picked by the store's engine:

- **Postgres** (several app processes): `lock(name)` is a transaction-scoped advisory lock
  (`pg_advisory_xact_lock`) keyed by a 64-bit hash of the name, held on a pooled connection for
  the body of the `async with` and released when that transaction ends, whatever happens (an
  exception, a cancellation, a dropped connection). `notify` is `pg_notify`; `listen` shares one
  dedicated `LISTEN` connection per store, which reconnects (and re-LISTENs) when it drops.
- **SQLite** (the embedded default: one app process): an `asyncio.Lock` per name and an
  in-process fan-out, shared by every `Store` on the same file in the same event loop.

Notifications are wake-ups, not a message queue: a payload is a short string (under 8000 bytes),
delivered at most once to each subscription that was listening when it was sent; payloads sent
while a Postgres listener is reconnecting are lost. A consumer therefore re-reads the state it
cares about after waking and keeps a timed fallback.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:  # psycopg is imported only by apps on Postgres
    import psycopg
    from psycopg.rows import TupleRow

log = logging.getLogger("app.store")

#: Channel names: what Postgres accepts as a (quoted) identifier, minus quotes and spaces.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,63}")
#: Postgres refuses NOTIFY payloads of 8000 bytes or more; the same limit holds on SQLite.
MAX_PAYLOAD_BYTES = 7999
#: Payloads kept per subscription while its consumer is busy; beyond it the oldest are dropped.
SUBSCRIPTION_BUFFER = 1000
#: How long entering `listen(...)` waits for the LISTEN to be in place before going on without
#: it (the database is unreachable; it is re-issued once the listener reconnects).
LISTEN_READY_SECONDS = 5.0
#: The listener checks its idle connection this often (a query), besides TCP keepalives.
LISTENER_HEALTH_SECONDS = 30.0
#: Reconnection backoff of the listener: doubling from the first delay up to the maximum.
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of a lock name."""
    digest = hashlib.sha256(f"waycore-onboarding:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def check_channel(channel: str) -> str:
    if not CHANNEL_NAME.fullmatch(channel):
        raise ValueError(f"invalid channel name {channel!r} (letters, digits, _ . : -; max 63)")
    return channel


def check_payload(payload: str) -> str:
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"notification payloads are limited to {MAX_PAYLOAD_BYTES} bytes")
    return payload


class Exchange(Protocol):
    async def subscribe(self, subscription: Subscription) -> None: ...

    def unsubscribe(self, subscription: Subscription) -> None: ...


class Subscription:
    """Payloads sent on one channel, from the moment the subscription is entered.

    Use as `async with store.listen(channel) as messages:` then `async for payload in messages`
    or `await messages.get(timeout)`. Iteration ends (and `get` returns None) once the store is
    closed, so a waiter is released at shutdown.
    """

    def __init__(self, channel: str, exchange: Exchange) -> None:
        self.channel = check_channel(channel)
        self._exchange = exchange
        self._items: collections.deque[str] = collections.deque(maxlen=SUBSCRIPTION_BUFFER)
        self._wake = asyncio.Event()
        self._entered = False
        self.closed = False

    async def __aenter__(self) -> Subscription:
        if self.closed or self._entered:
            raise RuntimeError("a subscription is entered once, on an open store")
        self._entered = True
        await self._exchange.subscribe(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> str:
        payload = await self.get()
        if payload is None:
            raise StopAsyncIteration
        return payload

    async def get(self, timeout: float | None = None) -> str | None:
        """The next payload; None after `timeout` seconds or once closed."""
        try:
            async with asyncio.timeout(timeout):
                while not self._items:
                    if self.closed:
                        return None
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            return None
        return self._items.popleft()

    def deliver(self, payload: str) -> None:
        if not self.closed:
            self._items.append(payload)
            self._wake.set()

    def close(self) -> None:
        """Stop receiving; a pending `get` returns None (payloads already received stay)."""
        if not self.closed:
            self.closed = True
            self._exchange.unsubscribe(self)
            self._wake.set()


class Coordinator(Protocol):
    """Locks and notifications of one store (see the module docstring)."""

    def lock(self, name: str, *, wait: bool = True) -> AbstractAsyncContextManager[bool]: ...

    async def notify(self, channel: str, payload: str) -> None: ...

    def listen(self, channel: str) -> Subscription: ...

    async def close(self) -> None: ...


class _Subscribers:
    """Who listens to what; delivery to the subscriptions of a channel."""

    def __init__(self) -> None:
        self.by_channel: dict[str, set[Subscription]] = {}

    def add(self, subscription: Subscription) -> bool:
        """Adds; True when it is the channel's first subscription."""
        members = self.by_channel.setdefault(subscription.channel, set())
        members.add(subscription)
        return len(members) == 1

    def remove(self, subscription: Subscription) -> bool:
        """Removes; True when the channel has no subscription left."""
        members = self.by_channel.get(subscription.channel)
        if members is None:
            return False
        members.discard(subscription)
        if members:
            return False
        del self.by_channel[subscription.channel]
        return True

    def deliver(self, channel: str, payload: str) -> None:
        for subscription in list(self.by_channel.get(channel, ())):
            subscription.deliver(payload)


# ---------------------------------------------------------------------------------- SQLite


class _LocalHub:
    """The locks and subscribers shared by the stores of one SQLite file in one event loop."""

    def __init__(self) -> None:
        self.locks: dict[str, asyncio.Lock] = {}
        self.lock_users: collections.Counter[str] = collections.Counter()
        self.subscribers = _Subscribers()
        self.stores = 0


_LOCAL_HUBS: dict[tuple[int, str], _LocalHub] = {}


class LocalCoordinator:
    """One process: asyncio locks and in-process fan-out. `file` (None: in-memory) lets every
    store of the same SQLite file in this event loop share them."""

    def __init__(self, file: str | None) -> None:
        self._key = (id(asyncio.get_running_loop()), file) if file else None
        hub = _LOCAL_HUBS.get(self._key) if self._key else None
        if hub is None:
            hub = _LocalHub()
            if self._key:
                _LOCAL_HUBS[self._key] = hub
        hub.stores += 1
        self._hub = hub
        self._mine: set[Subscription] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait: bool = True) -> AsyncIterator[bool]:
        hub = self._hub
        lock = hub.locks.setdefault(name, asyncio.Lock())
        hub.lock_users[name] += 1
        try:
            if not wait and lock.locked():
                yield False
            else:
                async with lock:
                    yield True
        finally:
            hub.lock_users[name] -= 1
            if not hub.lock_users[name]:
                del hub.lock_users[name]
                del hub.locks[name]

    async def notify(self, channel: str, payload: str) -> None:
        self._hub.subscribers.deliver(check_channel(channel), check_payload(payload))

    def listen(self, channel: str) -> Subscription:
        if self._closed:
            raise RuntimeError("the store is closed")
        return Subscription(channel, self)

    async def subscribe(self, subscription: Subscription) -> None:
        self._mine.add(subscription)
        self._hub.subscribers.add(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._mine.discard(subscription)
        self._hub.subscribers.remove(subscription)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._mine):
            subscription.close()
        self._hub.stores -= 1
        if self._key and self._hub.stores == 0:
            _LOCAL_HUBS.pop(self._key, None)


# ---------------------------------------------------------------------------------- Postgres


class PostgresCoordinator:
    """Several processes: advisory locks on pooled connections, NOTIFY, and one LISTEN
    connection per store (started by the first subscription)."""

    def __init__(self, engine: AsyncEngine, conninfo: str) -> None:
        self._engine = engine
        self._conninfo = conninfo
        self._subscribers = _Subscribers()
        self._changed = asyncio.Event()
        self._state = asyncio.Condition()
        #: Channels LISTENed on the current listener connection.
        self._listening: set[str] = set()
        #: How many times the listener connected (a new connection re-LISTENs every channel).
        self.connections = 0
        #: The listener connection's server process id (None while disconnected).
        self.backend_pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- locks

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait: bool = True) -> AsyncIterator[bool]:
        key = lock_key(name)
        # The lock belongs to this connection's transaction: closing the connection (back to
        # the pool, which rolls back) releases it, as does the server if the connection drops.
        async with self._engine.connect() as connection:
            if wait:
                await connection.execute(select(func.pg_advisory_xact_lock(key)))
                acquired = True
            else:
                query = select(func.pg_try_advisory_xact_lock(key))
                acquired = bool((await connection.execute(query)).scalar_one())
            yield acquired

    # -- notifications

    async def notify(self, channel: str, payload: str) -> None:
        query = select(func.pg_notify(check_channel(channel), check_payload(payload)))
        async with self._engine.begin() as connection:
            await connection.execute(query)

    def listen(self, channel: str) -> Subscription:
        if self._closed:
            raise RuntimeError("the store is closed")
        return Subscription(channel, self)

    async def subscribe(self, subscription: Subscription) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")
        if self._subscribers.add(subscription) and subscription.channel not in self._listening:
            self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-listener")
        try:
            await self.wait_listening(subscription.channel, timeout=LISTEN_READY_SECONDS)
        except TimeoutError:
            log.warning(
                "not listening on %s yet (database unreachable); it will be once reconnected",
                subscription.channel,
            )

    def unsubscribe(self, subscription: Subscription) -> None:
        # A channel left without subscribers is UNLISTENed at the next change, not at once: a
        # waiter that comes back soon (the next long-poll) finds it still listened.
        self._subscribers.remove(subscription)

    async def wait_listening(
        self, channel: str, *, after: int = 0, timeout: float | None = None
    ) -> None:
        """Return once `channel` is LISTENed on a connection made after the `after`-th one (or
        the store is closed)."""
        async with asyncio.timeout(timeout), self._state:
            await self._state.wait_for(
                lambda: self._closed or (self.connections > after and channel in self._listening)
            )

    async def _run(self) -> None:
        import psycopg

        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
            try:
                connection = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name="waycore-onboarding listener",
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                )
            except Exception as exc:
                delay = min(max(delay * 2, RECONNECT_FIRST_DELAY), RECONNECT_MAX_DELAY)
                log.warning("listener cannot connect (%s); retrying in %.1f s", exc, delay)
                continue
            try:
                self.connections += 1
                self.backend_pid = connection.info.backend_pid
                await self._serve(connection)
            except Exception as exc:
                log.warning("listener connection lost (%s); reconnecting", exc)
            finally:
                self.backend_pid = None
                async with self._state:
                    self._listening = set()
                with contextlib.suppress(Exception):
                    await connection.close()
            delay = RECONNECT_FIRST_DELAY

    async def _serve(self, connection: psycopg.AsyncConnection[TupleRow]) -> None:
        """LISTEN to what is subscribed, deliver what arrives; re-sync when subscriptions
        change. Raises when the connection is lost."""
        while True:
            self._changed.clear()
            await self._sync(connection)
            reader = asyncio.create_task(self._read(connection))
            changed = asyncio.create_task(self._changed.wait())
            try:
                await asyncio.wait({reader, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the store closes (this task is cancelled)
                for task in (reader, changed):
                    task.cancel()
                await asyncio.gather(reader, changed, return_exceptions=True)
            if reader.done() and not reader.cancelled():
                reader.result()  # raises the connection error
                raise ConnectionError("the listener stopped receiving")

    async def _sync(self, connection: psycopg.AsyncConnection[TupleRow]) -> None:
        from psycopg import sql

        wanted = set(self._subscribers.by_channel)
        for channel in wanted - self._listening:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        for channel in self._listening - wanted:
            await connection.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
        async with self._state:
            self._listening = wanted
            self._state.notify_all()

    async def _read(self, connection: psycopg.AsyncConnection[TupleRow]) -> None:
        while True:
            async for note in connection.notifies(timeout=LISTENER_HEALTH_SECONDS):
                self._subscribers.deliver(note.channel, note.payload)
            async with asyncio.timeout(10):
                await connection.execute("SELECT 1")

    async def close(self) -> None:
        """Stop listening and end every subscription (their waiters return at once)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for members in list(self._subscribers.by_channel.values()):
            for subscription in list(members):
                subscription.close()
        async with self._state:
            self._state.notify_all()
