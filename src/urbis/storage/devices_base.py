"""The DeviceStore Protocol: the IoT agents' registry of service groups, devices, dead letters.

Service groups are unique by (apikey, resource) across every tenant (an apikey names one
tenant: devices send it without saying their tenant); devices by (tenant, device_id), and by
(apikey, device_id) when they have an apikey, so the ingestion look-up of a measure is one
index probe. Backends shared by several processes announce every group or device change on
the InvalidationChannel (TOPIC_DEVICES, key: the apikey) in the transaction of the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from urbis.context.devices import DeadLetter, Device, ServiceGroup

TOPIC_DEVICES = "devices"  # key: the apikey whose groups or devices changed


@dataclass(frozen=True, slots=True)
class Scope:
    """Which groups or devices a listing covers: a tenant, and a service path (None: all)."""

    tenant: str
    service_path: str | None = None
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    """A selection of dead letters, newest first.

    `tenants` lists the tenants to include (None inside it: the letters of unknown apikeys,
    which have no tenant); None: every tenant.
    """

    tenants: Sequence[str | None] | None = None
    device_id: str | None = None
    reason: str | None = None
    limit: int = 100


@runtime_checkable
class DeviceStore(Protocol):
    """Service groups, devices and the dead-letter log of the IoT agents."""

    async def add_groups(self, groups: Sequence[ServiceGroup]) -> None:
        """Insert every group or none; AlreadyExists (DUPLICATE_GROUP) if a key is taken."""

    async def groups(self, scope: Scope, apikey: str | None = None,
                     resource: str | None = None) -> tuple[list[ServiceGroup], int]:
        """A page of a scope's groups (by apikey, resource) and how many match in all."""

    async def groups_by_apikey(self, apikey: str) -> list[ServiceGroup]:
        """Every group of an apikey, whatever its tenant (by resource)."""

    async def replace_group(self, group: ServiceGroup) -> bool:
        """Store a changed group under its key; False if there is no such group."""

    async def delete_group(self, tenant: str, apikey: str, resource: str) -> bool:
        """Delete a tenant's group; False if there is none."""

    async def add_devices(self, devices: Sequence[Device]) -> None:
        """Insert every device or none; AlreadyExists (DUPLICATE_DEVICE_ID) if one exists."""

    async def get_device(self, tenant: str, device_id: str) -> Device | None:
        """A tenant's device by id."""

    async def find_device(self, apikey: str, device_id: str) -> Device | None:
        """The device a measure names (the ingestion look-up)."""

    async def devices(self, scope: Scope) -> tuple[list[Device], int]:
        """A page of a scope's devices (by device id) and how many it holds in all."""

    async def replace_device(self, device: Device) -> bool:
        """Store a changed device; False if there is no such device; AlreadyExists if its
        new apikey is taken for its device id."""

    async def delete_device(self, tenant: str, device_id: str) -> bool:
        """Delete a device; False if there is none."""

    async def touch(self, seen: Sequence[tuple[str, str, str]]) -> None:
        """Record when devices were last seen: (tenant, device_id, DateTime), one write."""

    async def add_dead_letters(self, letters: Sequence[DeadLetter], keep: int) -> None:
        """Append dead letters in one write, keeping only the newest `keep` in all."""

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """Dead letters matching the query, newest first."""
