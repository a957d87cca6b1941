"""Wire the registration services (registrations, csourceSubscriptions, their notifier)."""

from __future__ import annotations

from dataclasses import dataclass

from urbis.broker.contexts import ContextService
from urbis.broker.csource_notify import CSourceNotifier
from urbis.broker.csource_subscriptions import CSourceSubscriptionService
from urbis.broker.notify_tally import Tallies
from urbis.broker.queries import Paging
from urbis.broker.registration_index import RegistrationIndex
from urbis.broker.registrations import RegistrationService
from urbis.broker.subscriptions import SubscriptionService
from urbis.settings import Settings
from urbis.storage.registry import Stores


@dataclass(slots=True)
class RegistrationServices:
    """The services of context source registrations, for the Broker."""

    registrations: RegistrationService
    csource_subscriptions: CSourceSubscriptionService
    notifier: CSourceNotifier


def build_registration_services(settings: Settings, stores: Stores, contexts: ContextService,
                                paging: Paging) -> RegistrationServices | None:
    """The services on the stores (None when the backend keeps no registrations)."""
    if stores.registrations is None or stores.csource_subscriptions is None:
        return None
    index = RegistrationIndex(stores.registrations)
    notifier = CSourceNotifier(settings, stores.registrations, stores.csource_subscriptions,
                               contexts, Tallies(stores.csource_subscriptions))
    if stores.invalidations is not None:  # other workers' writes
        stores.invalidations.subscribe(index.invalidate)
        stores.invalidations.subscribe(notifier.on_invalidation)
    registrations = RegistrationService(stores.registrations, stores.entities, contexts,
                                        paging, index)
    registrations.after_write.append(notifier.wake)
    csource = CSourceSubscriptionService(
        SubscriptionService(stores.csource_subscriptions, contexts, paging), notifier)
    return RegistrationServices(registrations, csource, notifier)
