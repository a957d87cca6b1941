"""The ingestion look-up: (apikey, device_id) -> compiled Plan, cached in the process.

A message costs a dictionary look-up once its device is known. The cache holds unknown devices
too (None), so a device sending before it is provisioned does not reach the store each time.
Entries of an apikey are dropped when its groups or devices change: at once for changes made
by this process, and through the store's InvalidationChannel (PostgreSQL LISTEN/NOTIFY) for
changes made by other workers. A look-up that raced with an invalidation is not cached.
"""

from __future__ import annotations

from urbis.agents.measure_plan import Plan, compile_plan
from urbis.context.devices import Device, ServiceGroup
from urbis.context.jsonld import TermMap
from urbis.storage.base import TOPIC_ALL
from urbis.storage.devices_base import TOPIC_DEVICES, DeviceStore

MAX_ENTRIES = 200_000


def pick_group(groups: list[ServiceGroup], resource: str | None, tenant: str | None = None
               ) -> ServiceGroup | None:
    """The group a message of an apikey belongs to: the one of its resource (HTTP path), else
    the one without a resource, else the first; only groups of `tenant` when given."""
    if tenant is not None:
        groups = [g for g in groups if g.tenant == tenant]
    if not groups:
        return None
    for wanted in (resource, ""):
        for group in groups:
            if wanted is not None and group.resource == wanted:
                return group
    return groups[0]


class DeviceCache:
    """Plans by (apikey, device_id) and groups by apikey, invalidated by apikey."""

    def __init__(self, store: DeviceStore, tm: TermMap, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.tm = tm
        self.max_entries = max_entries
        self._plans: dict[str, dict[str, Plan | None]] = {}
        self._groups: dict[str, list[ServiceGroup]] = {}
        self._size = 0
        self._generation = 0

    def invalidate(self, topic: str, key: str | None) -> None:
        """InvalidationListener: forget an apikey's entries (all of them when unsure)."""
        if topic == TOPIC_ALL or (topic == TOPIC_DEVICES and key is None):
            self.clear()
        elif topic == TOPIC_DEVICES and key is not None:
            self._generation += 1
            self._size -= len(self._plans.pop(key, {}))
            self._groups.pop(key, None)

    @property
    def generation(self) -> int:
        """Changes whenever entries are dropped (devices or groups changed)."""
        return self._generation

    def clear(self) -> None:
        """Forget everything."""
        self._generation += 1
        self._plans.clear()
        self._groups.clear()
        self._size = 0

    async def groups(self, apikey: str) -> list[ServiceGroup]:
        """Every group of an apikey (cached)."""
        found = self._groups.get(apikey)
        if found is None:
            generation = self._generation
            found = await self.store.groups_by_apikey(apikey)
            if generation == self._generation:
                self._groups[apikey] = found
        return found

    async def plan(self, apikey: str, device_id: str, resource: str | None = None
                   ) -> Plan | None:
        """The plan of a provisioned device, or None if the apikey has no such device."""
        known = self._plans.get(apikey)
        if known is not None and device_id in known:
            return known[device_id]
        generation = self._generation
        device = await self.store.find_device(apikey, device_id)
        plan = None
        if device is not None:
            plan = await self.compile(device, resource)
        if generation == self._generation:
            self._remember(apikey, device_id, plan)
        return plan

    async def compile(self, device: Device, resource: str | None = None) -> Plan:
        """The plan of a device with the group its apikey names in its tenant."""
        group = pick_group(await self.groups(device.apikey), resource, device.tenant) \
            if device.apikey else None
        return compile_plan(device, group, self.tm)

    def _remember(self, apikey: str, device_id: str, plan: Plan | None) -> None:
        if self._size >= self.max_entries:
            self.clear()  # bounded memory: a full cache starts again
        self._plans.setdefault(apikey, {})[device_id] = plan
        self._size += 1
