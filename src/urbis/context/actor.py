"""The caller of a service operation."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TENANT = ""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who calls: tenant, principal and roles (authentication fills these in)."""

    tenant: str = DEFAULT_TENANT
    principal: str = "anonymous"
    roles: frozenset[str] = frozenset({"admin"})

    @property
    def is_default_tenant(self) -> bool:
        """True for the default tenant (no NGSILD-Tenant header)."""
        return self.tenant == DEFAULT_TENANT
