"""Context source registrations (ETSI GS CIM 009 V1.8.1 clauses 5.2.8 to 5.2.11, 5.2.34).

A `Registration` holds every term expanded: entity types, property and relationship names and
the names of extra registration properties are IRIs, so registrations match entity operations
and queries directly. `context` is the URL of the @context it was created with (the one to
speak to the source with). `to_record` / `from_record` give the JSON document a store keeps;
the distributed-operation counters (`SourceStatus`) are kept by the store apart from it.
`render` compacts with the caller's term map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from urbis.context.jsonld import CORE_CONTEXT_URL, TermMap
from urbis.context.query.q import datetime_key
from urbis.context.registration_ops import expand_operations, operations_mask

REGISTRATION = "ContextSourceRegistration"
INCLUSIVE, EXCLUSIVE, REDIRECT, AUXILIARY = "inclusive", "exclusive", "redirect", "auxiliary"
MODES = (INCLUSIVE, EXCLUSIVE, REDIRECT, AUXILIARY)
PROXIED = (EXCLUSIVE, REDIRECT)  # modes that forbid local data (clause 4.3.6.3)


@dataclass(slots=True)
class EntityInfo:
    """Which entities a source has (clause 5.2.8): one or more types, and an id or idPattern."""

    types: list[str]
    id: str | None = None
    id_pattern: str | None = None


@dataclass(slots=True)
class RegistrationInfo:
    """One `information` item (clause 5.2.10); None members are absent (any)."""

    entities: list[EntityInfo] | None = None
    property_names: list[str] | None = None
    relationship_names: list[str] | None = None

    @property
    def attrs(self) -> list[str] | None:
        """Property and relationship IRIs, or None when neither is named (every attribute)."""
        if self.property_names is None and self.relationship_names is None:
            return None
        return [*(self.property_names or ()), *(self.relationship_names or ())]


@dataclass(slots=True)
class TimeInterval:
    """observationInterval / managementInterval (clause 5.2.11)."""

    start_at: str
    end_at: str | None = None


@dataclass(slots=True)
class Management:
    """RegistrationManagementInfo (clause 5.2.34): how to talk to the source."""

    local_only: bool | None = None
    cache_duration: str | None = None  # an ISO 8601 duration
    timeout: float | None = None  # milliseconds
    cooldown: float | None = None  # milliseconds


@dataclass(slots=True)
class SourceStatus:
    """Outcomes of distributed operations so far (read-only members of clause 5.2.9)."""

    times_sent: int = 0
    times_failed: int = 0
    last_success: str | None = None
    last_failure: str | None = None
    status: str | None = None  # "ok" or "failed" for the last attempt


@dataclass(slots=True)
class Registration:
    """One registration in internal (expanded) form; None means the member is absent."""

    id: str
    information: list[RegistrationInfo]
    endpoint: str
    context: str = CORE_CONTEXT_URL
    name: str | None = None
    description: str | None = None
    tenant: str | None = None  # the tenant to use at the source
    observation_interval: TimeInterval | None = None
    management_interval: TimeInterval | None = None
    location: dict[str, Any] | None = None
    observation_space: dict[str, Any] | None = None
    operation_space: dict[str, Any] | None = None
    expires_at: str | None = None
    context_source_info: list[dict[str, str]] | None = None
    scope: list[str] | None = None
    mode: str | None = None
    operations: list[str] | None = None  # as given: operation and group names
    refresh_rate: str | None = None
    management: Management | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # extra ones: IRI -> value
    created_at: str = ""
    modified_at: str = ""
    source_status: SourceStatus = field(default_factory=SourceStatus)

    @property
    def effective_mode(self) -> str:
        """mode, inclusive by default."""
        return self.mode or INCLUSIVE

    @property
    def expanded_operations(self) -> frozenset[str]:
        """The operation names supported, groups expanded (federationOps by default)."""
        return expand_operations(self.operations)

    @property
    def operations_mask(self) -> int:
        """The bit mask of the supported operations (`registration_ops.BITS`)."""
        return operations_mask(self.operations)

    @property
    def expires_key(self) -> str | None:
        """expiresAt as sortable UTC text, for comparisons in stores."""
        return None if self.expires_at is None else datetime_key(self.expires_at)

    def expired(self, now: str) -> bool:
        """True once expiresAt has passed."""
        key, now_key = self.expires_key, datetime_key(now)
        return key is not None and now_key is not None and key <= now_key

    def supports(self, operation: str) -> bool:
        """Whether the source takes this operation."""
        return operation in self.expanded_operations

    def type_keys(self) -> list[str | None]:
        """Every entity type IRI named; None stands for an item without entities (any)."""
        keys: set[str | None] = set()
        for info in self.information:
            if info.entities is None:
                keys.add(None)
            else:
                keys.update(t for e in info.entities for t in e.types)
        return sorted(keys, key=lambda k: "" if k is None else k)

    def attr_keys(self) -> list[str | None]:
        """Every attribute IRI named; None stands for an item without names (any)."""
        keys: set[str | None] = set()
        for info in self.information:
            keys.update([None] if info.attrs is None else info.attrs)
        return sorted(keys, key=lambda k: "" if k is None else k)


# --- stored form ------------------------------------------------------------------------

_SCALARS = ("name", "description", "tenant", "location", "observation_space",
            "operation_space", "expires_at", "context_source_info", "scope", "mode",
            "operations", "refresh_rate")
_INTERVALS = ("observation_interval", "management_interval")


def to_record(reg: Registration) -> dict[str, Any]:
    """The JSON document a store keeps (without the status counters)."""
    record: dict[str, Any] = {"id": reg.id, "endpoint": reg.endpoint, "context": reg.context,
                              "created_at": reg.created_at, "modified_at": reg.modified_at,
                              "information": [_info_record(i) for i in reg.information]}
    record.update({k: getattr(reg, k) for k in _SCALARS if getattr(reg, k) is not None})
    for name in _INTERVALS:
        interval = getattr(reg, name)
        if interval is not None:
            record[name] = {"start_at": interval.start_at, "end_at": interval.end_at}
    if reg.management is not None:
        record["management"] = {k: v for k, v in _management_items(reg.management)}
    if reg.properties:
        record["properties"] = reg.properties
    return record


def from_record(record: dict[str, Any], status: SourceStatus | None = None) -> Registration:
    """The Registration of a stored document."""
    reg = Registration(
        id=record["id"], endpoint=record["endpoint"], context=record["context"],
        created_at=record["created_at"], modified_at=record["modified_at"],
        information=[_info_of(i) for i in record["information"]],
        properties=record.get("properties", {}), source_status=status or SourceStatus(),
        **{k: record[k] for k in _SCALARS if k in record})
    for name in _INTERVALS:
        if name in record:
            setattr(reg, name, TimeInterval(**record[name]))
    if "management" in record:
        reg.management = Management(**record["management"])
    return reg


def _info_record(info: RegistrationInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if info.entities is not None:
        out["entities"] = [{"types": e.types, "id": e.id, "id_pattern": e.id_pattern}
                           for e in info.entities]
    if info.property_names is not None:
        out["property_names"] = info.property_names
    if info.relationship_names is not None:
        out["relationship_names"] = info.relationship_names
    return out


def _info_of(record: dict[str, Any]) -> RegistrationInfo:
    entities = record.get("entities")
    return RegistrationInfo(
        None if entities is None else [EntityInfo(**e) for e in entities],
        record.get("property_names"), record.get("relationship_names"))


def _management_items(management: Management) -> list[tuple[str, Any]]:
    return [(k, getattr(management, k)) for k in ("local_only", "cache_duration", "timeout",
                                                   "cooldown") if getattr(management, k)
            is not None]


# --- rendering (clause 5.2.9, compacted with the caller's @context) ----------------------

_RENDERED = (("name", "registrationName"), ("description", "description"),
             ("tenant", "tenant"), ("location", "location"),
             ("observation_space", "observationSpace"), ("operation_space", "operationSpace"),
             ("expires_at", "expiresAt"), ("context_source_info", "contextSourceInfo"),
             ("operations", "operations"), ("refresh_rate", "refreshRate"))
_MANAGEMENT = {"local_only": "localOnly", "cache_duration": "cacheDuration",
               "timeout": "timeout", "cooldown": "cooldown"}


def render(reg: Registration, tm: TermMap, *, sys_attrs: bool = False) -> dict[str, Any]:
    """The CSourceRegistration data type as returned by GET, terms compacted with `tm`."""
    out: dict[str, Any] = {"id": reg.id, "type": REGISTRATION}
    out["information"] = [render_info(i, tm) for i in reg.information]
    out["endpoint"] = reg.endpoint
    out["mode"] = reg.effective_mode
    for attr, member in _RENDERED:
        value = getattr(reg, attr)
        if value is not None:
            out[member] = value
    if reg.scope is not None:
        out["scope"] = reg.scope[0] if len(reg.scope) == 1 else reg.scope
    for attr, member in (("observation_interval", "observationInterval"),
                         ("management_interval", "managementInterval")):
        interval = getattr(reg, attr)
        if interval is not None:
            out[member] = _render_interval(interval)
    if reg.management is not None:
        out["management"] = {_MANAGEMENT[k]: v for k, v in _management_items(reg.management)}
    for iri, value in reg.properties.items():
        out[tm.compact(iri)] = value
    out.update(_render_status(reg.source_status))
    if sys_attrs:
        out["createdAt"], out["modifiedAt"] = reg.created_at, reg.modified_at
    return out


def render_info(info: RegistrationInfo, tm: TermMap) -> dict[str, Any]:
    """One `information` item with its terms compacted."""
    out: dict[str, Any] = {}
    if info.entities is not None:
        out["entities"] = [_render_entity(e, tm) for e in info.entities]
    if info.property_names is not None:
        out["propertyNames"] = [tm.compact(n) for n in info.property_names]
    if info.relationship_names is not None:
        out["relationshipNames"] = [tm.compact(n) for n in info.relationship_names]
    return out


def _render_entity(entity: EntityInfo, tm: TermMap) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entity.id is not None:
        out["id"] = entity.id
    if entity.id_pattern is not None:
        out["idPattern"] = entity.id_pattern
    types = [tm.compact_value_iri(t) for t in entity.types]
    out["type"] = types[0] if len(types) == 1 else types
    return out


def _render_interval(interval: TimeInterval) -> dict[str, Any]:
    out = {"startAt": interval.start_at}
    if interval.end_at is not None:
        out["endAt"] = interval.end_at
    return out


def _render_status(status: SourceStatus) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if status.status is not None:
        out["status"] = status.status
    if status.times_sent:
        out["timesSent"] = status.times_sent
    if status.times_failed:
        out["timesFailed"] = status.times_failed
    if status.last_success is not None:
        out["lastSuccess"] = status.last_success
    if status.last_failure is not None:
        out["lastFailure"] = status.last_failure
    return out
