"""The ApiKeyStore contract, on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from urbis.context.credentials import ApiKey, hash_key, key_id_of, matches, new_key
from urbis.context.errors import AlreadyExists
from urbis.settings import Settings
from urbis.storage.registry import open_stores
from urbis.storage.security_base import ApiKeyStore

NOW = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
async def keys(settings: Settings) -> AsyncIterator[ApiKeyStore]:
    stores = await open_stores(settings.store, synchronous="normal")
    assert stores.apikeys is not None
    yield stores.apikeys
    await stores.close()


def make(name: str, **grants: object) -> tuple[str, ApiKey]:
    key_id, secret = new_key()
    return secret, ApiKey(id=key_id, name=name, roles=["device"], key_hash=hash_key(secret),
                          created_at=NOW, **grants)  # type: ignore[arg-type]


async def test_add_get_list_revoke(keys: ApiKeyStore) -> None:
    secret, key = make("meter-17", tenants=["city"], entities=["urn:ngsi-ld:Meter:17*"])
    await keys.add_key(key)
    got = await keys.get_key(key.id)
    assert got is not None and got == key and got.active
    assert matches(secret, got) and not matches(secret + "x", got)
    assert key_id_of(secret) == key.id
    with pytest.raises(AlreadyExists):
        await keys.add_key(key)
    _, other = make("analyst", types=["https://smartdatamodels.org/dataModel.Parking/X"],
                    department="mobility")
    other.created_at = "2026-01-01T00:00:01.000000Z"
    await keys.add_key(other)
    assert [k.id for k in await keys.list_keys()] == [key.id, other.id]
    assert await keys.revoke_key(key.id, "2026-01-02T00:00:00Z")
    assert not await keys.revoke_key(key.id, "2026-01-03T00:00:00Z")  # already revoked
    assert not await keys.revoke_key("nope", NOW)
    revoked = await keys.get_key(key.id)
    assert revoked is not None and revoked.revoked_at == "2026-01-02T00:00:00Z"


async def test_unknown_and_hostile_ids(keys: ApiKeyStore) -> None:
    for key_id in ("", "nope", "' OR 1=1 --", "a\x00b", "x" * 5000):
        assert await keys.get_key(key_id) is None
        assert not await keys.revoke_key(key_id, NOW)


@pytest.mark.parametrize("text", ["", "urbis_", "urbis_short_x", "Bearer x", "urbis_123456789012_",
                                  "urbis_123456789012"])
def test_malformed_keys_have_no_id(text: str) -> None:
    assert key_id_of(text) is None
