"""Helpers of the feed tests: the example definitions, entity reads through the API, what the
loopback HTTP server serves."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from urbis.agents.feed_definition import FeedDefinition

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "feeds"
DATA = ROOT / "tests" / "fixtures" / "datasets"
SHARED = Path("/work/shared/data/datasets")
PARKING = "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld"
AIR = ("https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
       "context.jsonld")
MOBILITY = ("https://raw.githubusercontent.com/smart-data-models/dataModel.UrbanMobility/"
            "master/context.jsonld")


def example(file: str, **changes: Any) -> FeedDefinition:
    """An example definition of examples/feeds, with some fields replaced."""
    definition = FeedDefinition.from_file(EXAMPLES / f"{file}.toml")
    return dataclasses.replace(definition, **changes)


async def read(client: httpx.AsyncClient, entity_id: str, context: str, tenant: str = ""
               ) -> dict[str, Any]:
    """An entity as key-values, compacted with `context` (404 raises)."""
    headers = {"Link": f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                       'type="application/ld+json"'}
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    r = await client.get(f"/ngsi-ld/v1/entities/{entity_id}", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def count(client: httpx.AsyncClient, entity_type: str, context: str,
                tenant: str = "") -> int:
    """How many entities of a type the tenant holds."""
    headers = {"Link": f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                       'type="application/ld+json"'}
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    r = await client.get("/ngsi-ld/v1/entities", headers=headers,
                         params={"type": entity_type, "count": "true", "limit": "0"})
    assert r.status_code == 200, r.text
    return int(r.headers["NGSILD-Results-Count"])


@dataclass
class Served:
    """What the loopback server serves and what it saw."""

    url: str
    routes: dict[str, Callable[[web.Request], Any]] = field(default_factory=dict)
    requests: list[web.Request] = field(default_factory=list)

    def at(self, path: str) -> str:
        """The URL of a path."""
        return f"{self.url}{path}"


