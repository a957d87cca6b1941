"""What several workers on one store rely on, on every backend: usage counters of stored
@contexts lose no hit and never bring a deleted context back; a store that other processes
may write has an invalidation channel, the embedded one none."""

from __future__ import annotations

import asyncio

from urbis.settings import Settings
from urbis.storage.base import CAP_INVALIDATION, StoredContext
from urbis.storage.registry import open_stores


async def test_usage_of_several_workers_adds_up(settings: Settings) -> None:
    workers = [await open_stores(settings.store, synchronous="normal") for _ in range(2)]
    try:
        ctx = StoredContext("u-1", "http://x/u-1", "hosted", {"@context": {}}, "2026-01-01")
        await workers[0].contexts.put_context(ctx)
        await asyncio.gather(*(w.contexts.record_usage(ctx.id, 2, f"2026-01-0{i + 2}")
                               for i, w in enumerate(workers) for _ in range(5)))
        stored = await workers[1].contexts.get_context(ctx.id)
        assert stored is not None and stored.hits == 20 and stored.last_used_at == "2026-01-03"
        await workers[0].contexts.record_usage(ctx.id, 1, "2025-12-31")  # an older flush
        stored = await workers[1].contexts.get_context(ctx.id)
        assert stored is not None and stored.hits == 21 and stored.last_used_at == "2026-01-03"
        assert await workers[1].contexts.delete_context(ctx.id)
        await workers[0].contexts.record_usage(ctx.id, 1, "2026-01-04")
        assert await workers[0].contexts.get_context(ctx.id) is None
    finally:
        for w in workers:
            await w.close()


async def test_a_store_shared_by_processes_has_an_invalidation_channel(
        settings: Settings, backend: str) -> None:
    stores = await open_stores(settings.store, synchronous="normal")
    try:
        shared = CAP_INVALIDATION in stores.entities.capabilities
        assert shared == (backend == "postgresql")
        assert (stores.invalidations is not None) == shared
    finally:
        await stores.close()
