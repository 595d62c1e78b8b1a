"""A small in-memory cache with a time to live, for values read on every request."""

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
        self._loads: dict[K, asyncio.Task[V]] = {}
        self._generation = 0

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value of `key`, loaded by `load()` when missing (one load for concurrent asks)."""
        held = self.get(key)
        if held is not MISSING:
            return held
        task = self._loads.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._loads[key] = task
            task.add_done_callback(self._loaded(key, self._generation))
        # A caller that is cancelled stops waiting; the load goes on for the others.
        return await asyncio.shield(task)

    def _loaded(self, key: K, generation: int) -> Callable[[asyncio.Task[V]], None]:
        def done(task: asyncio.Task[V]) -> None:
            if self._loads.get(key) is task:
                del self._loads[key]
            if task.cancelled() or task.exception() is not None:
                return
            if generation == self._generation:
                self.put(key, task.result())

        return done

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
        self._loads.clear()
