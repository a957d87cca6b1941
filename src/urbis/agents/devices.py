"""Provisioning: service groups and devices of the IoT agents (the /iot API's service).

Everything happens in the caller's tenant (the `fiware-service` header) and service path
(`fiware-servicepath`; `/*` reads every path of the tenant). An apikey belongs to one tenant.
Each change drops the cached plans of the apikeys it touches (other workers are told by the
store). Entities are not created at provisioning: a device's entity appears with its first
measure, as with the FIWARE agents since 3.4.
"""

from __future__ import annotations

from typing import Any

from urbis.agents.device_cache import DeviceCache, pick_group
from urbis.context.actor import Actor
from urbis.context.device_parse import (
    check_key,
    check_service_path,
    items_of,
    parse_device,
    parse_group,
    patch_device,
    patch_group,
)
from urbis.context.devices import (
    Device,
    ServiceGroup,
    device_not_found,
    duplicate_device,
    duplicate_group,
    fiware,
    group_not_found,
    wrong_syntax,
)
from urbis.context.errors import AlreadyExists, BadRequestData
from urbis.context.model import now_iso
from urbis.decoders.registry import canonical, decoder_names
from urbis.security.policy import DEVICES_READ, DEVICES_WRITE, internal, requires
from urbis.storage.devices_base import TOPIC_DEVICES, DeviceStore, Scope

WILDCARD = "/*"


