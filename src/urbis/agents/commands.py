"""Commands to devices: a PATCH of an entity's command attribute reaches its device.

A device's commands (its and its group's `commands`, and attributes of type `command`) are
attributes of its entity, with `<cmd>_status` and `<cmd>_info`. When the NGSI-LD API patches
one (`EntityService.after_patch`), the command goes out with the patched value as parameters:

- HTTP push when the device has an `endpoint`: POSTed there (UltraLight `<device>@<cmd>|<params>`
  or JSON `{"<cmd>": params}` after the device's `protocol`); the answer is the result.
- MQTT when the agent has a broker: published on `/<apikey>/<device_id>/cmd`; the device
  answers on `/<apikey>/<device_id>/cmdexe`.
- Otherwise polling: kept until the device asks with `GET /iot/d?k=&i=&getCmd=1`; it answers
  with a POST of `<device>@<cmd>|<result>` to `/iot/d`.

`<cmd>_status` goes PENDING (accepted), SENT (published or polled), OK (the device answered,
`<cmd>_info` its result) or ERROR (`<cmd>_info` says why). Pending polled commands are kept in
this process's memory (at most MAX_POLLED per device).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from urbis.agents.device_cache import DeviceCache
from urbis.agents.device_write import write_values
from urbis.agents.measure_plan import command_names
from urbis.agents.mqtt_topics import AUTO, Topic, command_topic, configuration_topic, format_of
from urbis.broker.entities import EntityService
from urbis.context.actor import Actor
from urbis.context.devices import Device
from urbis.context.jsonld import TermMap
from urbis.context.model import now_iso
from urbis.decoders import json_measures, ultralight
from urbis.decoders.base import CommandResult, DecodeError, EncodeError
from urbis.security.policy import internal
from urbis.storage.devices_base import Scope

if TYPE_CHECKING:
    from urbis.agents.mqtt import MqttTransport

log = logging.getLogger(__name__)
PENDING, SENT, OK, ERROR = "PENDING", "SENT", "OK", "ERROR"
MAX_POLLED = 100
HTTP_TIMEOUT = 10.0
INDEX_PAGE = 1000


class CommandService:
    """Sends commands to devices and records their answers on the devices' entities."""

    def __init__(self, entities: EntityService, cache: DeviceCache, tm: TermMap) -> None:
        self.entities = entities
        self.cache = cache
        self.tm = tm
        self.mqtt: MqttTransport | None = None
        self._index: dict[str, dict[str, Device]] = {}  # tenant -> entity id -> device
        self._generation = cache.generation
        self._polled: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    @internal
    async def close(self) -> None:
        """Let commands being sent finish; close the HTTP client."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=HTTP_TIMEOUT)
        if self._http is not None:
            await self._http.aclose()

    # --- from the NGSI-LD API ----------------------------------------------------------------

    @internal  # EntityService.after_patch: the caller's write permission was checked there
    async def on_patch(self, actor: Actor, entity_id: str, iris: list[str]) -> None:
        """Send the commands among the patched attributes of an entity (never raises: the
        PATCH is committed; a failure to look the device up is logged)."""
        try:
            await self._on_patch(actor, entity_id, iris)
        except Exception:
            log.warning("iot agent: commands of %s not sent", entity_id, exc_info=True)

    async def _on_patch(self, actor: Actor, entity_id: str, iris: list[str]) -> None:
        device = await self._device(actor.tenant, entity_id)
        if device is None:
            return
        group = await self._group(device)
        by_iri = {self.tm.expand(n): n for n in command_names(device, group)}
        wanted = [by_iri[i] for i in iris if i in by_iri]
        if not wanted:
            return
        entity = await self.entities.get(actor, entity_id)
        for name in wanted:
            inst = entity.instance(self.tm.expand(name), None)
            params = inst.get("value") if inst else None
            task = asyncio.ensure_future(self.send(device, name, params))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _device(self, tenant: str, entity_id: str) -> Device | None:
        if self._generation != self.cache.generation:  # devices changed: index again
            self._index.clear()
            self._generation = self.cache.generation
        index = self._index.get(tenant)
        if index is None:
            index = self._index[tenant] = await self._load_index(tenant)
        return index.get(entity_id)

    async def _load_index(self, tenant: str) -> dict[str, Device]:
        out: dict[str, Device] = {}
        offset = 0
        while True:
            page, total = await self.cache.store.devices(Scope(tenant, None, INDEX_PAGE, offset))
            out.update((d.entity_name, d) for d in page)
            offset += len(page)
            if not page or offset >= total:
                return out

    async def _group(self, device: Device) -> Any:
        if not device.apikey:
            return None
        plan = await self.cache.compile(device)
        return plan.group

    # --- sending -----------------------------------------------------------------------------

    @internal
    async def send(self, device: Device, name: str, params: Any) -> None:
        """Send one command to a device and record its status (never raises)."""
        group = await self._group(device)
        setting = {**(group.body if group else {}), **device.body}
        fmt = format_of(setting.get("protocol"), None)
        await self.record(device, name, PENDING)
        try:
            if setting.get("endpoint"):
                await self._push(device, str(setting["endpoint"]), fmt, name, params)
            elif self.mqtt is not None and str(setting.get("transport", "MQTT")).upper() \
                    != "HTTP":
                await self.mqtt.publish(command_topic(device.apikey, device.device_id),
                                        _payload(fmt, device.device_id, name, params))
                await self.record(device, name, SENT)
            else:
                queue = self._polled.setdefault((device.apikey, device.device_id), [])
                queue[:] = [*[c for c in queue if c[0] != name], (name, params)][-MAX_POLLED:]
        except (EncodeError, ConnectionError, httpx.HTTPError) as exc:
            await self.record(device, name, ERROR, f"{type(exc).__name__}: {exc}"[:500])
        except Exception as exc:  # a bug must not leave the command PENDING silently
            log.exception("iot agent: command %s of %s failed", name, device.device_id)
            await self.record(device, name, ERROR, type(exc).__name__)

    async def _push(self, device: Device, endpoint: str, fmt: str, name: str,
                    params: Any) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        body = _payload(fmt, device.device_id, name, params)
        kind = "application/json" if fmt == "json" else "text/plain"
        r = await self._http.post(endpoint, content=body, headers={"Content-Type": kind})
        if r.status_code >= 300:
            await self.record(device, name, ERROR, f"the device answered {r.status_code}")
            return
        results = parse_results(fmt, r.content, device.device_id) if r.content.strip() else []
        found = [res for res in results if res.name == name]
        await self.record(device, name, OK, found[0].result if found else r.text[:500])

    @internal
    async def poll(self, apikey: str, device_id: str) -> str:
        """The commands waiting for a polling device as UltraLight (`#`-joined), now SENT."""
        waiting = self._polled.pop((apikey, device_id), [])
        plan = await self.cache.plan(apikey, device_id) if waiting else None
        if plan is None:
            return ""
        lines = []
        for name, params in waiting:
            try:
                lines.append(_payload("ultralight", device_id, name, params).decode())
            except EncodeError as exc:
                await self.record(plan.device, name, ERROR, str(exc))
                continue
            await self.record(plan.device, name, SENT)
        return "#".join(lines)

    @internal
    async def http_results(self, apikey: str, device_id: str, payload: bytes) -> bool:
        """UltraLight command answers POSTed to /iot/d; False if the device is unknown."""
        plan = await self.cache.plan(apikey, device_id)
        if plan is None:
            return False
        await self.results(plan.device, parse_results("ultralight", payload, device_id))
        return True

    # --- answers -----------------------------------------------------------------------------

    @internal
    async def results(self, device: Device, results: Sequence[CommandResult]) -> None:
        """Record a device's answers to its commands."""
        for res in results:
            await self.record(device, res.name, OK, res.result)

    @internal
    async def on_cmdexe(self, topic: Topic, payload: bytes) -> None:
        """An answer on `/<apikey>/<device>/cmdexe` (MQTT)."""
        plan = await self.cache.plan(topic.apikey, topic.device_id)
        if plan is None:
            self._dead(topic, "unknown_device", "cmdexe of an unknown device", payload)
            return
        fmt = topic.format if topic.format != AUTO else format_of(
            plan.device.body.get("protocol"), payload)
        try:
            results = parse_results(fmt, payload, topic.device_id)
        except DecodeError as err:
            self._dead(topic, err.reason, err.message, payload, plan.tenant)
            return
        await self.results(plan.device, results)

    @internal
    async def on_configuration(self, topic: Topic, payload: bytes) -> None:
        """A device asks for attributes of its entity: answered on .../configuration/values."""
        plan = await self.cache.plan(topic.apikey, topic.device_id)
        try:
            fields = json_measures.load(payload).get("fields")
        except (DecodeError, AttributeError):
            fields = None
        if plan is None or not isinstance(fields, list) or self.mqtt is None:
            self._dead(topic, "syntax", "a configuration request is "
                       '{"type": "configuration", "fields": [...]} of a known device', payload)
            return
        entity = await self.entities.store.get(plan.tenant, plan.entity_id)
        answer: dict[str, Any] = {"type": "configuration", "dt": now_iso()}
        for name in (f for f in fields if isinstance(f, str)):
            inst = entity.instance(self.tm.expand(name), None) if entity else None
            answer[name] = inst.get("value", inst.get("object")) if inst else None
        await self.mqtt.publish(configuration_topic(topic.apikey, topic.device_id),
                                orjson.dumps(answer))

    def _dead(self, topic: Topic, reason: str, detail: str, payload: bytes,
              tenant: str | None = None) -> None:
        if self.mqtt is not None:
            self.mqtt.ingest.dead.record(tenant, topic.apikey, topic.device_id, "mqtt", reason,
                                         detail, payload)

    # --- the status attributes ---------------------------------------------------------------

    @internal
    async def record(self, device: Device, name: str, status: str, info: Any = None) -> None:
        """Write `<name>_status` (and `<name>_info` when given) on the device's entity."""
        values = {f"{name}_status": status}
        if info is not None:
            values[f"{name}_info"] = info
        await write_values(self.entities, self.tm, device, values, "CommandService.record")


def _payload(fmt: str, device_id: str, name: str, params: Any) -> bytes:
    """A command as the device's protocol writes it."""
    if fmt == "json":
        return json_measures.format_command(name, params)
    return ultralight.format_command(device_id, name, None if params == "" else params).encode()


def parse_results(fmt: str, payload: bytes | str, device_id: str) -> list[CommandResult]:
    """A device's answer(s) to commands, in its protocol; DecodeError if it is none."""
    if fmt == "json":
        return json_measures.parse_command_results(payload, device_id)
    return [ultralight.parse_command_result(line)
            for line in (payload.decode("utf-8", "replace") if isinstance(payload, bytes)
                         else payload).split("#") if line.strip()]
