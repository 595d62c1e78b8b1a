"""Coordination between app instances, on both engines: `other_store` is a second instance's
store on the same database (on SQLite, a second `Store` of the same file in this process)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from store import DAY, PURGE_LOCK, Store
from store.coordination import MAX_PAYLOAD_BYTES, PostgresCoordinator, lock_key
from store.schema import drafts
from tests.postgres import PostgresServer

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------------- locks


async def test_a_held_lock_is_refused_to_the_other_instance_until_released(
    store: Store, other_store: Store
) -> None:
    async with store.lock("entity:acme") as held:
        assert held
        async with other_store.try_lock("entity:acme") as acquired:
            assert not acquired
        async with store.try_lock("entity:acme") as acquired:  # another task, same instance
            assert not acquired
        async with other_store.try_lock("entity:globex") as acquired:  # another name
            assert acquired
    async with other_store.try_lock("entity:acme") as acquired:
        assert acquired


async def test_lock_holders_of_both_instances_never_overlap(
    store: Store, other_store: Store
) -> None:
    inside = 0
    most_inside = 0
    done = 0

    async def critical(instance: Store) -> None:
        nonlocal inside, most_inside, done
        async with instance.lock("drafts:purge"):
            inside += 1
            most_inside = max(most_inside, inside)
            await instance.entity_for("nobody")  # a database round trip while holding it
            inside -= 1
            done += 1

    await asyncio.gather(*(critical(s) for s in (store, other_store) * 4))
    assert (most_inside, done) == (1, 8)


async def test_a_lock_is_released_when_its_block_raises(store: Store, other_store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.lock("entity:acme"):
            raise RuntimeError("Waycore said no")
    async with other_store.try_lock("entity:acme") as acquired:
        assert acquired


async def test_a_waiting_lock_is_granted_once_the_holder_leaves(
    store: Store, other_store: Store
) -> None:
    order: list[str] = []
    entered, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with store.lock("entity:acme"):
            order.append("first in")
            entered.set()
            await release.wait()
            order.append("first out")

    async def waiter() -> None:
        async with other_store.lock("entity:acme"):
            order.append("second in")

    first = asyncio.create_task(holder())
    await entered.wait()
    second = asyncio.create_task(waiter())
    async with other_store.try_lock("entity:acme") as acquired:
        assert not acquired  # still held: the waiter cannot have entered
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first in", "first out", "second in"]


def test_lock_keys_are_stable_signed_64_bit_and_distinct() -> None:
    assert lock_key("entity:acme") == lock_key("entity:acme")
    assert lock_key("entity:acme") != lock_key("entity:globex")
    assert -(2**63) <= lock_key("drafts:purge") < 2**63


# ---------------------------------------------------------------------------------- notify


async def test_a_notification_reaches_the_listeners_of_every_instance(
    store: Store, other_store: Store
) -> None:
    async with (
        store.listen("connection:conn_1") as here,
        other_store.listen("connection:conn_1") as there,
    ):
        await other_store.notify("connection:conn_1", "active")
        assert await here.get(timeout=10) == "active"
        assert await there.get(timeout=10) == "active"


async def test_listeners_get_only_their_channel_in_order(store: Store, other_store: Store) -> None:
    async with store.listen("connection:conn_2") as conn_2:
        await other_store.notify("connection:conn_1", "for conn_1")
        await other_store.notify("connection:conn_2", "first")
        await other_store.notify("connection:conn_2", "second")
        assert [await conn_2.get(timeout=10), await conn_2.get(timeout=10)] == ["first", "second"]


async def test_a_subscription_sees_only_what_is_sent_after_it_is_entered(
    store: Store, other_store: Store
) -> None:
    await other_store.notify("connection:conn_1", "before")
    async with store.listen("connection:conn_1") as messages:
        await other_store.notify("connection:conn_1", "after")
        assert await messages.get(timeout=10) == "after"


async def test_leaving_a_subscription_stops_delivery_to_it_only(
    store: Store, other_store: Store
) -> None:
    async with store.listen("connection:conn_1") as staying:
        async with store.listen("connection:conn_1") as leaving:
            pass
        await other_store.notify("connection:conn_1", "still here")
        assert await staying.get(timeout=10) == "still here"
        assert leaving.closed and await leaving.get() is None


async def test_channels_can_be_left_and_listened_again(store: Store, other_store: Store) -> None:
    for channel in ("connection:a", "connection:b", "connection:a", "connection:b"):
        async with store.listen(channel) as messages:
            await other_store.notify(channel, f"to {channel}")
            assert await messages.get(timeout=10) == f"to {channel}"


async def test_closing_the_store_releases_every_listener(database: str) -> None:
    instance = await Store.open(database)
    received: list[str] = []
    entered, got_one = asyncio.Event(), asyncio.Event()

    async def consume() -> None:
        async with instance.listen("connection:conn_1") as messages:
            entered.set()
            async for payload in messages:
                received.append(payload)
                got_one.set()

    consumer = asyncio.create_task(consume())
    await entered.wait()
    await instance.notify("connection:conn_1", "one")
    await got_one.wait()
    await instance.close()
    await consumer  # iteration ended: the waiter was released
    assert received == ["one"]
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "store-listener"]
    with pytest.raises(RuntimeError):
        instance.listen("connection:conn_1")


async def test_channel_names_and_payload_sizes_are_checked(store: Store) -> None:
    with pytest.raises(ValueError):
        store.listen('bad "name"')
    with pytest.raises(ValueError):
        await store.notify("x" * 64, "")
    with pytest.raises(ValueError):
        await store.notify("ok", "é" * (MAX_PAYLOAD_BYTES // 2 + 1))
    await store.notify("ok", "x" * MAX_PAYLOAD_BYTES)


# ---------------------------------------------------------------------------------- Postgres


@pytest.fixture
async def pg_stores(postgres_database: str) -> AsyncIterator[tuple[Store, Store]]:
    first = await Store.open(postgres_database)
    second = await Store.open(postgres_database)
    yield first, second
    await first.close()
    await second.close()


@pytest.mark.postgres
async def test_a_listener_reconnects_after_its_connection_drops(
    pg_stores: tuple[Store, Store], postgres: PostgresServer
) -> None:
    listening, sending = pg_stores
    coordinator = listening._coordinator
    assert isinstance(coordinator, PostgresCoordinator)
    async with listening.listen("connection:conn_1") as messages:
        connections = coordinator.connections
        assert coordinator.backend_pid is not None
        postgres.terminate(coordinator.backend_pid)
        await coordinator.wait_listening("connection:conn_1", after=connections, timeout=30)
        await sending.notify("connection:conn_1", "after the drop")
        assert await messages.get(timeout=10) == "after the drop"


@pytest.mark.postgres
async def test_a_lock_holder_whose_connection_drops_releases_the_lock(
    pg_stores: tuple[Store, Store], postgres: PostgresServer
) -> None:
    holder, other = pg_stores
    with contextlib.suppress(Exception):  # leaving the block may report the dead connection
        async with holder.lock("entity:acme"):
            async with holder._engine.connect() as probe:
                pids = await probe.exec_driver_sql(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                )
                (pid,) = pids.scalars().all()
            postgres.terminate(pid)
    async with other.try_lock("entity:acme") as acquired:
        assert acquired


async def test_the_purge_waits_for_another_instance_holding_its_lock(
    store: Store, other_store: Store
) -> None:
    expired = await store.create_draft("acme", "u1", institution_id="chase")
    await store._write(
        update(drafts).where(drafts.c.id == expired.id).values(updated_at=time.time() - 31 * DAY)
    )
    async with store.lock(PURGE_LOCK):
        purge = asyncio.create_task(other_store.purge_expired())
        for _ in range(5):  # database round trips while the purge is blocked
            assert await store.open_drafts("acme", 100) == []  # expired: hidden, not yet deleted
            assert await store._one(select(drafts.c.id)) == {"id": expired.id}
        assert not purge.done()
    assert await purge == 1
    assert await store._one(select(drafts.c.id)) is None
