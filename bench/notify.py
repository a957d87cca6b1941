"""Notification benchmark: `python -m bench.notify [--store URL] [--seconds S] [--fanout K ...]`.

Starts `urbis serve` on a fresh store and a notification receiver in a process of its own (a
minimal HTTP/1.1 server, or an MQTT subscriber on Mosquitto at 127.0.0.1:1883), creates
entities, then K subscriptions that each match every entity, and PATCHes the entities from C
keep-alive connections for S seconds. Every PATCH writes a sequence number; the receiver
notes when each (subscription, number) arrives. Reported: writes/s, notifications delivered
per second (over the time from the first write to the last delivery), change-to-delivery
latency (from the 2xx of the write to the arrival) p50 / p99, and notifications lost or
duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from bench.backends import fresh_database
from bench.server import HOST, Server, free_port

ENTITY = "urn:ngsi-ld:Meter:{}"


@dataclass
class Tally:
    """What the receiver saw, and when each write was acknowledged."""

    acks: dict[int, float] = field(default_factory=dict)
    arrivals: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    first_write: float = 0.0

    def arrive(self, channel: str, body: dict[str, Any]) -> None:
        now = time.time()
        for item in body.get("data", ()):
            self.arrivals.setdefault((channel, int(item["seq"])), []).append(now)


class _Receiver(asyncio.Protocol):
    """HTTP/1.1 keep-alive receiver: parses Content-Length bodies, answers 204."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = head.split(" ", 2)[1]
            self.tally.arrive(path, orjson.loads(body))
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                   path: str, body: Any) -> int:
    data = orjson.dumps(body)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json"
                 f"\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(head.split(" ", 2)[1])


async def _writer(port: int, entities: int, start: int, step: int, until: float,
                  tally: Tally) -> int:
    reader, writer = await asyncio.open_connection(HOST, port)
    n, done = start, 0
    try:
        while time.time() < until:
            path = f"/ngsi-ld/v1/entities/{ENTITY.format(n % entities)}/attrs/seq"
            status = await _request(reader, writer, "PATCH", path, {"value": n})
            if status != 204:
                raise RuntimeError(f"PATCH answered {status}")
            tally.acks[n] = time.time()
            n, done = n + step, done + 1
    finally:
        writer.close()
    return done


