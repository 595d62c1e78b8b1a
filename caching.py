"""In-memory caching for values read on every request: `TTLCache` (values kept a while, one
load for many concurrent asks) and `SingleFlight` (one run per key at a time). Used by the
store, the views, the live status and the Waycore client; the standard library only, so the
Waycore boundary needs nothing of the app's to use it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Generic, Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Missing(Enum):
    MISSING = "missing"


#: What `TTLCache.get` answers for a key it does not hold (None may be a cached value).
MISSING: Literal[_Missing.MISSING] = _Missing.MISSING


class SingleFlight(Generic[K, V]):
    """At most one run of the work for a key at a time: whoever asks while one runs awaits that
    one. A caller that is cancelled stops waiting; the run goes on for the others (and ends on
    its own, or by `cancel_all`)."""

    def __init__(self) -> None:
        self._runs: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """How many runs are in flight."""
        return len(self._runs)

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """The result of the run for `key` in flight, or of a new run of `work()`."""
        return await asyncio.shield(self._start(key, work))

    def _start(self, key: K, work: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        """The run for `key` in flight, or a new one of `work()`, started now."""
        running = self._runs.get(key)
        if running is None:
            running = asyncio.ensure_future(work())
            self._runs[key] = running
            running.add_done_callback(lambda done: self._ended(key, done))
        return running

    def _ended(self, key: K, done: asyncio.Future[V]) -> None:
        if self._runs.get(key) is done:  # not one started after `forget_all`
            del self._runs[key]

    def forget_all(self) -> None:
        """The runs in flight go on for those awaiting them; the next asks start new ones."""
        self._runs.clear()

    async def cancel_all(self, wait: float = 5.0) -> None:
        """Cancel the runs in flight, and wait (at most `wait` seconds) until each has ended:
        what a run does on cancellation (e.g. release a claim in the database) is done before
        this returns, while what it uses is still open."""
        runs = list(self._runs.values())
        for running in runs:
            running.cancel()
        if runs:
            await asyncio.wait(runs, timeout=wait)


class TTLCache(Generic[K, V]):
    """Values kept `ttl` seconds (at most `limit` of them; when full, it starts afresh).

    `get_or_load` fills a missing key with one load however many ask for it at once (when a
    value expires under many concurrent requests, the database is asked once, not by each), and
    keeps what a load read only if nothing was dropped while it ran: a value read before a write
    that dropped it is never kept after that write."""

    def __init__(
        self, ttl: float, *, limit: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        #: Loads in flight, by key; `_generation` moves on every drop (their results are then
        #: answered to those already waiting, and not kept).
        self._loads: SingleFlight[K, V] = SingleFlight()
        self._generation = 0

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value of `key`, loaded by `load()` when missing (one load for concurrent asks)."""
        held = self.get(key)
        if held is not MISSING:
            return held
        generation = self._generation

        async def load_and_keep() -> V:
            value = await load()
            if generation == self._generation:  # no drop while it ran
                self.put(key, value)
            return value

        return await self._loads.run(key, load_and_keep)

    def get(self, key: K) -> V | Literal[_Missing.MISSING]:
        held = self._values.get(key)
        if held is None:
            return MISSING
        if held[0] <= self._clock():
            self._values.pop(key, None)
            return MISSING
        return held[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        if len(self._values) >= self.limit:
            self._values.clear()
        self._values[key] = (self._clock() + self.ttl, value)

    def drop(self, key: K) -> None:
        self._values.pop(key, None)
        self._overtake_loads()

    def drop_where(self, predicate: Callable[[K], bool]) -> None:
        for key in [k for k in self._values if predicate(k)]:
            del self._values[key]
        self._overtake_loads()

    def clear(self) -> None:
        self._values.clear()
        self._overtake_loads()

    def _overtake_loads(self) -> None:
        """A drop happened: loads in flight may have read what it replaced. The next asks load
        afresh, and what those loads read is not kept."""
        self._generation += 1
        self._loads.forget_all()
