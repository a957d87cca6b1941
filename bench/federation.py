"""What a federated query costs: a page answered by two department brokers vs a local one.

Four `urbis serve` processes on loopback, fresh SQLite stores: `local` holds every bench
entity; `dept-1` and `dept-2` hold half of them each; `city` holds none and has one
inclusive registration per department for the queried type. The same query (`type`, a page
of `--limit` entities, normalized) is sent to `local` and to `city`, alternately, by
`--connections` clients (keep-alive, one thread each) for `--seconds`; both answers are
checked to hold the same entities. Reported: requests/s and latency percentiles of each,
and the ratio city / local of the mean latency (the goal: at most 2).

    .venv/bin/python -m bench.federation [--entities 200] [--limit 100] [--seconds 5]
        [--connections 1,8] [--rounds 2] [--sync normal]

Half of the bench entities have the queried type: with the defaults the answer is the 100
matching entities, 50 from each department. With more entities than 2 x limit the query is
one page of a larger set, which costs each department O+L entities (docs/api.md).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from bench import data
from bench.load import load
from bench.server import HOST, Server

QUERY_TYPE = data.TYPES[0]


def bodies(entities: list[dict[str, Any]], size: int = 100) -> list[bytes]:
    """Batch upsert bodies of these entities."""
    return [orjson.dumps(entities[i:i + size]) for i in range(0, len(entities), size)]


def register(city: Server, dept: Server) -> None:
    """Register a department at the city for the queried type."""
    body = orjson.dumps({"type": "ContextSourceRegistration", "endpoint": dept.url,
                         "information": [{"entities": [{"type": QUERY_TYPE}]}]})
    conn = http.client.HTTPConnection(HOST, city.port, timeout=10)
    conn.request("POST", "/ngsi-ld/v1/csourceRegistrations", body=body,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 201:
        raise SystemExit(f"registration refused: {response.status}")


def fetch(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes, str | None]:
    """(status, body, NGSILD-Warning) of one GET."""
    conn.request("GET", path, headers={"Accept": "application/json"})
    response = conn.getresponse()
    return response.status, response.read(), response.getheader("NGSILD-Warning")


def drive(port: int, path: str, seconds: float, connections: int) -> dict[str, Any]:
    """`connections` clients sending `path` for `seconds`: req/s and latencies (ms)."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        while time.perf_counter() < stop:
            start = time.perf_counter()
            status, _, warning = fetch(conn, path)
            latencies[n].append(time.perf_counter() - start)
            if status != 200 or warning:
                errors.append(f"{status} {warning}")
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = sorted(x * 1000 for lat in latencies for x in lat)
    if errors:
        raise SystemExit(f"errors: {errors[:3]}")
    return {"requests_per_s": round(len(flat) / elapsed, 1),
            "mean_ms": round(statistics.fmean(flat), 2),
            "p50_ms": round(flat[len(flat) // 2], 2),
            "p95_ms": round(flat[int(len(flat) * 0.95)], 2)}


def same_answer(local: Server, city: Server, path: str) -> None:
    """Both brokers answer the query with the same entities."""
    answers = []
    for server in (local, city):
        conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
        status, body, warning = fetch(conn, path)
        conn.close()
        if status != 200 or warning:
            raise SystemExit(f"{server.url} answered {status} {warning}")
        answers.append(sorted(e["id"] for e in orjson.loads(body)))
    if answers[0] != answers[1]:
        raise SystemExit("the city's answer differs from the local one")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print one JSON line per (connections, target) and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=200)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sync", choices=("full", "normal"), default="normal")
    args = parser.parse_args(argv)
    everything = list(data.entities(args.entities))
    path = "/ngsi-ld/v1/entities?" + urlencode({"type": QUERY_TYPE, "limit": args.limit})
    with tempfile.TemporaryDirectory(prefix="urbis-fed-bench-") as tmp:
        dirs = {name: Path(tmp) / name for name in ("local", "dept-1", "dept-2", "city")}
        for folder in dirs.values():
            folder.mkdir()
        env = {"URBIS_IOTA_PORT": "0", "URBIS_IOTA_HTTP_PORT": "0"}  # several servers at once
        servers = {name: Server(folder, synchronous=args.sync, env=env)
                   for name, folder in dirs.items()}
        try:
            for server in servers.values():
                server.start()
            load(servers["local"].port, bodies(everything), len(everything))
            for n, name in enumerate(("dept-1", "dept-2")):
                half = len(everything) // 2
                part = everything[n * half:(n + 1) * half]
                load(servers[name].port, bodies(part), len(part))
                register(servers["city"], servers[name])
            same_answer(servers["local"], servers["city"], path)
            results = run(servers, path, args)
        finally:
            for server in servers.values():
                server.stop()
    report(results, args)
    return 0


def run(servers: dict[str, Server], path: str, args: argparse.Namespace
        ) -> dict[tuple[int, str], list[dict[str, Any]]]:
    """Alternate local and city for every connection count, `rounds` times."""
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for name in ("local", "city"):  # warm-up: connections, caches, compiled contexts
        drive(servers[name].port, path, 1.0, 2)
    for _ in range(args.rounds):
        for conns in (int(c) for c in args.connections.split(",")):
            for name in ("local", "city"):
                got = drive(servers[name].port, path, args.seconds, conns)
                results.setdefault((conns, name), []).append(got)
    return results


def report(results: dict[tuple[int, str], list[dict[str, Any]]], args: argparse.Namespace
           ) -> None:
    """One JSON line per (connections, target), then city / local per connection count."""
    for (conns, name), runs in sorted(results.items()):
        print(json.dumps({"target": name, "connections": conns, "entities": args.entities,
                          "limit": args.limit, "runs": runs}))
    for conns in sorted({c for c, _ in results}):
        local = statistics.fmean(r["mean_ms"] for r in results[(conns, "local")])
        city = statistics.fmean(r["mean_ms"] for r in results[(conns, "city")])
        print(json.dumps({"connections": conns, "local_mean_ms": round(local, 2),
                          "city_mean_ms": round(city, 2),
                          "ratio_city_local": round(city / local, 2),
                          "goal_met": city / local <= 2.0}))


if __name__ == "__main__":
    raise SystemExit(main())
