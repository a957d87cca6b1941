"""Sample Smart Data Models entities for the demo."""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from urbis.broker.container import Broker
from urbis.context.actor import Actor

log = logging.getLogger(__name__)


def sample_entities() -> list[dict[str, Any]]:
    """The bundled example entities (each with its own @context)."""
    folder = resources.files("urbis.data.samples")
    out = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".jsonld"):
            out.append(json.loads(item.read_text("utf-8")))
    return out


async def load_samples(broker: Broker, actor: Actor | None = None) -> int:
    """Upsert every sample entity; returns how many were loaded."""
    actor = actor or Actor()
    broker.contexts.preload_bundled()
    loaded = 0
    for entity in sample_entities():
        tm = await broker.contexts.term_map(entity.get("@context"))
        result = await broker.batch.upsert(actor, [entity], tm, update=False)
        for eid, err in result.errors:
            log.warning("sample %s not loaded: %s", eid, err.detail)
        loaded += len(result.success)
    return loaded
