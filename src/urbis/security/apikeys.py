"""API key management: create (the key is shown once), list, revoke; the first admin key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from urbis.context.actor import ADMIN, DEVICE, ROLES, Actor
from urbis.context.credentials import ApiKey, hash_key, key_id_of, new_key
from urbis.context.errors import BadRequestData, Forbidden, ResourceNotFound
from urbis.context.model import now_iso
from urbis.security.policy import APIKEYS, internal, requires
from urbis.storage.security_base import ApiKeyStore

MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """What a new key grants."""

    name: str
    roles: list[str]
    tenants: list[str] | None = None
    types: list[str] | None = None
    entities: list[str] | None = None
    department: str | None = None

    @classmethod
    def parse(cls, body: Any) -> KeyRequest:
        """From a JSON body; BadRequestData naming what is wrong."""
        if not isinstance(body, dict):
            raise BadRequestData("an API key request is a JSON object")
        unknown = set(body) - {"name", "roles", "tenants", "types", "entities", "department"}
        if unknown:
            raise BadRequestData(f"unknown members {sorted(unknown)}")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise BadRequestData(f"name must be a non-empty string of at most {MAX_NAME}")
        department = body.get("department")
        if department is not None and not isinstance(department, str):
            raise BadRequestData("department must be a string")
        return cls(name.strip(), _list(body, "roles") or [], _list(body, "tenants"),
                   _list(body, "types"), _list(body, "entities"), department)

    def check(self) -> None:
        """The roles exist, and a device key names the entities it may write."""
        if not self.roles:
            raise BadRequestData("a key needs at least one role")
        bad = [r for r in self.roles if r not in ROLES]
        if bad:
            raise BadRequestData(f"unknown roles {bad}; roles are {', '.join(ROLES)}")
        if DEVICE in self.roles and not self.entities:
            raise BadRequestData("a device key must name its entities (ids or prefixes*)")


def _list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequestData(f"{name} must be an array of strings")
    return list(value)


class ApiKeyService:
    """Keys are managed by admins; an admin grants no more tenants than it has."""

    def __init__(self, store: ApiKeyStore,
                 on_revoke: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_revoke = on_revoke  # this process's caches (others hear of it from the store)

    @requires(APIKEYS)
    async def create(self, actor: Actor, request: KeyRequest) -> tuple[ApiKey, str]:
        """Store a new key; returns it and the secret key (shown once, never stored)."""
        request.check()
        if actor.tenants is not None and (request.tenants is None
                                          or not set(request.tenants) <= actor.tenants):
            raise Forbidden("a key may only grant tenants its creator has")
        key_id, secret = new_key()
        key = ApiKey(id=key_id, name=request.name, roles=list(request.roles),
                     key_hash=hash_key(secret), created_at=now_iso(), tenants=request.tenants,
                     types=request.types, entities=request.entities,
                     department=request.department)
        await self.store.add_key(key)
        return key, secret

    @requires(APIKEYS)
    async def list(self, actor: Actor) -> list[ApiKey]:
        """Keys the admin may see (those within its tenants)."""
        keys = await self.store.list_keys()
        if actor.tenants is None:
            return keys
        return [k for k in keys if k.tenants is not None and set(k.tenants) <= actor.tenants]

    @requires(APIKEYS)
    async def revoke(self, actor: Actor, key_id: str) -> None:
        """Revoke at once (every worker stops accepting it)."""
        visible = {k.id for k in await self.list(actor) if k.active}
        if key_id not in visible or not await self.store.revoke_key(key_id, now_iso()):
            raise ResourceNotFound(f"no active API key {key_id}")
        if self.on_revoke is not None:
            self.on_revoke(key_id)

    @internal
    async def bootstrap(self, admin_key: str | None) -> str | None:
        """Make sure an admin can get in: register `admin_key`, or create one if none exists.

        Returns a newly created key (to be shown once), else None.
        """
        if admin_key:
            key_id = key_id_of(admin_key)
            if key_id is None:
                raise BadRequestData("URBIS_ADMIN_KEY must look like urbis_<12 hex>_<secret> "
                                     "(make one with `urbis apikey new-secret`)")
            stored = await self.store.get_key(key_id)
            if stored is None:
                await self.store.add_key(ApiKey(id=key_id, name="admin (URBIS_ADMIN_KEY)",
                                                roles=[ADMIN], key_hash=hash_key(admin_key),
                                                created_at=now_iso()))
            return None
        if any(k.active and ADMIN in k.roles and k.tenants is None
               for k in await self.store.list_keys()):
            return None
        key_id, secret = new_key()
        await self.store.add_key(ApiKey(id=key_id, name="admin (first start)", roles=[ADMIN],
                                        key_hash=hash_key(secret), created_at=now_iso()))
        return secret

