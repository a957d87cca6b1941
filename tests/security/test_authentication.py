"""Authentication: OIDC tokens against a real local JWKS endpoint, API keys, 401s."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import jwt
import pytest
from idp import Idp, ec_key, identity_provider, rsa_key

from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.settings import Settings
from urbis.storage.base import TOPIC_APIKEYS

E = "/ngsi-ld/v1/entities"


@pytest.fixture
def idp() -> Iterator[Idp]:
    with identity_provider(rsa_key(), ec_key()) as provider:
        yield provider


@pytest.fixture
def auth_settings(settings: Settings, idp: Idp) -> Settings:
    return replace(settings, auth=True, oidc_issuer=idp.issuer, oidc_leeway=5.0,
                   oidc_role_map="city-admins=admin").validate()


@pytest.fixture
async def auth_broker(auth_settings: Settings) -> AsyncIterator[Broker]:
    broker = await build_broker(auth_settings)
    yield broker
    await broker.close()


async def identify(broker: Broker, token: str) -> object:
    assert broker.authenticator is not None
    return await broker.authenticator.identify(f"Bearer {token}", None)


async def test_valid_tokens_rs256_and_es256(auth_broker: Broker, idp: Idp) -> None:
    for key in idp.keys:
        who = await identify(auth_broker, idp.token(key, roles=["operator"], tenants=["city"]))
        assert who.principal == "oidc:alice"  # type: ignore[attr-defined]
        assert who.roles == frozenset({"operator"})  # type: ignore[attr-defined]
        assert who.tenants == frozenset({"city"})  # type: ignore[attr-defined]


async def test_claims_are_mapped(auth_broker: Broker, idp: Idp) -> None:
    who = await identify(auth_broker, idp.token(roles=["city-admins", "nonsense"], tenants="*"))
    assert who.roles == frozenset({"admin"}) and who.tenants is None  # type: ignore[attr-defined]
    nobody = await identify(auth_broker, idp.token(roles=None, tenants=None))
    assert nobody.roles == frozenset({"public"})  # type: ignore[attr-defined]
    assert nobody.tenants == frozenset({""})  # type: ignore[attr-defined]


@pytest.mark.parametrize(("claims", "reason"), [
    ({"exp": -60}, "token expired"),  # seconds from now, when the test runs
    ({"nbf": 60}, "not valid yet"),
    ({"aud": "someone-else"}, "invalid token"),
    ({"iss": "https://evil.example"}, "invalid token"),
    ({"sub": None}, "invalid token"),
])
async def test_bad_tokens_are_refused(auth_broker: Broker, idp: Idp, claims: dict[str, object],
                                      reason: str) -> None:
    from urbis.context.errors import Unauthorized

    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") else v for k, v in claims.items()}  # type: ignore[operator]
    with pytest.raises(Unauthorized, match=reason):
        await identify(auth_broker, idp.token(**claims))


async def test_clock_skew_within_leeway_is_accepted(auth_broker: Broker, idp: Idp) -> None:
    await identify(auth_broker, idp.token(nbf=int(time.time()) + 2,
                                          exp=int(time.time()) - 2))


async def test_forged_algorithms_and_keys_are_refused(auth_broker: Broker, idp: Idp) -> None:
    from urbis.context.errors import Unauthorized

    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": "urbis", "sub": "mallory", "iat": now, "exp": now + 60}
    forged = [
        jwt.encode(claims, "s" * 32, algorithm="HS256"),  # symmetric: refused by algorithm
        jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        jwt.encode(claims, rsa_key().private, algorithm="RS256",
                   headers={"kid": idp.keys[0].kid}),  # right kid, wrong key
        "not.a.token", "a" * 5000,
    ]
    for token in forged:
        with pytest.raises(Unauthorized):
            await identify(auth_broker, token)


async def test_rotated_keys_are_fetched_once(auth_broker: Broker, idp: Idp) -> None:
    await identify(auth_broker, idp.token())
    hits = idp.jwks_hits
    for _ in range(5):
        await identify(auth_broker, idp.token())
    assert idp.jwks_hits == hits  # cached
    new = rsa_key()
    idp.keys.append(new)
    assert auth_broker.authenticator is not None and auth_broker.authenticator.jwks is not None
    auth_broker.authenticator.jwks._fetched -= 60  # the refetch guard has passed
    await identify(auth_broker, idp.token(new))
    assert idp.jwks_hits == hits + 1


async def test_http_401_with_challenge(auth_settings: Settings, auth_broker: Broker,
                                       idp: Idp) -> None:
    app = create_app(auth_settings, broker=auth_broker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        for headers in ({"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"},
                        {"X-API-Key": "urbis_000000000000_forged"},
                        {"Authorization": "Bearer " + idp.token(exp=int(time.time()) - 60)}):
            r = await c.get(E, params={"type": "T"}, headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"].startswith('Bearer realm="urbis"')
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"] == "urn:urbis:problem:Unauthorized"
        ok = await c.get(E, params={"type": "T"},
                         headers={"Authorization": "Bearer " + idp.token(roles=["admin"])})
        assert ok.status_code == 200
        assert (await c.get("/health")).status_code == 200  # probes need nothing


async def test_api_keys_by_admin_api(auth_settings: Settings, auth_broker: Broker) -> None:
    assert auth_broker.apikeys is not None
    admin_key = await auth_broker.apikeys.bootstrap(None)
    assert admin_key and await auth_broker.apikeys.bootstrap(None) is None  # only once
    app = create_app(auth_settings, broker=auth_broker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    admin = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        r = await c.post("/admin/apikeys", headers=admin, json={
            "name": "meter 17", "roles": ["device"], "tenants": ["city"],
            "entities": ["urn:ngsi-ld:Meter:17"]})
        assert r.status_code == 201, r.text
        created = r.json()
        device_key = created["key"]
        assert r.headers["cache-control"] == "no-store"
        listed = (await c.get("/admin/apikeys", headers=admin)).json()
        assert {k["id"] for k in listed} >= {created["id"]}
        assert all("key" not in k and "key_hash" not in k for k in listed)
        r = await c.get(E, params={"type": "T"}, headers={"X-API-Key": device_key,
                                                          "NGSILD-Tenant": "city"})
        assert r.status_code != 401
        assert (await c.delete(f"/admin/apikeys/{created['id']}",
                               headers=admin)).status_code == 204
        r = await c.get(E, params={"type": "T"}, headers={"X-API-Key": device_key})
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
        bad = await c.post("/admin/apikeys", headers=admin,
                           json={"name": "x", "roles": ["emperor"]})
        assert bad.status_code == 400
        bad = await c.post("/admin/apikeys", headers=admin, json={"name": "d", "roles": ["device"]})
        assert bad.status_code == 400 and "entities" in bad.json()["detail"]
        forbidden = await c.get("/admin/apikeys", headers={"X-API-Key": device_key})
        assert forbidden.status_code == 401  # revoked
        assert TOPIC_APIKEYS == "apikeys"


async def test_verified_tokens_are_cached_until_they_expire(auth_broker: Broker, idp: Idp
                                                            ) -> None:
    assert auth_broker.authenticator is not None
    token = idp.token(roles=["operator"])
    first = await identify(auth_broker, token)
    assert await identify(auth_broker, token) is first  # no second verification
    stale = idp.token(exp=int(time.time()) + 1)
    await identify(auth_broker, stale)
    auth_broker.authenticator._tokens[stale] = (time.time() - 1, first)  # type: ignore[assignment]
    again = await identify(auth_broker, stale)  # an expired cache entry is verified again
    assert again is not first
