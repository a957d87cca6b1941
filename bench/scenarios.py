"""The measured scenarios: what wrk sends, and one probe request that must succeed first.

A probe catches a broken endpoint before it is "measured": an endpoint that answers 4xx/5xx
fast would otherwise look like a fine result.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from bench import data
from bench.server import HOST

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True)
class Plan:
    """What the scenarios need to know about the loaded data and the load to apply."""

    entities: int
    duration: float
    threads: int
    connections: int
    latency_connections: int
    bodies_file: Path
    city: data.City
    batch_size: int = 100
    seed: int = 7
    query_distance_m: int = 500
    query_q: str = "availableSpotNumber>10;status==\"open\""
    query_limit: int = 20


@dataclass(frozen=True)
class Scenario:
    """One wrk scenario."""

    name: str
    title: str
    script: str
    args: Callable[[Plan], tuple[str, ...]]
    probe: Callable[[int, Plan], None]
    latency: bool = False  # run at the low, latency-oriented concurrency
    batch: bool = False  # each request carries Plan.batch_size entities

    def connections(self, plan: Plan) -> int:
        """Open connections for this scenario."""
        return plan.latency_connections if self.latency else plan.connections


class ProbeError(RuntimeError):
    """The scenario's endpoint does not work; measuring it would be meaningless."""


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of one request."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {"Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _expect(name: str, got: tuple[int, bytes], *statuses: int) -> bytes:
    status, body = got
    if status not in statuses:
        raise ProbeError(f"{name}: expected HTTP {'/'.join(map(str, statuses))}, got {status}: "
                         f"{body[:400].decode(errors='replace')}")
    return body


def query_path(plan: Plan, lon: float, lat: float) -> str:
    """The query scenario's URL path around (lon, lat), as query.lua builds it."""
    params = {"type": "OffStreetParking", "q": plan.query_q,
              "georel": f"near;maxDistance=={plan.query_distance_m}", "geometry": "Point",
              "limit": str(plan.query_limit), "coordinates": f"[{lon:.6f},{lat:.6f}]"}
    return "/ngsi-ld/v1/entities?" + "&".join(f"{k}={quote(v, safe='')}"
                                              for k, v in params.items())


def _probe_health(port: int, plan: Plan) -> None:
    _expect("health", request(port, "GET", "/health"), 200)


def _probe_get(port: int, plan: Plan) -> None:
    body = _expect("get_entity", request(port, "GET", f"/ngsi-ld/v1/entities/{data.entity_id(0)}"),
                   200)
    if orjson.loads(body).get("id") != data.entity_id(0):
        raise ProbeError(f"get_entity: the answer is not entity {data.entity_id(0)}")


def _probe_patch(port: int, plan: Plan) -> None:
    path = f"/ngsi-ld/v1/entities/{data.entity_id(0)}/attrs/{data.PATCH_ATTRS[data.TYPES[0]]}"
    _expect("patch_attr", request(port, "PATCH", path, b'{"value": 7}', JSON_HEADERS), 204)


def _probe_query(port: int, plan: Plan) -> None:
    lon0, lat0, lon1, lat1 = plan.city.bbox
    path = query_path(plan, (lon0 + lon1) / 2, (lat0 + lat1) / 2)
    found = orjson.loads(_expect("query", request(port, "GET", path), 200))
    if not isinstance(found, list) or not found:
        raise ProbeError(f"query: expected some entities near the city centre, got {found!r:.300}")
    if any(e.get("type") != "OffStreetParking" for e in found):
        raise ProbeError("query: the answer has entities of another type")


def _probe_upsert(port: int, plan: Plan) -> None:
    first = plan.bodies_file.read_bytes().split(b"\n", 1)[0]
    _expect("upsert", request(port, "POST", "/ngsi-ld/v1/entityOperations/upsert", first,
                              JSON_HEADERS), 201, 204)


def _seed(plan: Plan) -> tuple[str, ...]:
    return (f"seed={plan.seed}",)


def _entities(plan: Plan) -> tuple[str, ...]:
    return (f"entities={plan.entities}", *_seed(plan))


def _query_args(plan: Plan) -> tuple[str, ...]:
    bbox = ",".join(f"{v:.6f}" for v in plan.city.bbox)
    return (f"bbox={bbox}", "type=OffStreetParking", f"q={plan.query_q}",
            f"distance={plan.query_distance_m}", f"limit={plan.query_limit}", *_seed(plan))


def _upsert_args(plan: Plan) -> tuple[str, ...]:
    return (f"bodies={plan.bodies_file}", *_seed(plan))


HEALTH = Scenario("health", "GET /health", "health.lua", _seed, _probe_health)
HEALTH_LATENCY = Scenario("health_latency", "GET /health (latency concurrency)", "health.lua",
                          _seed, _probe_health, latency=True)
SCENARIOS = {
    s.name: s for s in (
        HEALTH,
        HEALTH_LATENCY,
        Scenario("get_entity", "GET /entities/{id}", "get_entity.lua", _entities, _probe_get),
        Scenario("patch_attr", "PATCH /entities/{id}/attrs/{attr}", "patch_attr.lua",
                 _entities, _probe_patch),
        Scenario("query", "GET /entities?type&q&georel=near", "query.lua", _query_args,
                 _probe_query, latency=True),
        Scenario("upsert", "POST /entityOperations/upsert (existing entities)",
                 "upsert.lua", _upsert_args, _probe_upsert, batch=True),
    )
}
# The order they run in: reads before writes. /health runs first, just before each scenario
# at that scenario's concurrency (its paired baseline), and again last.
ORDER = ("health", "get_entity", "query", "patch_attr", "upsert")


def describe(plan: Plan) -> dict[str, Any]:
    """The parameters of the scenarios, for the result file."""
    return {"query": {"type": "OffStreetParking", "q": plan.query_q,
                      "georel": f"near;maxDistance=={plan.query_distance_m}",
                      "limit": plan.query_limit, "example": query_path(plan, *_centre(plan))}}


def _centre(plan: Plan) -> tuple[float, float]:
    return plan.city.lon, plan.city.lat
