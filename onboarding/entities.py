"""Resolving the signed-in customer's Waycore entity: created lazily, once, in the background.

The customer never sees or chooses an entity. When a tenant first opens the flow, `prefetch()`
starts a background task that finds the entity whose `externalEntityId` is the tenant id (it may
already exist at Waycore) or creates it, and records the mapping. `resolve()` joins that task
(or starts one). One task per tenant at a time, so two tabs never create two entities; across
app instances the find-or-create runs under the store's lock `entity:<tenant id>` and re-reads
the mapping first, so the instance that waited uses the entity the other one created. A Waycore
409 on create (a process outside that lock won the race) still falls back to the lookup.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from host import Tenant
from onboarding.errors import OnboardingError
from store import Store
from waycore.client import WaycoreClient
from waycore.errors import Conflict, WaycoreError

log = logging.getLogger("app.entities")


def entity_lock(tenant_id: str) -> str:
    """The store lock under which a tenant's entity is found or created."""
    return f"entity:{tenant_id}"


class EntityUnavailable(OnboardingError):
    """The tenant's Waycore entity could not be resolved; the flow must stop here."""

    def __init__(self, cause: WaycoreError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class EntityResolver:
    def __init__(self, store: Store, waycore: WaycoreClient, *, timeout: float = 20.0) -> None:
        self._store = store
        self._waycore = waycore
        self._timeout = timeout
        self._tasks: dict[str, asyncio.Task[str]] = {}

    async def prefetch(self, tenant: Tenant) -> None:
        """Start resolving in the background if the tenant has no mapping yet."""
        if await self._store.entity_for(tenant.id) is None:
            self._task(tenant)

    async def resolve(self, tenant: Tenant) -> str:
        """The tenant's entity id; raises `EntityUnavailable` when it cannot be resolved."""
        mapped = await self._store.entity_for(tenant.id)
        if mapped is not None:
            return mapped
        task = self._task(tenant)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._timeout)
        except WaycoreError as exc:
            raise EntityUnavailable(exc) from exc
        except TimeoutError as exc:
            raise EntityUnavailable(WaycoreError("entity resolution timed out")) from exc

    async def forget(self, tenant: Tenant, entity_id: str) -> None:
        """Drop a mapping Waycore no longer recognises, so the next `resolve()` looks again."""
        await self._store.unmap_entity(tenant.id, entity_id)

    def _task(self, tenant: Tenant) -> asyncio.Task[str]:
        task = self._tasks.get(tenant.id)
        if task is None or task.done():
            task = asyncio.create_task(self._find_or_create(tenant), name=f"entity:{tenant.id}")
            self._tasks[tenant.id] = task
            task.add_done_callback(functools.partial(self._finished, tenant.id))
        return task

    def _finished(self, tenant_id: str, task: asyncio.Task[str]) -> None:
        if self._tasks.get(tenant_id) is task:
            del self._tasks[tenant_id]
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "could not resolve the Waycore entity of %s: %s", tenant_id, task.exception()
            )

    async def _lookup(self, tenant: Tenant) -> str | None:
        for entity in await self._waycore.list_entities(external_entity_id=tenant.id):
            if entity.external_entity_id == tenant.id and not entity.is_default_org_entity:
                return entity.entity_id
        return None

    async def _find_or_create(self, tenant: Tenant) -> str:
        async with self._store.lock(entity_lock(tenant.id)):
            mapped = await self._store.entity_for(tenant.id)
            if mapped is not None:  # another instance resolved it while this one waited
                return mapped
            entity_id = await self._lookup(tenant)
            if entity_id is None:
                try:
                    entity_id = (
                        await self._waycore.create_entity(tenant.id, name=tenant.name)
                    ).entity_id
                    log.info("created Waycore entity %s for %s", entity_id, tenant.id)
                except Conflict:
                    entity_id = await self._lookup(tenant)
                    if entity_id is None:
                        raise
            return await self._store.map_entity(tenant.id, entity_id)

    async def settled(self) -> None:
        """Return once the resolutions running now have finished (whatever their outcome)."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
