"""Which registrations serve an operation: a per-tenant cache in front of the store's index.

Every entity operation may ask; nearly always the answer is "none", so a tenant's count of
live registrations is cached, and when it has at most `memory_limit` of them they are kept in
memory, indexed by entity type and id as the store indexes them: matching is then a few dict
look-ups and the exact test (`registration_match.serves`). A tenant with more is matched by
the store's indexed query. A tenant's cache is dropped when its registrations change: this
process's writes mark it stale from their start to their end, other workers' through the
InvalidationChannel (TOPIC_REGISTRATIONS, key: the tenant; TOPIC_ALL drops every tenant).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from urbis.context.registration import Registration
from urbis.context.registration_match import serves
from urbis.storage.base import TOPIC_ALL
from urbis.storage.registrations_base import TOPIC_REGISTRATIONS, RegistrationStore

MEMORY_LIMIT = 2000  # live registrations of a tenant kept in memory; more are matched in SQL


@dataclass(slots=True)
class _Tenant:
    """One tenant's live registrations (None: too many, matched by the store)."""

    version: tuple[int, int]
    count: int
    regs: list[Registration] | None = None
    by_type: dict[str | None, list[int]] = field(default_factory=dict)  # None: any type
    by_id: dict[str, list[int]] = field(default_factory=dict)
    any_id: list[int] = field(default_factory=list)  # an entity named without an id

    def add(self, n: int, reg: Registration) -> None:
        for key in reg.type_keys():
            self.by_type.setdefault(key, []).append(n)
        ids = {e.id for info in reg.information for e in info.entities or ()
               if e.id is not None}
        for entity_id in ids:
            self.by_id.setdefault(entity_id, []).append(n)
        if any(info.entities is None or any(e.id is None for e in info.entities)
               for info in reg.information):
            self.any_id.append(n)

    def candidates(self, entity_id: str | None, types: Sequence[str] | None) -> list[int]:
        assert self.regs is not None
        found: set[int] = set(range(len(self.regs)))
        if types:
            found = {n for key in (None, *types) for n in self.by_type.get(key, ())}
        if entity_id is not None:
            found &= {*self.by_id.get(entity_id, ()), *self.any_id}
        return sorted(found)


class RegistrationIndex:
    """The registrations of each tenant that has asked, cached until they change."""

    def __init__(self, store: RegistrationStore, memory_limit: int = MEMORY_LIMIT) -> None:
        self.store = store
        self.memory_limit = memory_limit
        self._tenants: dict[str, _Tenant] = {}
        self._epoch = 0  # bumped when every tenant may have changed
        self._versions: dict[str, int] = {}  # bumped when one tenant's registrations change
        self._writing: dict[str, int] = {}  # writes of this process under way, per tenant

    @contextlib.contextmanager
    def writing(self, tenant: str) -> Iterator[None]:
        """Around a registration write of this process: stale from its start to its end."""
        self._writing[tenant] = self._writing.get(tenant, 0) + 1
        try:
            yield
        finally:
            self._bump(tenant)
            left = self._writing[tenant] - 1
            if left:
                self._writing[tenant] = left
            else:
                del self._writing[tenant]

    def invalidate(self, topic: str, key: str | None = None) -> None:
        """Registrations changed (in one tenant, or anywhere): reload before the next match."""
        if topic == TOPIC_ALL or (topic == TOPIC_REGISTRATIONS and key is None):
            self._epoch += 1
            self._tenants.clear()
        elif topic == TOPIC_REGISTRATIONS and key is not None:
            self._bump(key)

    def known_empty(self, tenant: str) -> bool:
        """True when the tenant is known (from the cache, no I/O) to have no live registration:
        the distributed operations then need not even ask."""
        if self._writing.get(tenant):
            return False
        state = self._tenants.get(tenant)
        return (state is not None and state.count == 0
                and state.version == (self._epoch, self._versions.get(tenant, 0)))

    async def matching(self, tenant: str, entity_id: str | None, types: Sequence[str] | None,
                       attrs: Sequence[str] | None, operation: str, now: str
                       ) -> list[Registration]:
        """Live registrations that serve the operation (see `RegistrationStore.matching`)."""
        if self._writing.get(tenant):  # being written here: the store knows best
            return await self.store.matching(tenant, entity_id, types, attrs, operation, now)
        state = await self._state(tenant, now)
        if state.count == 0:
            return []
        if state.regs is None:
            return await self.store.matching(tenant, entity_id, types, attrs, operation, now)
        return [reg for reg in (state.regs[n] for n in state.candidates(entity_id, types))
                if serves(reg, entity_id, types, attrs, operation, now)]

    async def _state(self, tenant: str, now: str) -> _Tenant:
        version = (self._epoch, self._versions.get(tenant, 0))
        state = self._tenants.get(tenant)
        if state is not None and state.version == version:
            return state
        count = await self.store.count(tenant, now)
        state = _Tenant(version, count)
        if 0 < count <= self.memory_limit:
            state.regs = await self.store.live(tenant, now, self.memory_limit)
            for n, reg in enumerate(state.regs):
                state.add(n, reg)
        if (self._epoch, self._versions.get(tenant, 0)) == version:  # nothing changed meanwhile
            self._tenants[tenant] = state
        return state

    def _bump(self, tenant: str) -> None:
        self._versions[tenant] = self._versions.get(tenant, 0) + 1
        self._tenants.pop(tenant, None)
