"""The ingestion pipeline: one transport-agnostic entry point for every device message.

A transport (the HTTP southbound here; MQTT and LoRaWAN webhooks build on the same) turns what
it received into an `Uplink` and calls one of:

    await ingest.submit(uplink)  # returns once the message is durable; raises Rejected
    await ingest.post(uplink)    # queued without waiting for the write (fire and forget)
    await ingest.enqueue(uplink, done)  # queued in order; done(None | Rejected) once settled

The steps: look up (apikey, device_id) -> Plan (urbis.agents.device_cache; a device the apikey's
group does not know is autoprovisioned when the group allows it) -> decode the payload (the
device's `payload_decoder`, else the transport's `format`) -> map the measures onto NGSI-LD
attribute instances (urbis.agents.measure_map) -> queue the message's entity updates in the
coalescing writer (urbis.agents.coalesce), which writes many messages per transaction through
`EntityService.run_batch` (history, notifications and audit follow as for any write). A
rejected message (unknown apikey or device, undecodable payload, wrong value, failing
expression, full queue, store failure) is counted and kept in the dead-letter log
(urbis.agents.dead_letters); nothing of it is written and the agent goes on.

Every written message marks its device seen: `last_seen(tenant, device_id)` answers from memory
and the registry's `last_seen` column is updated every SEEN_INTERVAL seconds in one statement
(what offline detection reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from urbis.agents.coalesce import Coalescer, Full, Item
from urbis.agents.dead_letters import DeadLetters
from urbis.agents.device_cache import DeviceCache, pick_group
from urbis.agents.measure_map import MappingError, Update, apply, mutation
from urbis.agents.measure_plan import Plan
from urbis.agents.mqtt_topics import AUTO, format_of
from urbis.broker.entities import EntityService
from urbis.context.actor import OPERATOR, Actor, Call, current_call
from urbis.context.devices import (
    OVERLOADED,
    STORE,
    UNKNOWN_APIKEY,
    UNKNOWN_DEVICE,
)
from urbis.context.errors import NgsiError, ServiceUnavailable
from urbis.context.jsonld import TermMap
from urbis.context.model import now_iso
from urbis.decoders import json_measures, ultralight
from urbis.decoders.base import DecodeError, Measurement, utc_iso
from urbis.decoders.registry import canonical, get_decoder
from urbis.observability.metrics import AGENT_MEASURES
from urbis.security.policy import internal
from urbis.storage.base import Mutation

if TYPE_CHECKING:
    from urbis.agents.devices import DeviceService

log = logging.getLogger(__name__)
SEEN_INTERVAL = 5.0
AGENT_PRINCIPAL = "iot-agent"
_STATUS = {UNKNOWN_APIKEY: 404, UNKNOWN_DEVICE: 404, OVERLOADED: 503, STORE: 503,
           "too_large": 413}


@dataclass(frozen=True, slots=True)
class Uplink:
    """One message of a device as a transport received it."""

    apikey: str
    device_id: str
    payload: bytes | str | None = None
    measurements: Sequence[Measurement] | None = None  # already decoded (a network server)
    format: str = "json"  # payload format when the device names no payload_decoder
    attr: str | None = None  # the single measure a transport names (MQTT .../attrs/<attr>)
    timestamp: str | None = None  # observation time the transport gives (HTTP `t=`)
    transport: str = "http"  # the `agent` label of the metrics
    resource: str | None = None  # the HTTP path: chooses among an apikey's groups
    received_at: str | None = None


def _protocol(plan: Plan) -> str | None:
    value = plan.device.body.get("protocol") or (plan.group.body.get("protocol")
                                                  if plan.group is not None else None)
    return value if isinstance(value, str) else None


def _outcome(future: asyncio.Future[None]) -> Rejected | None:
    if future.cancelled():
        return Rejected(OVERLOADED, "the message was not queued")
    error = future.exception()
    if error is None:
        return None
    return error if isinstance(error, Rejected) else Rejected(STORE, str(error))


class Rejected(Exception):
    """A message that was not written: `reason` (dead-letter reason) and an HTTP status."""

    def __init__(self, reason: str, detail: str, tenant: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.tenant = tenant
        self.status = _STATUS.get(reason, 400)


class IngestService:
    """Device messages in, entity updates written in batches."""

    def __init__(self, entities: EntityService, cache: DeviceCache, dead: DeadLetters,
                 devices: DeviceService, tm: TermMap, *, batch_size: int = 1000,
                 delay: float = 0.005, queue_size: int = 50_000) -> None:
        self.entities = entities
        self.cache = cache
        self.dead = dead
        self.devices = devices
        self.tm = tm
        self.queue = Coalescer(self._write, batch_size=batch_size, delay=delay,
                               queue_size=queue_size)
        self._seen: dict[tuple[str, str], str] = {}
        self.seen_plans: dict[tuple[str, str], Plan] = {}  # what device health judges
        self.on_seen: Callable[[tuple[str, str], Plan], None] | None = None
        self._unsaved: set[tuple[str, str]] = set()
        self._provisioning: dict[tuple[str, str], asyncio.Task[Plan]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ok: dict[str, Any] = {}  # the `ok` counter of each transport

    def start(self) -> None:
        """Start recording last-seen times in the background."""
        self._task = asyncio.create_task(self._seen_loop(), name="urbis-iot-last-seen")

    @internal
    async def close(self) -> None:
        """Write what is queued, then the last-seen times."""
        await self.queue.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.save_seen()

    @internal  # the apikey is the device's credential: an unknown one is rejected here
    async def submit(self, uplink: Uplink) -> int:
        """Write one message; returns its number of entity updates once they are durable."""
        item = await self._prepare(uplink)
        item.future = asyncio.get_running_loop().create_future()
        try:
            await self.queue.put(item)
        except Full as exc:
            raise self._reject(uplink, OVERLOADED, str(exc), item.tenant) from None
        await item.future
        return len(item.updates)

    @internal
    async def enqueue(self, uplink: Uplink, done: Callable[[Rejected | None], None]) -> None:
        """Queue one message (waiting while the queue is full); `done(None)` once it is
        durable, `done(Rejected)` if it is not written. No task per message: a transport
        calling this in its receive loop keeps the order of its messages."""
        try:
            item = await self._prepare(uplink)
        except Rejected as err:
            done(err)
            return
        future = item.future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: done(_outcome(f)))
        try:
            await self.queue.put(item)
        except Full as exc:
            future.cancel()
            self._reject(uplink, OVERLOADED, str(exc), item.tenant)

    @internal
    async def post(self, uplink: Uplink) -> bool:
        """Queue one message without waiting for its write; False if it was rejected."""
        try:
            item = await self._prepare(uplink)
        except Rejected:
            return False
        try:
            self.queue.offer(item)
        except Full as exc:
            self._reject(uplink, OVERLOADED, str(exc), item.tenant)
            return False
        return True

    def last_seen(self, tenant: str, device_id: str) -> str | None:
        """When this process last wrote a message of the device (None: not since start)."""
        return self._seen.get((tenant, device_id))

    # --- the steps -------------------------------------------------------------------------

    async def _prepare(self, uplink: Uplink) -> Item:
        try:
            plan = await self._plan(uplink)
        except Rejected:
            raise
        except Exception as exc:  # the registry is out of reach: the device should retry
            log.warning("iot agent: cannot look up device %r: %r", uplink.device_id[:80], exc)
            raise self._reject(uplink, STORE, "the device registry is unavailable "
                               f"({type(exc).__name__})", None) from None
        measures = self._decode(plan, uplink)
        when = self._when(plan, uplink)
        try:
            updates = apply(plan, measures, when, self.tm)
        except MappingError as err:
            raise self._reject(uplink, err.reason, err.detail, plan.tenant) from None
        return Item(plan.tenant, updates, meta=(plan, uplink))

    async def _plan(self, uplink: Uplink) -> Plan:
        plan = await self.cache.plan(uplink.apikey, uplink.device_id, uplink.resource)
        if plan is not None:
            return plan
        key = (uplink.apikey, uplink.device_id)
        task = self._provisioning.get(key)
        first = task is None
        if task is None:  # a task: a caller that goes away does not stop it for the others
            task = asyncio.create_task(self._autoprovision(uplink))
            self._provisioning[key] = task
            task.add_done_callback(lambda done: self._provisioned(key, done))
        try:
            return await asyncio.shield(task)
        except Rejected as err:
            if first:
                raise
            raise self._reject(uplink, err.reason, err.detail, err.tenant) from None

    def _provisioned(self, key: tuple[str, str], task: asyncio.Task[Plan]) -> None:
        self._provisioning.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: the callers that are still there get it

    async def _autoprovision(self, uplink: Uplink) -> Plan:
        group = pick_group(await self.cache.groups(uplink.apikey), uplink.resource)
        if group is None:
            raise self._reject(uplink, UNKNOWN_APIKEY, f"no service group has apikey "
                                                       f"{uplink.apikey!r:.80}", None)
        if group.body.get("autoprovision") is False:
            raise self._reject(uplink, UNKNOWN_DEVICE, f"device {uplink.device_id!r:.80} is not "
                               "provisioned and its group does not autoprovision", group.tenant)
        try:
            device = await self.devices.autoprovision(group, uplink.device_id)
        except NgsiError as err:
            raise self._reject(uplink, UNKNOWN_DEVICE, err.detail, group.tenant) from None
        return await self.cache.compile(device, uplink.resource)

    def _decode(self, plan: Plan, uplink: Uplink) -> list[Measurement]:
        if uplink.measurements is not None:
            return list(uplink.measurements)
        fmt = uplink.format
        if fmt == AUTO:  # an MQTT topic without /json or /ul: the device's protocol decides
            fmt = format_of(_protocol(plan), uplink.payload)
        name = canonical(plan.decoder or fmt)
        payload = uplink.payload if uplink.payload is not None else b""
        try:
            if uplink.attr and name == "json":
                return json_measures.decode_single(uplink.attr, payload)
            if uplink.attr and name == "ultralight":
                return ultralight.decode_single(uplink.attr, payload)
            return get_decoder(name)(payload)
        except DecodeError as err:
            raise self._reject(uplink, err.reason, err.message, plan.tenant) from None
        except KeyError as err:
            raise self._reject(uplink, "unsupported", str(err), plan.tenant) from None
        except Exception:  # a decoder bug must not stop the agent
            log.exception("payload decoder %s failed", name)
            raise self._reject(uplink, "syntax", f"the {name} decoder failed on this payload",
                               plan.tenant) from None

    def _when(self, plan: Plan, uplink: Uplink) -> str:
        if uplink.timestamp:
            try:
                return utc_iso(uplink.timestamp)
            except DecodeError as err:
                raise self._reject(uplink, err.reason, err.message, plan.tenant) from None
        return uplink.received_at or now_iso()

    def _reject(self, uplink: Uplink, reason: str, detail: str, tenant: str | None
                ) -> Rejected:
        self.dead.record(tenant, uplink.apikey, uplink.device_id, uplink.transport, reason,
                         detail, uplink.payload)
        return Rejected(reason, detail, tenant)

    # --- the batch writer ------------------------------------------------------------------

    async def _write(self, tenant: str, items: list[Item]) -> None:
        now = now_iso()
        updates: list[Update] = [u for item in items for u in item.updates]
        mutations = [Mutation(u.entity_id, mutation(u, now)) for u in updates]
        actor = Actor(tenant=tenant, principal=AGENT_PRINCIPAL, roles=frozenset({OPERATOR}))
        token = current_call.set(Call(actor, "IngestService.measures"))
        try:
            result = await self.entities.run_batch(actor, mutations, [])
        except Exception as exc:  # the store is down or refused the whole batch
            if len(items) > 1 and not isinstance(exc, ServiceUnavailable):
                half = len(items) // 2  # one message the store refuses must not sink the rest
                await self._write(tenant, items[:half])
                await self._write(tenant, items[half:])
                return
            log.warning("iot agent: a batch of %d messages was not written: %r", len(items), exc)
            for item in items:
                self._failed(item, f"the store did not write the measures ({type(exc).__name__})")
            return
        finally:
            current_call.reset(token)
        failed = {entity_id for entity_id, _ in result.errors}
        for item in items:
            if failed and any(u.entity_id in failed for u in item.updates):
                self._failed(item, "the store refused the update of " +
                             ", ".join(sorted({u.entity_id for u in item.updates} & failed)))
            else:
                self._written(item, now)

    def _written(self, item: Item, now: str) -> None:
        plan, uplink = item.meta
        counter = self._ok.get(uplink.transport)
        if counter is None:
            counter = self._ok[uplink.transport] = AGENT_MEASURES.labels(uplink.transport, "ok")
        counter.inc()
        key = (plan.tenant, plan.device.device_id)
        self._seen[key] = now
        self._unsaved.add(key)
        self.seen_plans[key] = plan
        if self.on_seen is not None:
            self.on_seen(key, plan)
        if item.future is not None and not item.future.done():
            item.future.set_result(None)

    def _failed(self, item: Item, detail: str) -> None:
        plan, uplink = item.meta
        error = self._reject(uplink, STORE, detail, plan.tenant)
        if item.future is not None and not item.future.done():
            item.future.set_exception(error)

    # --- last seen -------------------------------------------------------------------------

    @internal
    async def save_seen(self) -> None:
        """Write the last-seen times that changed since the last call (one statement)."""
        keys, self._unsaved = self._unsaved, set()
        seen = [(tenant, device_id, self._seen[(tenant, device_id)])
                for tenant, device_id in keys]
        if seen:
            try:
                await self.cache.store.touch(seen)
            except Exception:
                self._unsaved |= keys  # next time
                raise

    async def _seen_loop(self) -> None:
        while True:
            await asyncio.sleep(SEEN_INTERVAL)
            try:
                await self.save_seen()
            except Exception:  # the store is down: try again next time
                log.warning("iot agent: could not record last-seen times", exc_info=True)
