"""Live status: one view of each connection's state for every tab, user and app instance.

Every read of a connection goes through `LiveStatus.read()`, which answers from the last state
seen (`store.connection_state`: Waycore's JSON of the connection, with when and from where it
was fetched) and asks Waycore (`GET /v1/connections/{id}`) only when that state is due:
- at most once per connection per poll interval, however many tabs, users and instances watch
  it: concurrent reads in a process share one in-flight call, and across instances one claims
  the check (`store.claim_refresh`: a conditional update of the state row, so no instance holds
  a database connection while it waits on Waycore);
- not at all while a state from a webhook is fresh (`webhook_fresh` seconds: a lost webhook is
  still caught by polling after that), nor before a `Retry-After` Waycore gave has passed (the
  page says when the next check is);
- the app's own writes (a connection created, credentials sent, setup completed, a sync
  started) record what Waycore answered at once, so no read shows a state older than the app's
  own last write.

`wait()` holds a request (long-poll) until the state's version moves or `hold` seconds pass,
woken by a webhook or by the single-flight check of any instance (`store.listen`); at most
`max_waiters` are held per process (beyond that a request is answered at once), and every held
request is released at shutdown (`close()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from caching import SingleFlight, TTLCache
from onboarding.errors import NotOwned
from store import STATE_CHANNEL, ConnectionState, OwnedConnection, Store
from waycore.client import WaycoreClient
from waycore.errors import NotFound, RateLimited, ServerError
from waycore.models import Connection

log = logging.getLogger("app.live")

#: Seconds a state from a webhook answers reads without a check of Waycore.
WEBHOOK_FRESH_SECONDS = 60.0
#: How long one instance may hold the claim of a check (more than the client's timeout).
CLAIM_LEASE_SECONDS = 30.0
#: Longest a connection's account data is reused without news of new data.
DATA_SECONDS = 300.0
#: Up to this share of the interval is added to a state's time before its next check, the same
#: for every instance but different per connection and state: connections seen together (created
#: together, or listed together) then do not all fall due together, every interval.
SPREAD = 0.2


@dataclass(frozen=True)
class Reading:
    """A connection as the app last saw it: Waycore's view, the local ownership record, the
    state's `version` and `data_version`, where it came from, and until when Waycore asked to
    wait before the next check (`check_after`, None when it did not)."""

    owned: OwnedConnection
    connection: Connection
    version: int
    data_version: int
    fetched_at: float
    source: str
    check_after: float | None


class LiveStatus:
    def __init__(
        self,
        store: Store,
        waycore: WaycoreClient,
        *,
        interval: float,
        webhook_fresh: float = WEBHOOK_FRESH_SECONDS,
        hold: float = 25.0,
        max_waiters: int = 1000,
        spread: float = SPREAD,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.waycore = waycore
        self.interval = interval
        self.spread = spread
        self.webhook_fresh = webhook_fresh
        self.hold = hold
        self.max_waiters = max_waiters
        self._clock = clock
        #: The check of a connection in flight in this process, by connection id.
        self._checks: SingleFlight[str, ConnectionState | None] = SingleFlight()
        #: Per tenant: when Waycore last listed its connections, and the ones it did not list.
        self._listings: dict[str, tuple[float, frozenset[str]]] = {}
        self._listing: SingleFlight[str, None] = SingleFlight()
        #: One event per held request, by connection: a change sets every one of them.
        self._held: dict[str, set[asyncio.Event]] = {}
        self._waiting = 0
        self._closed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        #: A connection's account data (accounts, balances, first transactions page), reused
        #: while its `data_version` stands (a sync that ended or a webhook moves it), at most
        #: `DATA_SECONDS`.
        self.data: TTLCache[tuple[str, int, str | None], object] = TTLCache(DATA_SECONDS)
        self._parsed: TTLCache[tuple[str, int, float], Connection] = TTLCache(DATA_SECONDS)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Follow every instance's state changes, to wake held requests."""
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._follow(ready), name="live-status")
        await ready.wait()

    async def _follow(self, ready: asyncio.Event) -> None:
        async with self.store.listen(STATE_CHANNEL) as messages:
            ready.set()
            async for message in messages:
                self._wake(message.partition(" ")[0])

    def _wake(self, connection_id: str) -> None:
        for event in self._held.get(connection_id, ()):
            event.set()

    async def close(self) -> None:
        """Release every held request, stop following changes, end the checks and listings in
        flight (before the store they write to closes)."""
        self._closed.set()
        for events in self._held.values():
            for event in events:
                event.set()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._checks.cancel_all()
        await self._listing.cancel_all()

    @property
    def waiting(self) -> int:
        """Requests held right now in this process."""
        return self._waiting

    # ------------------------------------------------------------------ reading

    def due_at(
        self, connection_id: str, source: str, fetched_at: float, check_after: float | None
    ) -> float:
        """When a state of the connection (from `source`, fetched at `fetched_at`) is due a check
        of Waycore: one interval after it was fetched (plus its share of `spread`),
        `webhook_fresh` seconds for a webhook's, and never before a `Retry-After` Waycore gave
        (`check_after`). Reads before then answer from it, and held reads sleep until then."""
        due = fetched_at + self.interval * (1 + self.spread * _share(connection_id, fetched_at))
        if source == "webhook":
            due = max(due, fetched_at + self.webhook_fresh)
        if check_after is not None:
            due = max(due, check_after)
        return due

    def fresh(self, state: ConnectionState, now: float | None = None) -> bool:
        """Whether `state` may answer a read without asking Waycore."""
        now = self._clock() if now is None else now
        return now < self.due_at(
            state.connection_id, state.source, state.fetched_at, state.check_after
        )

    async def read(self, tenant_id: str, connection_id: str) -> Reading:
        """The tenant's connection as last seen, checked with Waycore when due (see the module
        doc). `NotOwned` for another tenant's or an unknown id (before any Waycore call);
        Waycore's `NotFound` (the connection is forgotten locally) or other errors when a due
        check fails and there is nothing to show instead."""
        owned = await self.store.owned_connection(tenant_id, connection_id)
        if owned is None:
            raise NotOwned(connection_id)
        state = await self.store.connection_state(connection_id)
        if state is None or not self.fresh(state):
            state = await self._refresh(owned, state)
        assert state is not None
        return self._reading(owned, state)

    async def refresh(self, tenant_id: str, connection_id: str, *, source: str) -> Reading:
        """Ask Waycore now (a webhook said the connection changed), as the one check in flight
        for it; Waycore's errors are raised."""
        owned = await self.store.owned_connection(tenant_id, connection_id)
        if owned is None:
            raise NotOwned(connection_id)
        connection = await self.waycore.get_connection(connection_id, retries=0)
        state = await self.record(tenant_id, connection, source=source)
        return self._reading(owned, state)

    async def record(
        self, tenant_id: str, connection: Connection, *, source: str = "action"
    ) -> ConnectionState:
        """Keep what Waycore answered (to the app's own write, or a check): later reads start
        from it, and held requests wake if it changed what a page shows. A sync that ended
        (syncing, now idle) means new account data."""
        previous = await self.store.connection_state(connection.id)
        synced = (
            previous is not None
            and previous.resource.get("syncStatus") == "syncing"
            and connection.sync_status != "syncing"
        )
        state, _ = await self.store.save_state(
            tenant_id,
            connection.id,
            connection.to_api(),
            source,
            now=self._clock(),
            data_changed=synced,
        )
        return state

    async def _refresh(
        self, owned: OwnedConnection, state: ConnectionState | None
    ) -> ConnectionState | None:
        """One check per connection in flight in this process: the others await it."""
        return await self._checks.run(owned.connection_id, lambda: self._check(owned, state))

    async def _check(
        self, owned: OwnedConnection, state: ConnectionState | None
    ) -> ConnectionState | None:
        connection_id, now = owned.connection_id, self._clock()
        if state is not None:
            claimed = await self.store.claim_refresh(
                connection_id, now=now, interval=self.interval, lease=CLAIM_LEASE_SECONDS
            )
            if not claimed:  # another instance checks it, or just did: its state will do
                return await self.store.reload_state(connection_id) or state
        try:
            connection = await self.waycore.get_connection(connection_id, retries=0)
        except NotFound:
            await self.store.forget_connection(owned.tenant_id, connection_id)
            raise
        except (RateLimited, ServerError) as exc:
            if exc.retry_after is None or state is None:
                await self._release(connection_id, state)
                raise
            until = now + exc.retry_after
            log.info(
                "Waycore asked to wait %.0f s before checking %s", exc.retry_after, connection_id
            )
            await self.store.back_off_state(connection_id, until)
            return await self.store.connection_state(connection_id)
        except BaseException:
            await self._release(connection_id, state)
            raise
        return await self.record(owned.tenant_id, connection, source="poll")

    async def _release(self, connection_id: str, state: ConnectionState | None) -> None:
        if state is not None:
            with contextlib.suppress(Exception):
                await self.store.release_refresh(connection_id)

    def _connection(self, state: ConnectionState) -> Connection:
        """The state's connection, parsed once per state seen (reads repeat it many times)."""
        key = (state.connection_id, state.version, state.fetched_at)
        parsed = self._parsed.get(key)
        if not isinstance(parsed, Connection):
            parsed = Connection.from_api(state.resource)
            self._parsed.put(key, parsed)
        return parsed

    def _reading(self, owned: OwnedConnection, state: ConnectionState) -> Reading:
        check_after = (
            state.check_after if state.check_after and state.check_after > self._clock() else None
        )
        return Reading(
            owned=owned,
            connection=self._connection(state),
            version=state.version,
            data_version=state.data_version,
            fetched_at=state.fetched_at,
            source=state.source,
            check_after=check_after,
        )

    async def expire(self) -> None:
        """Treat everything seen so far as old (states, lists, account data): the next reads ask
        Waycore. For operators and tests that changed things behind the app's back."""
        await self.store.expire_state()
        self._listings.clear()
        self.data.clear()

    # ------------------------------------------------------------------ a tenant's list

    async def tenant_connections(
        self, tenant_id: str, entity_id: str, owned: list[OwnedConnection]
    ) -> list[Connection]:
        """The tenant's connections for its list: Waycore's list of the entity, asked at most
        once per interval (concurrent lists share the call), each connection's state recorded
        from it; in between, composed from the connections the tenant owns and their last
        states (so a connection created or removed here shows at once), leaving out those
        Waycore's last list did not have."""
        listing = self._listings.get(tenant_id)
        if listing is None or self._clock() - listing[0] >= self.interval:
            await self._listing.run(tenant_id, lambda: self._list(tenant_id, entity_id))
            owned = await self.store.owned_connections(tenant_id)  # it may have recorded some
        absent = self._listings[tenant_id][1]
        shown = []
        for row in owned:
            if row.connection_id in absent:
                continue
            state = await self.store.connection_state(row.connection_id)
            if state is not None:
                shown.append(self._connection(state))
        return shown

    async def _list(self, tenant_id: str, entity_id: str) -> None:
        listed_at = self._clock()
        listed = await self.waycore.list_connections(entity_id=entity_id)
        mine = [c for c in listed if not c.entity_id or c.entity_id == entity_id]
        owned = {row.connection_id for row in await self.store.owned_connections(tenant_id)}
        for connection in mine:
            if connection.id not in owned:  # made elsewhere for this tenant's entity
                await self.store.record_connection(tenant_id, connection.id)
            await self.record(tenant_id, connection, source="poll")
        seen = {c.id for c in mine}
        self._listings[tenant_id] = (listed_at, frozenset(owned - seen))

    # ------------------------------------------------------------------ holding

    async def wait(
        self, tenant_id: str, connection_id: str, version: int, *, hold: float | None = None
    ) -> Reading | None:
        """Hold until the connection's state version is no longer `version` (a webhook, or the
        one check per interval of any instance), or `hold` seconds pass; the reading then.
        None when no request may be held now (the cap is reached, or shutting down): answer at
        once."""
        if self._closed.is_set() or self._waiting >= self.max_waiters:
            return None
        hold = self.hold if hold is None else hold
        deadline = self._clock() + hold
        event = asyncio.Event()
        self._held.setdefault(connection_id, set()).add(event)
        self._waiting += 1
        try:
            reading = await self.read(tenant_id, connection_id)
            while reading.version == version and not self._closed.is_set():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                # Wake on a change, or when this state is due a check (the rule of `fresh`).
                due = self.due_at(
                    connection_id, reading.source, reading.fetched_at, reading.check_after
                )
                with contextlib.suppress(TimeoutError):  # not `wait_for`: see `Sender.run`
                    async with asyncio.timeout(max(0.05, min(remaining, due - self._clock()))):
                        await event.wait()
                event.clear()
                reading = await self.read(tenant_id, connection_id)
            return reading
        finally:
            self._waiting -= 1
            events = self._held.get(connection_id, set())
            events.discard(event)
            if not events:
                self._held.pop(connection_id, None)


@functools.lru_cache(maxsize=4096)
def _share(connection_id: str, fetched_at: float) -> float:
    """A fraction in [0, 1) fixed by the connection and when its state was fetched: the same in
    every instance, different from one state to the next."""
    return zlib.crc32(f"{connection_id} {fetched_at!r}".encode()) / 2**32
