"""ContextService.invalidate: what another worker changed is dropped here, and a load that was
running meanwhile is not cached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from urbis.broker.contexts import ContextService
from urbis.context.errors import LdContextNotAvailable
from urbis.storage.base import TOPIC_ALL, TOPIC_CONTEXTS, TOPIC_TENANTS, StoredContext
from urbis.storage.sqlite.contexts import SqliteContextStore

EX = "https://example.org/"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ContextService]:
    """A service on a store holding the hosted contexts http://x/a and http://x/b."""
    store = SqliteContextStore(str(tmp_path / "urbis.db"))
    await store.open()
    for name in "ab":
        await store.put_context(StoredContext(name, f"http://x/{name}", "hosted",
                                              {"@context": {"t": EX + name}}, "2026-01-01"))
    yield ContextService(store, fetch_timeout=0.2, max_bytes=10_000, cache_size=8,
                         base_url="http://127.0.0.1:1")
    await store.close()


async def gone_elsewhere(service: ContextService, name: str) -> None:
    """Another worker deletes a context: this one only hears of it."""
    await service.store.delete_context(name)


async def test_a_context_changed_elsewhere_is_resolved_again(service: ContextService) -> None:
    assert (await service.term_map("http://x/a")).expand("t") == EX + "a"
    await gone_elsewhere(service, "a")
    assert (await service.term_map("http://x/a")).expand("t") == EX + "a"  # cached: stale
    service.invalidate(TOPIC_TENANTS, "whatever")  # not about contexts
    assert (await service.term_map("http://x/a")).expand("t") == EX + "a"
    service.invalidate(TOPIC_CONTEXTS, "http://x/a")
    with pytest.raises(LdContextNotAvailable):
        await service.term_map("http://x/a")


async def test_everything_is_dropped_when_announcements_were_missed(
        service: ContextService) -> None:
    for name in "ab":
        await service.term_map(f"http://x/{name}")
        await gone_elsewhere(service, name)
    for topic, key in ((TOPIC_CONTEXTS, None), (TOPIC_ALL, None)):
        service.invalidate(topic, key)
        for name in "ab":
            with pytest.raises(LdContextNotAvailable):
                await service.term_map(f"http://x/{name}")


async def test_a_load_overtaken_by_an_invalidation_is_not_cached(
        service: ContextService, monkeypatch: pytest.MonkeyPatch) -> None:
    find = service.store.find_context_by_url

    async def slow_find(url: str) -> StoredContext | None:
        found = await find(url)  # read before the other worker's delete commits ...
        await gone_elsewhere(service, "a")
        service.invalidate(TOPIC_CONTEXTS, url)  # ... which is announced meanwhile
        return found

    monkeypatch.setattr(service.store, "find_context_by_url", slow_find)
    assert (await service.term_map("http://x/a")).expand("t") == EX + "a"
    monkeypatch.setattr(service.store, "find_context_by_url", find)
    with pytest.raises(LdContextNotAvailable):
        await service.term_map("http://x/a")
