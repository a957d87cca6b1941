"""Wire the distributed-operation services (reads, writes, batches) for the Broker."""

from __future__ import annotations

from dataclasses import dataclass

from urbis.broker.batch import BatchService
from urbis.broker.contexts import ContextService
from urbis.broker.entities import EntityService
from urbis.broker.federation import Federation
from urbis.broker.federation_batch import DistributedBatch
from urbis.broker.federation_read import DistributedReads
from urbis.broker.federation_write import DistributedWrites
from urbis.broker.registrations import RegistrationService
from urbis.settings import Settings


@dataclass(slots=True)
class FederationServices:
    """The core (which sources, asking them) and the services adapters call."""

    federation: Federation
    reads: DistributedReads
    writes: DistributedWrites
    batch: DistributedBatch


def build_federation(settings: Settings, registrations: RegistrationService | None,
                     contexts: ContextService, entities: EntityService, batch: BatchService
                     ) -> FederationServices:
    """The services; without a registration store they are the local operations."""
    federation = Federation(registrations, contexts, alias=settings.source_name,
                            timeout=settings.federation_timeout,
                            cooldown=settings.federation_cooldown)
    return FederationServices(federation, DistributedReads(federation, entities,
                                                           settings.max_limit),
                              DistributedWrites(federation, entities),
                              DistributedBatch(federation, batch))
