"""The IoT agent of one process: provisioning, the ingestion pipeline and the dead-letter log,
wired onto the broker's services and store."""

from __future__ import annotations

from dataclasses import dataclass

from urbis.agents.commands import CommandService
from urbis.agents.dead_letters import DeadLetters
from urbis.agents.device_cache import DeviceCache
from urbis.agents.devices import DeviceService
from urbis.agents.health import HealthChecker
from urbis.agents.ingest import IngestService
from urbis.agents.mqtt import MqttTransport
from urbis.agents.mqtt_embedded import EmbeddedBroker
from urbis.broker.container import Broker
from urbis.context.jsonld import core_term_map
from urbis.settings import Settings


@dataclass(slots=True)
class IotAgent:
    """Every service the /iot adapters (and the transports) call."""

    devices: DeviceService
    ingest: IngestService
    dead_letters: DeadLetters
    cache: DeviceCache
    commands: CommandService
    health: HealthChecker
    mqtt: MqttTransport | None = None
    embedded: EmbeddedBroker | None = None  # the demo's MQTT broker

    def start(self) -> None:
        """Start the background work: last-seen times, dead letters, MQTT."""
        self.ingest.start()
        self.dead_letters.start()
        self.health.start()
        if self.mqtt is not None:
            self.mqtt.start()

    def use_mqtt(self, transport: MqttTransport) -> None:
        """Measures and command answers from this MQTT connection, commands through it."""
        self.mqtt = self.commands.mqtt = transport
        transport.handlers.update(cmdexe=self.commands.on_cmdexe,
                                  configuration=self.commands.on_configuration)

    async def close(self) -> None:
        """Stop MQTT, write what is queued (measures, then dead letters and last-seen times)."""
        hooks = self.ingest.entities.after_patch
        if self.commands.on_patch in hooks:
            hooks.remove(self.commands.on_patch)
        if self.mqtt is not None:
            await self.mqtt.close()
        await self.commands.close()
        await self.health.close()
        await self.ingest.close()
        await self.dead_letters.close()
        if self.embedded is not None:
            await self.embedded.close()

    async def start_mqtt(self, settings: Settings, demo: bool = False) -> None:
        """Set up the MQTT transport: `iota_mqtt_url`, else an embedded broker in the demo."""
        url, v5 = settings.iota_mqtt_url, True
        if not url and demo and settings.workers == 1:  # one broker per worker would split
            self.embedded = EmbeddedBroker()
            await self.embedded.start()
            url, v5 = self.embedded.url, False
            print(f"urbis: embedded MQTT broker (demo) on {url}", flush=True)
        if url:
            self.use_mqtt(MqttTransport(url, self.ingest, client_id=settings.iota_mqtt_client_id,
                                        qos=settings.iota_mqtt_qos,
                                        shared=settings.workers > 1, v5=v5))


def build_iot_agent(settings: Settings, broker: Broker) -> IotAgent:
    """The agent's services on the broker's store (its DeviceStore)."""
    store = broker.stores.devices
    if store is None:
        raise RuntimeError("this store keeps no IoT device registry")
    tm = core_term_map()
    cache = DeviceCache(store, tm)
    if broker.stores.invalidations is not None:  # other workers change groups and devices
        broker.stores.invalidations.subscribe(cache.invalidate)
    devices = DeviceService(store, cache, default_limit=settings.default_limit,
                            max_limit=settings.max_limit)
    dead = DeadLetters(store, keep=settings.iota_dead_letters)
    ingest = IngestService(broker.entities, cache, dead, devices, tm,
                           batch_size=settings.iota_batch_size, delay=settings.iota_batch_delay,
                           queue_size=settings.iota_queue_size)
    commands = CommandService(broker.entities, cache, tm)
    broker.entities.after_patch.append(commands.on_patch)
    health = HealthChecker(ingest, tm, settings.iota_health_interval)
    return IotAgent(devices, ingest, dead, cache, commands, health)
