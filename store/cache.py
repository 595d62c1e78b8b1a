"""A small in-memory cache with a time to live, for values read on every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from typing import Generic, Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Missing(Enum):
    MISSING = "missing"


#: What `TTLCache.get` answers for a key it does not hold (None may be a cached value).
MISSING: Literal[_Missing.MISSING] = _Missing.MISSING


class TTLCache(Generic[K, V]):
    """Values kept `ttl` seconds (at most `limit` of them; when full, it starts afresh)."""

    def __init__(
        self, ttl: float, *, limit: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}

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

    def drop_where(self, predicate: Callable[[K], bool]) -> None:
        for key in [k for k in self._values if predicate(k)]:
            del self._values[key]

    def clear(self) -> None:
        self._values.clear()
