"""Authorisation policy: which role may do what, and on which data.

Every service operation declares one permission (`@requires`); the decorator checks the
caller's tenant and roles before the operation runs, and the operation itself checks what
depends on the data (an analyst's entity types, a device's entity ids, attributes marked
sensitive). tests/security/test_permissions.py fails when a public service operation has no
permission, and checks the whole role x operation matrix over HTTP.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from urbis.context.actor import ADMIN, ANALYST, DEVICE, OPERATOR, PUBLIC, Actor, Call, current_call
from urbis.context.errors import Forbidden, NgsiError, Unauthorized

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

# Permissions, by what they allow.
ENTITIES_READ = "entities.read"
ENTITIES_WRITE = "entities.write"
ENTITIES_PURGE = "entities.purge"  # delete every entity of a type
DISCOVERY = "discovery.read"  # /types, /attributes
SUBSCRIPTIONS_READ = "subscriptions.read"
SUBSCRIPTIONS_WRITE = "subscriptions.write"
CONTEXTS_READ = "contexts.read"
CONTEXTS_WRITE = "contexts.write"
TEMPORAL_READ = "temporal.read"
TEMPORAL_WRITE = "temporal.write"
APIKEYS = "apikeys.manage"
AUDIT = "audit.read"
OPERATIONS = "operations.read"  # metrics
FEEDS_READ = "feeds.read"  # status of scheduled imports (connectors)
FEEDS_RUN = "feeds.run"  # run an import now
DEVICES_READ = "devices.read"  # IoT agent service groups, devices, dead letters
DEVICES_WRITE = "devices.write"  # provision service groups and devices
REGISTRATIONS_READ = "registrations.read"  # context source registrations, csourceSubscriptions
REGISTRATIONS_WRITE = "registrations.write"
REGISTRATIONS_SUBSCRIBE = "registrations.subscribe"  # write subscriptions to registrations
NONE = "none"  # operations anyone may call (e.g. the @context a request names is resolved)

GRANTS: dict[str, frozenset[str]] = {
    ADMIN: frozenset({ENTITIES_READ, ENTITIES_WRITE, ENTITIES_PURGE, DISCOVERY,
                      SUBSCRIPTIONS_READ, SUBSCRIPTIONS_WRITE, CONTEXTS_READ, CONTEXTS_WRITE,
                      TEMPORAL_READ, TEMPORAL_WRITE, APIKEYS, AUDIT, OPERATIONS,
                      FEEDS_READ, FEEDS_RUN, DEVICES_READ, DEVICES_WRITE, REGISTRATIONS_READ,
                      REGISTRATIONS_WRITE, REGISTRATIONS_SUBSCRIBE}),
    OPERATOR: frozenset({ENTITIES_READ, ENTITIES_WRITE, ENTITIES_PURGE, DISCOVERY,
                         SUBSCRIPTIONS_READ, SUBSCRIPTIONS_WRITE, CONTEXTS_READ,
                         CONTEXTS_WRITE, TEMPORAL_READ, TEMPORAL_WRITE, OPERATIONS,
                         FEEDS_READ, FEEDS_RUN, DEVICES_READ, DEVICES_WRITE,
                         REGISTRATIONS_READ, REGISTRATIONS_WRITE, REGISTRATIONS_SUBSCRIBE}),
    ANALYST: frozenset({ENTITIES_READ, DISCOVERY, SUBSCRIPTIONS_READ, SUBSCRIPTIONS_WRITE,
                        CONTEXTS_READ, TEMPORAL_READ}),
    DEVICE: frozenset({ENTITIES_READ, ENTITIES_WRITE, CONTEXTS_READ}),
    PUBLIC: frozenset({ENTITIES_READ, CONTEXTS_READ, TEMPORAL_READ}),
}
# Permissions on the platform rather than on one tenant's data: the NGSILD-Tenant of the
# request does not matter (API keys and audit records are filtered by the caller's tenants).
PLATFORM = frozenset({APIKEYS, AUDIT, OPERATIONS, CONTEXTS_READ, CONTEXTS_WRITE,
                      FEEDS_READ, FEEDS_RUN})
# Roles whose reads are limited to entity types (the analyst's own, or the published ones).
TYPE_SCOPED = frozenset({ANALYST, PUBLIC})


def permitted(actor: Actor, permission: str) -> bool:
    """Whether any role of the actor grants the permission (tenant aside)."""
    return permission == NONE or any(permission in GRANTS.get(r, ()) for r in actor.roles)


def deny(actor: Actor, reason: str) -> Forbidden | Unauthorized:
    """The refusal to raise: 401 for an anonymous caller (credentials may help), else 403."""
    if not actor.authenticated:
        return Unauthorized(f"this needs credentials: {reason}", credentials=False)
    return Forbidden(reason)


def require(actor: Actor, permission: str) -> None:
    """Forbidden (or Unauthorized for an anonymous caller) unless the actor may do it."""
    if permission == NONE:
        return
    if permission not in PLATFORM and not actor.in_tenant():
        raise Forbidden(f"{actor.principal} may not use tenant {actor.tenant or '(default)'}")
    if not permitted(actor, permission):
        if not actor.authenticated:
            raise Unauthorized("this operation needs credentials", credentials=False)
        raise Forbidden(f"{actor.principal} ({', '.join(sorted(actor.roles))}) "
                        f"may not {permission}")


@dataclass(slots=True)
class Hooks:
    """What the process wires in (urbis.broker.container): the request id of the running
    request, and where refusals are recorded (the audit log)."""

    request_id: Callable[[], str | None] = lambda: None
    on_deny: Callable[[Call, NgsiError], Awaitable[None]] | None = None
    # Successful calls of these permissions are recorded too (changes that no entity
    # journal sees), with the id the operation names, if any.
    on_allow: Callable[[Call, Sequence[str]], Awaitable[None]] | None = None
    recorded: frozenset[str] = frozenset({SUBSCRIPTIONS_WRITE, CONTEXTS_WRITE,
                                          TEMPORAL_WRITE, APIKEYS, FEEDS_RUN,
                                          DEVICES_WRITE, REGISTRATIONS_WRITE,
                                          REGISTRATIONS_SUBSCRIBE})


hooks = Hooks()


async def _allowed(call: Call, args: Sequence[Any]) -> None:
    if hooks.on_allow is None:
        return
    subject = [args[2]] if len(args) > 2 and isinstance(args[2], str) else []
    try:
        await hooks.on_allow(call, subject)
    except Exception:
        log.exception("could not record the call of %s", call.operation)


async def _denied(call: Call, error: NgsiError) -> None:
    if hooks.on_deny is None:
        return
    try:
        await hooks.on_deny(call, error)
    except Exception:  # the caller gets its 403 / 401 whatever happens to the record
        log.exception("could not record the refusal of %s", call.operation)


def requires(permission: str) -> Callable[[Callable[P, Awaitable[T]]],
                                          Callable[P, Awaitable[T]]]:
    """Declare (and enforce) the permission of a service operation taking `actor` first.

    While the operation runs, `current_call` names it (with the caller and the request id)
    for the audit trail; an operation called by another with the same actor keeps the outer
    one's name. A refusal (Forbidden, Unauthorized), by this check or by the operation's own
    checks on the data, is recorded through `hooks.on_deny`; a successful call of a permission
    in `hooks.recorded` through `hooks.on_allow`.
    """

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        operation = fn.__qualname__

        @functools.wraps(fn)
        async def checked(*args: P.args, **kwargs: P.kwargs) -> T:
            actor = args[1] if len(args) > 1 else kwargs.get("actor")
            if not isinstance(actor, Actor):
                raise TypeError(f"{fn.__qualname__} must take the Actor first")
            outer = current_call.get()
            if outer is not None and outer.actor is actor:
                require(actor, permission)
                return await fn(*args, **kwargs)
            call = Call(actor, operation, hooks.request_id())
            token = current_call.set(call)
            try:
                require(actor, permission)
                result = await fn(*args, **kwargs)
                if permission in hooks.recorded:
                    await _allowed(call, args)
                return result
            except (Forbidden, Unauthorized) as err:
                await _denied(call, err)
                raise
            finally:
                current_call.reset(token)

        checked.__permission__ = permission  # type: ignore[attr-defined]
        return checked

    return decorate


def internal(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Mark an operation that takes no caller: start-up and background work, not adapters."""
    fn.__permission__ = "internal"  # type: ignore[attr-defined]
    return fn


