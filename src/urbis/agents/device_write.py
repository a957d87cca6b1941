"""Write a few attributes of a device's entity as the IoT agent (command status, health)."""

from __future__ import annotations

import logging
from typing import Any

from urbis.agents.ingest import AGENT_PRINCIPAL
from urbis.agents.measure_map import Update, mutation
from urbis.broker.entities import EntityService
from urbis.context.actor import OPERATOR, Actor, Call, current_call
from urbis.context.devices import Device
from urbis.context.jsonld import TermMap
from urbis.context.model import PROPERTY, now_iso
from urbis.storage.base import Mutation

log = logging.getLogger(__name__)


def agent_actor(tenant: str) -> Actor:
    """The IoT agent acting in a tenant."""
    return Actor(tenant=tenant, principal=AGENT_PRINCIPAL, roles=frozenset({OPERATOR}))


async def write_values(entities: EntityService, tm: TermMap, device: Device,
                       values: dict[str, Any], operation: str) -> bool:
    """Set Properties (short name -> value) on the device's entity; False if not written."""
    now = now_iso()
    attrs = {tm.expand(name): [{"type": PROPERTY, "value": value, "observedAt": now}]
             for name, value in values.items()}
    update = Update(device.entity_name, tm.expand(device.entity_type), attrs)
    actor = agent_actor(device.tenant)
    token = current_call.set(Call(actor, operation))
    try:
        result = await entities.run_batch(
            actor, [Mutation(device.entity_name, mutation(update, now))], [])
    except Exception:
        log.warning("iot agent: cannot write %s on %s", sorted(values), device.entity_name,
                    exc_info=True)
        return False
    finally:
        current_call.reset(token)
    for entity_id, err in result.errors:
        log.warning("iot agent: %s refused %s: %s", entity_id, sorted(values), err)
    return not result.errors
