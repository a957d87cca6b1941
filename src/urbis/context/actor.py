"""The caller of a service operation."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

DEFAULT_TENANT = ""

# Roles (clause of docs/security.md); a credential holds one or more.
ADMIN = "admin"  # everything, in the tenants of its credential
OPERATOR = "operator"  # read and write context data, manage subscriptions
ANALYST = "analyst"  # read, limited to the entity types of its department
DEVICE = "device"  # write its own entities only
PUBLIC = "public"  # read published types only (anonymous callers)
ROLES = (ADMIN, OPERATOR, ANALYST, DEVICE, PUBLIC)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who calls: tenant, principal, roles and the limits of its credential.

    The default is the platform itself (CLI, start-up tasks): an admin of every tenant.
    `tenants` lists the tenants the credential may act in (None: any); `types` limits an
    analyst to entity types (expanded IRIs or short names; None: any); `entities` lists the
    entity ids a device may write (an entry ending in `*` is a prefix).
    """

    tenant: str = DEFAULT_TENANT
    principal: str = "urbis"
    roles: frozenset[str] = frozenset({ADMIN})
    tenants: frozenset[str] | None = None
    types: frozenset[str] | None = None
    entities: tuple[str, ...] | None = None
    department: str | None = None
    authenticated: bool = True
    client: str | None = None  # the caller's address, for the audit trail

    @property
    def is_default_tenant(self) -> bool:
        """True for the default tenant (no NGSILD-Tenant header)."""
        return self.tenant == DEFAULT_TENANT

    def in_tenant(self) -> bool:
        """Whether the credential may act in the addressed tenant at all."""
        return self.tenants is None or self.tenant in self.tenants

    def owns(self, entity_id: str) -> bool:
        """Whether a device credential names this entity (exactly or by prefix)."""
        if self.entities is None:
            return False
        return any(entity_id == e or (e.endswith("*") and entity_id.startswith(e[:-1]))
                   for e in self.entities)


@dataclass(frozen=True, slots=True)
class Call:
    """The service operation running now: who called it, what it is, for the audit trail."""

    actor: Actor
    operation: str  # e.g. "EntityService.update_attrs"
    request_id: str | None = None


# Set by `urbis.security.policy.requires` while a service operation runs; storage journals
# read it to say who made a change (the SQLite writer runs them in a copy of this context).
current_call: ContextVar[Call | None] = ContextVar("urbis_current_call", default=None)
