"""Authentication: credentials in, an Actor out (or Unauthorized).

Credentials: `Authorization: Bearer <JWT>` from the configured OIDC issuer,
`Authorization: Bearer urbis_...` / `Authorization: ApiKey urbis_...` / `X-API-Key: urbis_...`
for API keys. No credentials at all makes an anonymous caller with the `public` role.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from urbis.context.actor import DEFAULT_TENANT, PUBLIC, ROLES, Actor
from urbis.context.credentials import ApiKey, key_id_of, matches
from urbis.context.errors import Unauthorized
from urbis.security.jwt_keys import JwksCache, TokenError, verify
from urbis.security.policy import internal
from urbis.storage.base import TOPIC_ALL, TOPIC_APIKEYS
from urbis.storage.security_base import ApiKeyStore

log = logging.getLogger("urbis.security")
TOKEN_CACHE_SIZE = 10_000
KEY_CACHE_TTL = 30.0  # seconds a looked-up key is trusted without asking the store again


@dataclass(frozen=True, slots=True)
class ClaimMap:
    """Where a token carries what urbis needs (dotted paths into the claims)."""

    principal: str = "sub"
    roles: str = "roles"
    tenants: str = "tenants"
    types: str = "types"
    entities: str = "entities"
    department: str = "department"
    role_map: Mapping[str, str] = field(default_factory=dict)  # IdP role -> urbis role


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a credential says the caller is, before a tenant is addressed."""

    principal: str
    roles: frozenset[str]
    tenants: frozenset[str] | None = None
    types: frozenset[str] | None = None
    entities: tuple[str, ...] | None = None
    department: str | None = None
    authenticated: bool = True

    def actor(self, tenant: str, client: str | None = None) -> Actor:
        """The Actor of one request to `tenant`."""
        return Actor(tenant=tenant, principal=self.principal, roles=self.roles,
                     tenants=self.tenants, types=self.types, entities=self.entities,
                     department=self.department, authenticated=self.authenticated,
                     client=client)


ANONYMOUS = Identity("anonymous", frozenset({PUBLIC}), authenticated=False)


class Authenticator:
    """Checks bearer tokens and API keys; caches keys briefly, follows revocations."""

    def __init__(self, keys: ApiKeyStore, jwks: JwksCache | None = None,
                 claims: ClaimMap | None = None) -> None:
        self.keys = keys
        self.jwks = jwks
        self.claims = claims or ClaimMap()
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        # Verified tokens until they expire: a client sends the same token on every request,
        # and its signature cannot change meaning before `exp`.
        self._tokens: dict[str, tuple[float, Identity]] = {}

    def invalidate(self, topic: str, key: str | None) -> None:
        """InvalidationListener: drop revoked keys (all of them when unsure)."""
        if topic == TOPIC_APIKEYS and key is not None:
            self._cache.pop(key, None)
        elif topic in (TOPIC_APIKEYS, TOPIC_ALL):
            self._cache.clear()

    @internal  # authentication itself: before any caller is known
    async def identify(self, authorization: str | None, api_key: str | None) -> Identity:
        """The caller's identity; Unauthorized for credentials that are not valid."""
        if api_key:
            return await self._by_key(api_key.strip())
        if not authorization:
            return ANONYMOUS
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if not credential:
            raise Unauthorized("malformed Authorization header")
        if scheme.lower() == "apikey" or (scheme.lower() == "bearer"
                                          and key_id_of(credential) is not None):
            return await self._by_key(credential)
        if scheme.lower() != "bearer":
            raise Unauthorized(f"unsupported authorization scheme {scheme[:20]!r}")
        if self.jwks is None:
            raise Unauthorized("bearer tokens are not accepted (no OIDC issuer configured)")
        cached = self._tokens.get(credential)
        if cached is not None and time.time() < cached[0]:
            return cached[1]
        try:
            claims = await verify(credential, self.jwks)
        except TokenError as exc:
            raise Unauthorized(str(exc)) from None
        identity = self._from_claims(claims)
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self._tokens.clear()  # bounded; forgetting only costs a verification
        self._tokens[credential] = (float(claims["exp"]), identity)
        return identity

    async def _by_key(self, key: str) -> Identity:
        key_id = key_id_of(key)
        if key_id is None:
            raise Unauthorized("malformed API key")
        stored = await self._lookup(key_id)
        if stored is None or not matches(key, stored):
            raise Unauthorized("unknown API key")
        if not stored.active:
            raise Unauthorized("revoked API key")
        return Identity(
            principal=f"apikey:{stored.id}:{stored.name}", roles=frozenset(stored.roles),
            tenants=None if stored.tenants is None else frozenset(stored.tenants),
            types=None if stored.types is None else frozenset(stored.types),
            entities=None if stored.entities is None else tuple(stored.entities),
            department=stored.department)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < KEY_CACHE_TTL:
            return cached[1]
        stored = await self.keys.get_key(key_id)
        if stored is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now, stored)
        return stored

    def _from_claims(self, claims: dict[str, Any]) -> Identity:
        m = self.claims
        principal = _path(claims, m.principal)
        if not isinstance(principal, str) or not principal:
            raise Unauthorized(f"token has no {m.principal} claim")
        raw_roles = _strings(_path(claims, m.roles)) or []
        roles = frozenset(m.role_map.get(r, r) for r in raw_roles) & frozenset(ROLES)
        if not roles:
            roles = frozenset({PUBLIC})
        tenants, types = _strings(_path(claims, m.tenants)), _strings(_path(claims, m.types))
        entities = _strings(_path(claims, m.entities))
        department = _path(claims, m.department)
        # No tenant claim: the default tenant only; "*" in it: every tenant.
        allowed = (frozenset({DEFAULT_TENANT}) if tenants is None
                   else None if "*" in tenants else frozenset(tenants))
        return Identity(
            principal=f"oidc:{principal}", roles=roles, tenants=allowed,
            types=None if types is None else frozenset(types),
            entities=None if entities is None else tuple(entities),
            department=department if isinstance(department, str) else None)


def _path(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return None