class DeviceService:
    """Create, read, change and delete service groups and devices."""

    def __init__(self, store: DeviceStore, cache: DeviceCache, *, default_limit: int = 20,
                 max_limit: int = 1000) -> None:
        self.store = store
        self.cache = cache
        self.default_limit = default_limit
        self.max_limit = max_limit

    # --- service groups ------------------------------------------------------------------

    @requires(DEVICES_WRITE)
    async def create_groups(self, actor: Actor, body: Any, service_path: str | None = None
                            ) -> list[ServiceGroup]:
        """POST /iot/services: every group of the body, or none."""
        path = check_service_path(service_path)
        now = now_iso()
        groups = [parse_group(i, actor.tenant, path, now) for i in items_of(body, "services")]
        seen: set[tuple[str, str]] = set()
        for group in groups:
            _check_decoder(group.body)
            if (group.apikey, group.resource) in seen:
                raise duplicate_group(group.apikey, group.resource)
            seen.add((group.apikey, group.resource))
        for apikey in {g.apikey for g in groups}:
            await self._apikey_of_tenant(actor, apikey)
        await self.store.add_groups(groups)
        self._changed(*{g.apikey for g in groups})
        return groups

    @requires(DEVICES_READ)
    async def list_groups(self, actor: Actor, service_path: str | None = None,
                          apikey: str | None = None, resource: str | None = None,
                          limit: int | None = None, offset: int = 0
                          ) -> tuple[list[ServiceGroup], int]:
        """GET /iot/services: a page of the scope's groups and their number."""
        scope = self._scope(actor, service_path, limit, offset)
        return await self.store.groups(scope, apikey, resource)

    @requires(DEVICES_WRITE)
    async def update_group(self, actor: Actor, apikey: str | None, resource: str | None,
                           body: Any, service_path: str | None = None) -> ServiceGroup:
        """PUT /iot/services?apikey=&resource=: the given fields replaced."""
        group = await self._group(actor, apikey, resource, service_path)
        new = patch_group(group, body)
        _check_decoder(new.body)
        if not await self.store.replace_group(new):
            raise group_not_found(group.apikey, group.resource)
        self._changed(group.apikey)
        return new

    @requires(DEVICES_WRITE)
    async def delete_group(self, actor: Actor, apikey: str | None, resource: str | None,
                           service_path: str | None = None, devices: bool = False) -> None:
        """DELETE /iot/services?apikey=&resource= (with its devices when `devices`)."""
        group = await self._group(actor, apikey, resource, service_path)
        if devices:
            await self._delete_devices_of(actor.tenant, group.apikey)
        if not await self.store.delete_group(actor.tenant, group.apikey, group.resource):
            raise group_not_found(group.apikey, group.resource)
        self._changed(group.apikey)

    async def _group(self, actor: Actor, apikey: str | None, resource: str | None,
                     service_path: str | None) -> ServiceGroup:
        if not apikey:
            raise fiware(BadRequestData, "MANDATORY_PARAMS_NOT_FOUND",
                         "the apikey query parameter names the service group")
        path = check_service_path(service_path, wildcard=True)
        found = [g for g in await self.store.groups_by_apikey(apikey)
                 if g.tenant == actor.tenant and path in (WILDCARD, g.service_path)
                 and resource in (None, g.resource)]
        if not found:
            raise group_not_found(apikey, resource)
        if len(found) > 1:
            raise fiware(BadRequestData, "MANDATORY_PARAMS_NOT_FOUND",
                         "several service groups have this apikey: give the resource too")
        return found[0]

    async def _apikey_of_tenant(self, actor: Actor, apikey: str) -> list[ServiceGroup]:
        groups = await self.store.groups_by_apikey(apikey)
        if any(g.tenant != actor.tenant for g in groups):
            raise fiware(AlreadyExists, "DUPLICATE_GROUP",
                         f"apikey {apikey!r:.80} belongs to another service")
        return groups

    # --- devices -------------------------------------------------------------------------

    @requires(DEVICES_WRITE)
    async def create_devices(self, actor: Actor, body: Any, service_path: str | None = None
                             ) -> list[Device]:
        """POST /iot/devices: every device of the body, or none."""
        path = check_service_path(service_path)
        now = now_iso()
        devices = []
        for item in items_of(body, "devices"):
            group = await self._group_for(actor, path, item)
            devices.append(parse_device(item, actor.tenant, path, now, group))
        seen: set[str] = set()
        for device in devices:
            _check_decoder(device.body)
            if device.device_id in seen:
                raise duplicate_device(device.device_id)
            seen.add(device.device_id)
        await self.store.add_devices(devices)
        self._changed(*{d.apikey for d in devices if d.apikey})
        return devices

    @requires(DEVICES_READ)
    async def list_devices(self, actor: Actor, service_path: str | None = None,
                           limit: int | None = None, offset: int = 0
                           ) -> tuple[list[Device], int]:
        """GET /iot/devices: a page of the scope's devices and their number."""
        return await self.store.devices(self._scope(actor, service_path, limit, offset))

    @requires(DEVICES_READ)
    async def get_device(self, actor: Actor, device_id: str, service_path: str | None = None
                         ) -> Device:
        """GET /iot/devices/{id}."""
        path = check_service_path(service_path, wildcard=True)
        device = await self.store.get_device(actor.tenant, device_id)
        if device is None or path not in (WILDCARD, device.service_path):
            raise device_not_found(device_id)
        return device

    @requires(DEVICES_WRITE)
    async def update_device(self, actor: Actor, device_id: str, body: Any,
                            service_path: str | None = None) -> Device:
        """PUT /iot/devices/{id}: the given fields replaced."""
        device = await self.get_device(actor, device_id, service_path)
        if isinstance(body, dict) and body.get("apikey") and body["apikey"] != device.apikey:
            group = await self._group_for(actor, device.service_path, body)
        else:
            group = pick_group(await self.store.groups_by_apikey(device.apikey), None,
                               actor.tenant) if device.apikey else None
        new = patch_device(device, body, group)
        _check_decoder(new.body)
        if not await self.store.replace_device(new):
            raise device_not_found(device_id)
        self._changed(*{device.apikey, new.apikey} - {""})
        return new

    @requires(DEVICES_WRITE)
    async def delete_device(self, actor: Actor, device_id: str,
                            service_path: str | None = None) -> None:
        """DELETE /iot/devices/{id} (its entity stays)."""
        device = await self.get_device(actor, device_id, service_path)
        if not await self.store.delete_device(actor.tenant, device_id):
            raise device_not_found(device_id)
        self._changed(device.apikey)

    @internal  # the ingestion pipeline, for a device its group autoprovisions
    async def autoprovision(self, group: ServiceGroup, device_id: str) -> Device:
        """Register a device that sent its first measure, from its group's template."""
        check_key(device_id, "device_id")
        item = {"device_id": device_id, "apikey": group.apikey,
                "entity_type": group.entity_type}
        for key in ("protocol", "transport"):
            if isinstance(group.body.get(key), str):
                item[key] = group.body[key]
        device = parse_device(item, group.tenant, group.service_path, now_iso(), group)
        try:
            await self.store.add_devices([device])
        except AlreadyExists:  # another worker was faster, or the id is taken in the tenant
            found = await self.store.find_device(group.apikey, device_id)
            if found is None:
                raise
            return found
        self._changed(group.apikey)
        return device

    async def _group_for(self, actor: Actor, path: str, item: dict[str, Any]
                         ) -> ServiceGroup | None:
        """The group a new device joins: its apikey's, else the one of its entity type."""
        apikey = item.get("apikey")
        if isinstance(apikey, str) and apikey:
            return pick_group(await self._apikey_of_tenant(actor, apikey), None, actor.tenant)
        groups, _ = await self.store.groups(Scope(actor.tenant, path, limit=100))
        wanted = item.get("entity_type")
        matching = [g for g in groups if g.entity_type == wanted] if wanted else groups
        return matching[0] if len(matching) == 1 or (wanted and matching) else None

    async def _delete_devices_of(self, tenant: str, apikey: str) -> None:
        offset = 0
        while True:
            page, _ = await self.store.devices(Scope(tenant, None, 1000, offset))
            for device in page:
                if device.apikey == apikey:
                    await self.store.delete_device(tenant, device.device_id)
                else:
                    offset += 1
            if len(page) < 1000:
                return

    def _scope(self, actor: Actor, service_path: str | None, limit: int | None, offset: int
               ) -> Scope:
        path = check_service_path(service_path, wildcard=True)
        size = self.default_limit if limit is None else limit
        if not 0 < size <= self.max_limit or offset < 0:
            raise fiware(BadRequestData, "BAD_REQUEST",
                         f"limit must be 1..{self.max_limit} and offset at least 0")
        return Scope(actor.tenant, None if path == WILDCARD else path, size, offset)

    def _changed(self, *apikeys: str) -> None:
        for apikey in apikeys:
            self.cache.invalidate(TOPIC_DEVICES, apikey)


def _check_decoder(body: dict[str, Any]) -> None:
    name = body.get("payload_decoder")
    if name is not None and canonical(name) not in decoder_names():
        raise wrong_syntax(f"no payload decoder named {name!r:.80} (known: "
                           f"{', '.join(decoder_names())})")