async def _setup(port: int, entities: int, uris: list[str]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for start in range(0, entities, 100):
            batch = [{"id": ENTITY.format(i), "type": "Meter",
                      "seq": {"type": "Property", "value": -1}}
                     for i in range(start, min(entities, start + 100))]
            status = await _request(reader, writer, "POST",
                                    "/ngsi-ld/v1/entityOperations/upsert", batch)
            assert status in (201, 204), status
        for uri in uris:
            sub = {"type": "Subscription", "entities": [{"type": "Meter"}],
                   "watchedAttributes": ["seq"],
                   "notification": {"format": "keyValues", "attributes": ["seq"],
                                    "endpoint": {"uri": uri}}}
            assert await _request(reader, writer, "POST", "/ngsi-ld/v1/subscriptions",
                                  sub) == 201
    finally:
        writer.close()


async def _mqtt_listener(tally: Tally, ready: asyncio.Event) -> None:
    import aiomqtt

    async with aiomqtt.Client(HOST, 1883, max_queued_incoming_messages=0) as client:
        await client.subscribe("urbis/bench/#")
        ready.set()
        async for message in client.messages:
            payload = orjson.loads(message.payload)  # type: ignore[arg-type]
            tally.arrive(str(message.topic), payload["body"])


def _receive(kind: str, port: int, channels: list[str], pipe: Connection) -> None:
    """The receiver's process: records arrivals until told to stop, then sends them back."""

    async def main() -> None:
        tally = Tally()
        loop = asyncio.get_running_loop()
        if kind == "http":
            server = await loop.create_server(lambda: _Receiver(tally), HOST, port)
        else:
            ready = asyncio.Event()
            listener = asyncio.create_task(_mqtt_listener(tally, ready))
            await asyncio.wait_for(ready.wait(), 10)
        pipe.send("ready")
        while True:
            if not await loop.run_in_executor(None, pipe.poll, 0.2):
                continue
            if pipe.recv() == "count":
                pipe.send(len(tally.arrivals))
                continue
            pipe.send(tally.arrivals)
            break
        if kind == "http":
            server.close()
        else:
            listener.cancel()

    asyncio.run(main())


async def run(kind: str, store: str | None, fanout: int, seconds: float, conns: int,
              entities: int, sync: str) -> dict[str, Any]:
    """One measurement; its figures."""
    tally = Tally()
    rport = free_port()
    if kind == "http":
        channels = [f"/s{k}" for k in range(fanout)]
        uris = [f"http://{HOST}:{rport}{c}" for c in channels]
    else:
        channels = [f"urbis/bench/s{k}" for k in range(fanout)]
        uris = [f"mqtt://{HOST}:1883/{c}" for c in channels]
    mine, theirs = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=_receive, args=(kind, rport, channels, theirs),
                                       daemon=True)
    receiver.start()
    assert mine.recv() == "ready"
    with tempfile.TemporaryDirectory() as tmp, \
            Server(Path(tmp), synchronous=sync, store=store) as server:
        await _setup(server.port, entities, uris)
        await asyncio.sleep(1.0)  # the set-up's own notifications (none expected) drain
        cpu = _cpu_seconds(server.pid)
        tally.first_write = time.time()
        until = tally.first_write + seconds
        writes = sum(await asyncio.gather(*(
            _writer(server.port, entities, c, conns, until, tally) for c in range(conns))))
        await _drain(mine, len(channels) * len(tally.acks))
        cpu = _cpu_seconds(server.pid) - cpu
    mine.send("stop")
    tally.arrivals = mine.recv()
    receiver.join(10)
    expected = {(c, n) for c in channels for n in tally.acks}
    figures = _figures(kind, fanout, seconds, conns, writes, expected, tally)
    # Server CPU per write and per notification: what the machine's other load cannot skew.
    figures["server_cpu_us_per_write"] = round(cpu / max(writes, 1) * 1e6)
    return figures


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drain(pipe: Connection, expected: int, patience: float = 15.0) -> None:
    """Wait until every notification arrived, or none came for `patience` seconds."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < patience:
        pipe.send("count")
        count = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        if count >= expected:
            return
        if count != last:
            last, since = count, time.monotonic()
        await asyncio.sleep(0.5)


def _figures(kind: str, fanout: int, seconds: float, conns: int, writes: int,
             expected: set[tuple[str, int]], tally: Tally) -> dict[str, Any]:
    got = {k: v for k, v in tally.arrivals.items() if k in expected}
    latencies = sorted(max(0.0, min(times) - tally.acks[n]) * 1000
                       for (_, n), times in got.items())
    last = max((max(t) for t in got.values()), default=tally.first_write)
    span = max(last - tally.first_write, 1e-9)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) \
            if latencies else float("nan")

    return {"endpoint": kind, "subscriptions": fanout, "seconds": seconds, "connections": conns,
            "writes": writes, "writes_per_s": round(writes / seconds),
            "notifications": len(got), "notifications_per_s": round(len(got) / span),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "lost": len(expected) - len(got),
            "duplicates": sum(len(t) - 1 for t in got.values())}


@contextlib.contextmanager
def _store(url: str | None) -> Iterator[str | None]:
    """A fresh database on the server of a postgresql:// URL (else the URL itself)."""
    if url is None or not url.startswith("postgres"):
        yield url
        return
    with fresh_database(url) as fresh:
        yield fresh


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="store URL (default: a fresh SQLite "
                        "file; a postgresql:// URL: a fresh database on that server)")
    parser.add_argument("--sync", default="full", choices=("full", "normal"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--fanout", type=int, nargs="+", default=[0, 1, 10],
                        help="subscriptions per change (0: the write rate without any)")
    parser.add_argument("--endpoints", nargs="+", default=["http", "mqtt"],
                        choices=("http", "mqtt"))
    args = parser.parse_args()
    results = []
    for kind in args.endpoints:
        for fanout in args.fanout:
            with _store(args.store) as store:
                figures = asyncio.run(run(kind, store, fanout, args.seconds, args.conns,
                                          args.entities, args.sync))
            print(json.dumps(figures), flush=True)
            results.append(figures)
    print("| endpoint | subscriptions | writes/s | notifications/s | p50 ms | p99 ms | lost | "
          "duplicates | server CPU µs / write |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['endpoint']} | {r['subscriptions']} | {r['writes_per_s']:,} | "
              f"{r['notifications_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} | {r['lost']} | "
              f"{r['duplicates']} | {r['server_cpu_us_per_write']:,} |")


if __name__ == "__main__":
    main()
