"""The security services of one process, from the settings."""

from __future__ import annotations

from urbis.security.apikeys import ApiKeyService
from urbis.security.authn import Authenticator, ClaimMap
from urbis.security.jwt_keys import JwksCache, OidcConfig
from urbis.security.policy import DataPolicy
from urbis.settings import Settings
from urbis.storage.base import TOPIC_APIKEYS, InvalidationChannel
from urbis.storage.security_base import ApiKeyStore


def build_security(settings: Settings, keys: ApiKeyStore,
                   invalidations: InvalidationChannel | None
                   ) -> tuple[ApiKeyService, Authenticator]:
    """Key management and the authenticator (following revocations of other workers)."""
    jwks = None
    if settings.oidc_issuer:
        jwks = JwksCache(OidcConfig(
            issuer=settings.oidc_issuer, audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            algorithms=tuple(a.strip() for a in settings.oidc_algorithms.split(",") if a.strip()),
            leeway=settings.oidc_leeway))
    role_map = dict(pair.strip().split("=", 1) for pair in settings.oidc_role_map.split(",")
                    if "=" in pair)
    claims = ClaimMap(roles=settings.oidc_roles_claim, tenants=settings.oidc_tenants_claim,
                      role_map={k.strip(): v.strip() for k, v in role_map.items()})
    authenticator = Authenticator(keys, jwks, claims)
    if invalidations is not None:
        invalidations.subscribe(authenticator.invalidate)
    return ApiKeyService(keys, lambda key_id: authenticator.invalidate(TOPIC_APIKEYS, key_id)
                         ), authenticator


def data_policy(settings: Settings) -> DataPolicy:
    """Published types and sensitive attributes, from the settings."""
    return DataPolicy(public_types=_names(settings.public_types),
                      sensitive=_names(settings.sensitive_attributes),
                      sensitive_roles=_names(settings.sensitive_roles))


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())