def local_name(iri: str) -> str:
    """The last segment of an IRI (what a short name in a setting or a key is matched on)."""
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def named(iri: str, names: frozenset[str]) -> bool:
    """Whether `names` (IRIs or short names) names this IRI."""
    return iri in names or local_name(iri) in names


@dataclass(frozen=True, slots=True)
class DataPolicy:
    """What depends on the data: published types, sensitive attributes.

    Types and attributes are given as expanded IRIs or short names (matched on the IRI's
    last segment), in settings and in credentials alike.
    """

    public_types: frozenset[str] = frozenset()
    sensitive: frozenset[str] = frozenset()  # attributes only some roles see
    sensitive_roles: frozenset[str] = frozenset({ADMIN, OPERATOR})

    def readable_types(self, actor: Actor) -> frozenset[str] | None:
        """The entity types (names) the actor may read; None: any."""
        if actor.roles & {ADMIN, OPERATOR}:
            return None
        allowed: set[str] = set()
        if ANALYST in actor.roles:
            if actor.types is None:
                return None
            allowed |= actor.types
        if PUBLIC in actor.roles:
            allowed |= self.public_types
        return frozenset(allowed)

    def check_query(self, actor: Actor, types: Iterable[str] | None) -> None:
        """Forbidden unless a type-scoped caller names only types it may read."""
        if not actor.roles & _READERS:
            raise deny(actor, f"{actor.principal} may read its own entities by id only")
        allowed = self.readable_types(actor)
        if allowed is None:
            return
        names = list(types or ())
        if not names:
            raise deny(actor, f"{actor.principal} must name the entity types it queries")
        for iri in names:
            if not named(iri, allowed):
                raise deny(actor, f"{actor.principal} may not read entities of type "
                                  f"{local_name(iri)}")

    def may_read(self, actor: Actor, types: Iterable[str], entity_id: str) -> bool:
        """Whether one entity is visible to the actor (a device sees only its own)."""
        allowed = self.readable_types(actor)
        if actor.roles & _READERS and (allowed is None or any(named(t, allowed)
                                                              for t in types)):
            return True
        return DEVICE in actor.roles and actor.owns(entity_id)

    def check_write(self, actor: Actor, entity_ids: Iterable[str]) -> None:
        """A device writes only its own entities."""
        if actor.roles & {ADMIN, OPERATOR}:
            return
        for entity_id in entity_ids:
            if not actor.owns(entity_id):
                raise deny(actor, f"{actor.principal} may not write {entity_id}")

    def hidden(self, actor: Actor, attribute: str) -> bool:
        """Whether an attribute (IRI) is removed from what the actor reads."""
        return bool(self.sensitive) and not actor.roles & self.sensitive_roles and named(
            attribute, self.sensitive)

    def sensitive_in(self, attributes: Iterable[str]) -> list[str]:
        """The sensitive ones among attribute IRIs."""
        return [a for a in attributes if self.sensitive and named(a, self.sensitive)]


_READERS = frozenset({ADMIN, OPERATOR, ANALYST, PUBLIC})


def public_operations(service: Any) -> list[str]:
    """Names of a service's public coroutine methods (what adapters may call)."""
    import inspect

    return [name for name, member in inspect.getmembers(type(service))
            if not name.startswith("_") and inspect.iscoroutinefunction(member)]
