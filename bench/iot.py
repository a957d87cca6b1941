"""IoT agent benchmark: `python -m bench.iot [--store URL] [--rate R] [--seconds S] ...`.

MQTT measures of `--devices` simulated devices go through Mosquitto (127.0.0.1:1883) into the
broker's context (history on) at QoS 1. The agent runs in this process on a fresh store (one
urbis worker: the IoT agent's MQTT transport, ingestion pipeline and store); a publisher
process of its own publishes UltraLight measures `t|<value>|ts|<send time>` round robin over
the devices at `--rate` messages/s (0: as fast as the broker acknowledges) for `--seconds`.

Reported: measures/s written (over the time from the first publish to the last write),
published vs written (lost = published - written - rejected), and the publish-to-context
latency p50 / p99 / max (from the send time in the payload to the commit of its batch, taken
where the pipeline marks a message written).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.backends import fresh_database
from urbis.agents.coalesce import Item
from urbis.agents.iot_agent import IotAgent, build_iot_agent
from urbis.agents.mqtt import MqttTransport
from urbis.broker.container import build_broker
from urbis.context.actor import ADMIN, Actor
from urbis.settings import load_settings

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


def publisher(apikey: str, devices: int, rate: float, seconds: float, out: Connection) -> None:
    """Publish for `seconds` (paho, QoS 1); send back how many the broker acknowledged."""
    import paho.mqtt.client as mqtt

    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{apikey}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(5000)
    client.on_publish = on_publish
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    out.recv()  # go
    start = time.time()
    sent = 0
    while (now := time.time()) - start < seconds:
        if rate and sent >= rate * (now - start):
            time.sleep(0.001)
            continue
        device = sent % devices
        client.publish(f"/{apikey}/d{device}/attrs", f"t|{sent % 40}|ts|{time.time():.6f}",
                       qos=1)
        sent += 1
    deadline = time.time() + 30
    while acked < sent and time.time() < deadline:
        time.sleep(0.01)
    client.loop_stop()
    client.disconnect()
    out.send({"sent": sent, "acked": acked, "seconds": time.time() - start})


class Tally:
    """Written messages and their publish-to-commit latencies."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.first = 0.0
        self.last = 0.0

    def wrap(self, agent: IotAgent) -> None:
        """Note every message the pipeline marks written (bench-only instrumentation)."""
        ingest = agent.ingest
        original = ingest._written

        def written(item: Item, now: str) -> None:
            original(item, now)
            t = time.time()
            payload = item.meta[1].payload
            sent = float(payload.rsplit(b"|", 1)[1])
            self.latencies.append(t - sent)
            self.last = t

        ingest._written = written  # type: ignore[method-assign]


async def provision(agent: IotAgent, apikey: str, devices: int) -> None:
    """One group and its devices (as the provisioning API would)."""
    actor = Actor(tenant="bench", principal="bench", roles=frozenset({ADMIN}))
    await agent.devices.create_groups(actor, {"services": [{
        "apikey": apikey, "entity_type": "Thermometer", "resource": "/iot/d",
        "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"},
                       {"object_id": "ts", "name": "sentAt", "type": "Number"}]}]})
    for start in range(0, devices, 1000):
        await agent.devices.create_devices(actor, {"devices": [
            {"device_id": f"d{i}", "protocol": "PDI-IoTA-UltraLight"}
            for i in range(start, min(devices, start + 1000))]})


async def run(store: str, devices: int, rate: float, seconds: float) -> dict[str, Any]:
    """One run; the figures."""
    settings = load_settings(env={}, store=store, auth=False, history=True)
    broker = await build_broker(settings)
    agent = build_iot_agent(replace(settings, iota_health_interval=0), broker)
    apikey = f"bench{uuid.uuid4().hex[:8]}"
    tally = Tally()
    try:
        await provision(agent, apikey, devices)
        agent.use_mqtt(MqttTransport(f"mqtt://{MQTT_HOST}:{MQTT_PORT}", agent.ingest,
                                     client_id=f"bench-agent-{apikey}", session_expiry=60))
        agent.start()
        assert agent.mqtt is not None
        await asyncio.wait_for(agent.mqtt.connected.wait(), 10)
        tally.wrap(agent)
        here, there = multiprocessing.Pipe()
        proc = multiprocessing.get_context("spawn").Process(
            target=publisher, args=(apikey, devices, rate, seconds, there))
        proc.start()
        first = time.time()
        here.send("go")
        while not here.poll():
            await asyncio.sleep(0.2)
        published = here.recv()
        proc.join()
        await _drain(tally, published["acked"])
    finally:
        await agent.close()
        await broker.close()
    return _figures(tally, published, first, seconds)


async def _drain(tally: Tally, expected: int, quiet: float = 5.0) -> None:
    """Wait until every acknowledged message is written, or nothing moved for `quiet` s."""
    seen, since = -1, time.time()
    while len(tally.latencies) < expected and time.time() - since < quiet:
        if len(tally.latencies) != seen:
            seen, since = len(tally.latencies), time.time()
        await asyncio.sleep(0.1)


def _figures(tally: Tally, published: dict[str, Any], first: float, seconds: float
             ) -> dict[str, Any]:
    lat = sorted(tally.latencies) or [0.0]

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1)

    written = len(tally.latencies)
    span = max(tally.last - first, 1e-9)
    return {"published": published["sent"], "acked_by_broker": published["acked"],
            "written": written, "lost": published["acked"] - written,
            "publish_rate": round(published["sent"] / seconds),
            "written_per_s": round(written / span), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "max_ms": pct(1.0)}


def main() -> None:
    """Parse the options, run, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="", help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=3000, help="messages/s; 0: as fast as acked")
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    with ExitStack() as stack:
        store = args.store
        if not store:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="urbis-bench-iot-"))
            store = f"sqlite:///{Path(folder) / 'urbis.db'}"
        elif store.startswith("postgresql"):
            store = stack.enter_context(fresh_database(store))
        figures = asyncio.run(run(store, args.devices, args.rate, args.seconds))
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
