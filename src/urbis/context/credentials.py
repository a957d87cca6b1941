"""API keys: what a key grants, how it is made and recognised (hashes only are stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

KEY_PREFIX = "urbis_"


@dataclass(slots=True)
class ApiKey:
    """A stored API key: its public id, what it grants, and the hash of its secret."""

    id: str  # public, appears in the key itself and in logs and audit records
    name: str
    roles: list[str]
    key_hash: str
    created_at: str
    tenants: list[str] | None = None  # None: every tenant
    types: list[str] | None = None  # analyst scope
    entities: list[str] | None = None  # device scope (ids, or prefixes ending in *)
    department: str | None = None
    revoked_at: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


def new_key() -> tuple[str, str]:
    """(key id, full secret key) — the key is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    """The stored form of a key. Keys carry 256 random bits: a plain SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a well-formed key, or None when it is not one of ours."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX):].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id


def matches(key: str, stored: ApiKey) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(key), stored.key_hash)
