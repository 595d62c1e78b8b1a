"""The in-memory cache in front of the store: one load for many concurrent asks, and never a
value read before a write kept after it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from caching import MISSING, SingleFlight, TTLCache

pytestmark = pytest.mark.anyio


async def test_concurrent_misses_share_one_load() -> None:
    cache: TTLCache[str, int] = TTLCache(60)
    loads = 0
    gate = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return 7

    waiting = [asyncio.ensure_future(cache.get_or_load("k", load)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [7] * 50
    assert loads == 1
    assert cache.get("k") == 7


async def test_a_value_read_before_a_drop_is_answered_but_not_kept() -> None:
    cache: TTLCache[str, str] = TTLCache(60)
    gate = asyncio.Event()

    async def old() -> str:
        await gate.wait()
        return "before the write"

    first = asyncio.ensure_future(cache.get_or_load("k", old))
    await asyncio.sleep(0)
    cache.drop("k")  # a write replaced the row while the read was in flight

    async def new() -> str:
        return "after the write"

    assert await cache.get_or_load("k", new) == "after the write"  # not joined to the old read
    gate.set()
    assert await first == "before the write"  # it asked before the write
    assert cache.get("k") == "after the write"  # ... but what it read is not kept


async def test_a_failed_load_reaches_every_waiter_and_nothing_is_kept() -> None:
    cache: TTLCache[str, int] = TTLCache(60)

    async def load() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("database gone")

    results = await asyncio.gather(
        *(cache.get_or_load("k", load) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.get("k") is MISSING


async def test_a_cancelled_waiter_does_not_cancel_the_load_for_the_others() -> None:
    cache: TTLCache[str, int] = TTLCache(60)
    gate = asyncio.Event()

    async def load() -> int:
        await gate.wait()
        return 1

    impatient = asyncio.ensure_future(cache.get_or_load("k", load))
    patient = asyncio.ensure_future(cache.get_or_load("k", load))
    await asyncio.sleep(0)
    impatient.cancel()
    gate.set()
    assert await patient == 1
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_an_old_run_ending_leaves_the_newer_one_to_be_shared() -> None:
    """After `forget_all` a new run starts; the old one ending must not unlist it, or the next
    caller would start a third run beside it."""
    runs = SingleFlight[str, str]()
    old_gate, new_gate = asyncio.Event(), asyncio.Event()
    started: list[str] = []

    def work(name: str, gate: asyncio.Event) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            started.append(name)
            await gate.wait()
            return name

        return run

    old = asyncio.ensure_future(runs.run("k", work("old", old_gate)))
    await asyncio.sleep(0)
    runs.forget_all()
    new = asyncio.ensure_future(runs.run("k", work("new", new_gate)))
    await asyncio.sleep(0)
    old_gate.set()
    assert await old == "old"
    joined = asyncio.ensure_future(runs.run("k", work("third", new_gate)))
    new_gate.set()
    assert list(await asyncio.gather(new, joined)) == ["new", "new"]
    assert started == ["old", "new"]
    assert len(runs) == 0


async def test_cancel_all_ends_the_runs_in_flight() -> None:
    runs = SingleFlight[str, None]()
    waiting = asyncio.ensure_future(runs.run("k", asyncio.Event().wait))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await runs.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    assert len(runs) == 0
