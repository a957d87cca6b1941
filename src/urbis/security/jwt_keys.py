"""OIDC bearer tokens: signing keys from the issuer's JWKS, cached and rotated.

Keys are fetched from `jwks_url` (or the issuer's discovery document) with a timeout and
kept for `ttl` seconds. A token signed with a key id that is not in the cache triggers one
refetch (at most every `min_refetch` seconds, so a flood of forged kids cannot hammer the
identity provider): that is how a rotated key is picked up before the cache expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

log = logging.getLogger("urbis.security")


class TokenError(Exception):
    """A token that must be refused; the message says why (never the token)."""


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """What an identity provider's tokens must satisfy."""

    issuer: str
    audience: str
    jwks_url: str = ""  # empty: from {issuer}/.well-known/openid-configuration
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway: float = 30.0
    ttl: float = 300.0
    min_refetch: float = 10.0
    timeout: float = 5.0


class JwksCache:
    """The issuer's signing keys by key id."""

    def __init__(self, config: OidcConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key a token names (its only key when it names none)."""
        now = time.monotonic()
        if not self._keys or now - self._fetched > self.config.ttl:
            await self._refresh(force=True)
        found = self._find(kid)
        if found is None and time.monotonic() - self._fetched >= self.config.min_refetch:
            await self._refresh(force=False)
            found = self._find(kid)
        if found is None:
            raise TokenError(f"unknown signing key {kid!r:.40}")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched < self.config.min_refetch:
                return  # another request refreshed meanwhile
            try:
                document = await self._get(await self._jwks_url())
                keys = {}
                for entry in document.get("keys", []):
                    if entry.get("use", "sig") != "sig":
                        continue
                    try:
                        keys[str(entry.get("kid", ""))] = jwt.PyJWK(entry)
                    except jwt.PyJWTError as exc:
                        log.warning("JWKS key %s skipped: %s", entry.get("kid"), exc)
            except (httpx.HTTPError, ValueError) as exc:
                self._fetched = time.monotonic()  # do not retry on every request
                if self._keys:
                    log.warning("JWKS refresh failed (%s); keeping the cached keys", exc)
                    return
                raise TokenError("the identity provider's keys cannot be fetched") from exc
            self._keys, self._fetched = keys, time.monotonic()

    async def _jwks_url(self) -> str:
        if self.config.jwks_url:
            return self.config.jwks_url
        issuer = self.config.issuer.rstrip("/")
        discovery = await self._get(f"{issuer}/.well-known/openid-configuration")
        url = discovery.get("jwks_uri")
        if not isinstance(url, str):
            raise ValueError("the discovery document has no jwks_uri")
        return url

    async def _get(self, url: str) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout)
        response = await self._client.get(url)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return body

    async def close(self) -> None:
        """Release the HTTP client."""
        if self._client is not None:
            await self._client.aclose()


async def verify(token: str, cache: JwksCache) -> dict[str, Any]:
    """The claims of a valid token; TokenError naming the reason otherwise."""
    config = cache.config
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError(f"malformed token: {exc}") from None
    if header.get("alg") not in config.algorithms:
        raise TokenError(f"token algorithm {header.get('alg')!r:.20} is not accepted")
    key = await cache.key(header.get("kid"))
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key=key, algorithms=list(config.algorithms), audience=config.audience,
            issuer=config.issuer, leeway=config.leeway,
            options={"require": ["exp", "iat", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("token not valid yet") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    return claims
