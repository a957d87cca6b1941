"""Operations a context source may support (ETSI GS CIM 009 V1.9.1 clause 4.20).

A registration's `operations` lists operation names (Table 4.20-1) and group names (Table
4.20-2); groups stand for their members, and no `operations` at all means `federationOps`.
Matching works on the expanded set, which stores keep as a bit mask: bit i is OPERATIONS[i],
so the order of OPERATIONS is append-only (a stored mask would change meaning otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable

from urbis.context.errors import BadRequestData

OPERATIONS: tuple[str, ...] = (
    # context information provision
    "createEntity", "updateEntity", "appendAttrs", "updateAttrs", "deleteAttrs",
    "deleteEntity", "createBatch", "upsertBatch", "updateBatch", "deleteBatch",
    "upsertTemporal", "appendAttrsTemporal", "deleteAttrsTemporal",
    "updateAttrInstanceTemporal", "deleteAttrInstanceTemporal", "deleteTemporal",
    "mergeEntity", "replaceEntity", "replaceAttrs", "mergeBatch", "purgeEntity",
    # context information consumption
    "retrieveEntity", "queryEntity", "queryBatch", "retrieveTemporal", "queryTemporal",
    "retrieveEntityTypes", "retrieveEntityTypeDetails", "retrieveEntityTypeInfo",
    "retrieveAttrTypes", "retrieveAttrTypeDetails", "retrieveAttrTypeInfo",
    # subscriptions
    "createSubscription", "updateSubscription", "retrieveSubscription", "querySubscription",
    "deleteSubscription",
    # entity maps and source identity (V1.9.1)
    "retrieveEntityMap", "updateEntityMap", "deleteEntityMap", "createEntityMapQueryEntity",
    "createEntityMapQueryTemporal", "retrieveContextSourceIdentity",
)
BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(OPERATIONS)}

_CONSUMPTION = ("retrieveEntity", "queryEntity", "queryBatch", "retrieveEntityTypes",
                "retrieveEntityTypeDetails", "retrieveEntityTypeInfo", "retrieveAttrTypes",
                "retrieveAttrTypeDetails", "retrieveAttrTypeInfo")
_SUBSCRIPTION = ("createSubscription", "updateSubscription", "retrieveSubscription",
                 "querySubscription", "deleteSubscription")
_ENTITY_MAP = ("retrieveEntityMap", "updateEntityMap", "deleteEntityMap",
               "createEntityMapQueryEntity")
FEDERATION_OPS = "federationOps"
GROUPS: dict[str, frozenset[str]] = {
    FEDERATION_OPS: frozenset((*_CONSUMPTION, *_SUBSCRIPTION, *_ENTITY_MAP,
                               "retrieveContextSourceIdentity")),
    "associationOps": frozenset((*_CONSUMPTION, *_SUBSCRIPTION,
                                 "retrieveContextSourceIdentity")),
    "updateOps": frozenset(("updateEntity", "updateAttrs", "replaceEntity", "replaceAttrs")),
    "retrieveOps": frozenset(("retrieveEntity", "queryEntity")),
    "redirectionOps": frozenset((
        "createEntity", "updateEntity", "appendAttrs", "updateAttrs", "deleteAttrs",
        "deleteEntity", "mergeEntity", "replaceEntity", "replaceAttrs", "retrieveEntity",
        "queryEntity", "purgeEntity", *_CONSUMPTION[3:], *_ENTITY_MAP,
        "retrieveContextSourceIdentity")),
}
# What an auxiliary source may be asked (clause 4.3.6.2: it only ever completes reads).
READ_ONLY: frozenset[str] = frozenset((*_CONSUMPTION, "retrieveTemporal", "queryTemporal",
                                       "retrieveContextSourceIdentity"))


def check_operations(names: Iterable[str]) -> list[str]:
    """The names as given (duplicates dropped); BadRequestData for an unknown one."""
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or (name not in BITS and name not in GROUPS):
            raise BadRequestData(f"unknown operation {name!r:.60} in operations: use the "
                                 "operation names of clause 4.20 or federationOps, "
                                 "associationOps, updateOps, retrieveOps, redirectionOps")
        if name not in out:
            out.append(name)
    return out


def expand_operations(names: Iterable[str] | None) -> frozenset[str]:
    """The operations named, groups expanded; federationOps when `names` is None."""
    found: set[str] = set()
    for name in (FEDERATION_OPS,) if names is None else names:
        found.update(GROUPS.get(name, (name,)))
    return frozenset(found)


def operations_mask(names: Iterable[str] | None) -> int:
    """The bit mask of `expand_operations(names)`."""
    mask = 0
    for name in expand_operations(names):
        mask |= BITS[name]
    return mask


def operation_bit(name: str) -> int:
    """The bit of one operation name; BadRequestData for a name that is not one."""
    bit = BITS.get(name)
    if bit is None:
        raise BadRequestData(f"{name!r:.60} is not an operation name of clause 4.20")
    return bit
