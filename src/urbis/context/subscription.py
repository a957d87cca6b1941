"""NGSI-LD subscriptions (ETSI GS CIM 009 V1.8.1 clauses 5.2.12 to 5.2.15): the internal form.

A `Subscription` holds every term expanded: entity types (as type-selection ASTs), watched and
notified attribute names, q paths and the geoQ geoproperty are IRIs, so the matcher compares
them with stored entities directly. `context` is the URL of the @context the subscription was
created with; `render` compacts with the caller's term map. `to_record` / `from_record` give
the JSON document a store keeps; the delivery counters (`Delivery`) are kept by the store apart
from it, since the notifier updates them without touching the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from urbis.context.geo import GeoQuery, parse_geo_q_object
from urbis.context.jsonld import CORE_CONTEXT_URL, TermMap
from urbis.context.query.codec import q_from_json, q_to_json, type_from_json, type_to_json
from urbis.context.query.q import datetime_key, to_text
from urbis.context.query.q_ast import QNode
from urbis.context.query.types import TypeNode, type_names, type_to_text

SUBSCRIPTION = "Subscription"
TRIGGERS = ("entityCreated", "entityUpdated", "entityDeleted",
            "attributeCreated", "attributeUpdated", "attributeDeleted")
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
ACTIVE, PAUSED, EXPIRED, FAILED = "active", "paused", "expired", "failed"
OK = "ok"
_KEEP = ("id", "type")  # pick / omit members that are not attribute names


@dataclass(slots=True)
class EntitySelector:
    """One `entities` item (clause 5.2.33 EntitySelector): a type selection, id or idPattern."""

    type: TypeNode
    id: str | None = None
    id_pattern: str | None = None


@dataclass(slots=True)
class Endpoint:
    """Where notifications go (clause 5.2.15); `uri` is http(s) or mqtt(s)."""

    uri: str
    accept: str | None = None
    timeout: float | None = None  # milliseconds
    cooldown: float | None = None  # milliseconds
    receiver_info: list[dict[str, str]] | None = None
    notifier_info: list[dict[str, str]] | None = None


@dataclass(slots=True)
class NotificationParams:
    """What a notification carries and where it goes (clause 5.2.14)."""

    endpoint: Endpoint
    attributes: list[str] | None = None  # attribute IRIs
    pick: list[str] | None = None  # attribute IRIs, or "id" / "type"
    omit: list[str] | None = None
    format: str | None = None  # normalized (default), concise, keyValues
    show_changes: bool | None = None
    sys_attrs: bool | None = None


@dataclass(slots=True)
class Delivery:
    """Notification outcomes so far, kept by the store (clause 5.2.14, read-only members)."""

    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_status: str | None = None  # "ok" or "failed" for the last attempt


@dataclass(slots=True)
class Subscription:
    """One subscription in internal (expanded) form; None means the member is absent."""

    id: str
    notification: NotificationParams
    context: str = CORE_CONTEXT_URL  # the @context URL it was created with
    name: str | None = None
    description: str | None = None
    entities: list[EntitySelector] = field(default_factory=list)
    watched: list[str] | None = None  # watchedAttributes IRIs
    triggers: list[str] | None = None  # notificationTrigger as given
    time_interval: float | None = None
    q: QNode | None = None
    geo_q: dict[str, Any] | None = None  # georel, geometry, coordinates, geoproperty IRI
    scope_q: str | None = None
    csf: str | None = None
    is_active: bool | None = None
    expires_at: str | None = None
    throttling: float | None = None
    lang: str | None = None
    dataset_id: list[str] | None = None
    jsonld_context: str | None = None
    created_at: str = ""
    modified_at: str = ""
    delivery: Delivery = field(default_factory=Delivery)

    @property
    def active(self) -> bool:
        """Not paused by the client (isActive defaults to true)."""
        return self.is_active is not False

    @property
    def expires_key(self) -> str | None:
        """expiresAt as sortable UTC text, for comparisons in stores."""
        return None if self.expires_at is None else datetime_key(self.expires_at)

    @property
    def effective_triggers(self) -> tuple[str, ...]:
        """notificationTrigger, or the default of clause 5.2.12."""
        return tuple(self.triggers) if self.triggers else DEFAULT_TRIGGERS

    def expired(self, now: str) -> bool:
        """True once expiresAt has passed."""
        key, now_key = self.expires_key, datetime_key(now)
        return key is not None and now_key is not None and key <= now_key

    def status(self, now: str) -> str:
        """active, paused, expired or failed (the last notification failed)."""
        if self.expired(now):
            return EXPIRED
        if not self.active:
            return PAUSED
        return FAILED if self.delivery.last_status == FAILED else ACTIVE

    def geo_query(self) -> GeoQuery | None:
        """The parsed geoQ (its geoproperty is already an IRI)."""
        return None if self.geo_q is None else parse_geo_q_object(self.geo_q, _same)

    def type_keys(self) -> list[str | None]:
        """Type IRIs a changed entity must have one of to match; [None] for any type."""
        if not self.entities:
            return [None]
        names: set[str] = set().union(*(type_names(s.type) for s in self.entities))
        return [*sorted(names)]

    def attr_keys(self) -> list[str | None]:
        """Attribute IRIs whose change may trigger; [None] for any, [] for periodic ones."""
        if self.time_interval is not None:
            return []
        return list(self.watched) if self.watched else [None]


def _same(term: str) -> str:
    return term


# --- stored form ------------------------------------------------------------------------

_SCALARS = ("name", "description", "watched", "triggers", "time_interval", "geo_q", "scope_q",
            "csf", "is_active", "expires_at", "throttling", "lang", "dataset_id",
            "jsonld_context")
_NOTIFICATION = ("attributes", "pick", "omit", "format", "show_changes", "sys_attrs")
_ENDPOINT = ("accept", "timeout", "cooldown", "receiver_info", "notifier_info")


def to_record(sub: Subscription) -> dict[str, Any]:
    """The JSON document a store keeps (without the delivery counters)."""
    record: dict[str, Any] = {"id": sub.id, "context": sub.context,
                              "created_at": sub.created_at, "modified_at": sub.modified_at}
    record.update({k: getattr(sub, k) for k in _SCALARS if getattr(sub, k) is not None})
    if sub.entities:
        record["entities"] = [_selector_record(s) for s in sub.entities]
    if sub.q is not None:
        record["q"] = q_to_json(sub.q)
    note = sub.notification
    notification = {k: getattr(note, k) for k in _NOTIFICATION if getattr(note, k) is not None}
    endpoint = {k: getattr(note.endpoint, k) for k in _ENDPOINT
                if getattr(note.endpoint, k) is not None}
    notification["endpoint"] = {"uri": note.endpoint.uri, **endpoint}
    record["notification"] = notification
    return record


def from_record(record: dict[str, Any], delivery: Delivery | None = None) -> Subscription:
    """The Subscription of a stored document."""
    note = dict(record["notification"])
    note["endpoint"] = Endpoint(**note["endpoint"])
    sub = Subscription(
        id=record["id"], notification=NotificationParams(**note), context=record["context"],
        created_at=record["created_at"], modified_at=record["modified_at"],
        delivery=delivery or Delivery(), **{k: record[k] for k in _SCALARS if k in record})
    sub.entities = [EntitySelector(type_from_json(s["type"]), s.get("id"), s.get("idPattern"))
                    for s in record.get("entities", ())]
    if "q" in record:
        sub.q = q_from_json(record["q"])
    return sub


def _selector_record(selector: EntitySelector) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_to_json(selector.type)}
    if selector.id is not None:
        out["id"] = selector.id
    if selector.id_pattern is not None:
        out["idPattern"] = selector.id_pattern
    return out


# --- rendering (clause 5.2.12, compacted with the caller's @context) ---------------------

_RENDERED = (("name", "subscriptionName"), ("description", "description"),
             ("time_interval", "timeInterval"), ("scope_q", "scopeQ"), ("csf", "csf"),
             ("is_active", "isActive"), ("expires_at", "expiresAt"),
             ("throttling", "throttling"), ("lang", "lang"), ("dataset_id", "datasetId"),
             ("jsonld_context", "jsonldContext"))


def render(sub: Subscription, tm: TermMap, now: str, *, sys_attrs: bool = False
           ) -> dict[str, Any]:
    """The Subscription data type as returned by GET, terms compacted with `tm`."""
    out: dict[str, Any] = {"id": sub.id, "type": SUBSCRIPTION}
    if sub.entities:
        out["entities"] = [_render_selector(s, tm) for s in sub.entities]
    if sub.watched:
        out["watchedAttributes"] = [tm.compact(a) for a in sub.watched]
    out["notificationTrigger"] = list(sub.effective_triggers)
    if sub.q is not None:
        out["q"] = to_text(sub.q, tm.compact)
    if sub.geo_q is not None:
        out["geoQ"] = _render_geo_q(sub.geo_q, tm)
    for attr, member in _RENDERED:
        value = getattr(sub, attr)
        if value is not None:
            out[member] = value
    out["status"] = sub.status(now)
    out["notification"] = render_notification(sub.notification, sub.delivery, tm)
    if sys_attrs:
        out["createdAt"], out["modifiedAt"] = sub.created_at, sub.modified_at
    return out


def render_notification(note: NotificationParams, delivery: Delivery, tm: TermMap
                        ) -> dict[str, Any]:
    """NotificationParams with the delivery counters that have anything to say."""
    out: dict[str, Any] = {}
    if note.attributes:
        out["attributes"] = [tm.compact(a) for a in note.attributes]
    for name, names in (("pick", note.pick), ("omit", note.omit)):
        if names:
            out[name] = [n if n in _KEEP else tm.compact(n) for n in names]
    for attr, member in (("format", "format"), ("show_changes", "showChanges"),
                         ("sys_attrs", "sysAttrs")):
        if getattr(note, attr) is not None:
            out[member] = getattr(note, attr)
    out["endpoint"] = _render_endpoint(note.endpoint)
    return {**out, **_render_delivery(delivery)}


def _render_endpoint(endpoint: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": endpoint.uri}
    for attr, member in (("accept", "accept"), ("timeout", "timeout"), ("cooldown", "cooldown"),
                         ("receiver_info", "receiverInfo"), ("notifier_info", "notifierInfo")):
        if getattr(endpoint, attr) is not None:
            out[member] = getattr(endpoint, attr)
    return out


def _render_delivery(delivery: Delivery) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if delivery.last_status is not None:
        out["status"] = delivery.last_status
    if delivery.times_sent:
        out["timesSent"] = delivery.times_sent
    if delivery.times_failed:
        out["timesFailed"] = delivery.times_failed
    for attr, member in (("last_notification", "lastNotification"),
                         ("last_success", "lastSuccess"), ("last_failure", "lastFailure")):
        if getattr(delivery, attr) is not None:
            out[member] = getattr(delivery, attr)
    return out


def _render_selector(selector: EntitySelector, tm: TermMap) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if selector.id is not None:
        out["id"] = selector.id
    if selector.id_pattern is not None:
        out["idPattern"] = selector.id_pattern
    out["type"] = type_to_text(selector.type, tm.compact_value_iri)
    return out


def _render_geo_q(geo_q: dict[str, Any], tm: TermMap) -> dict[str, Any]:
    out = {k: geo_q[k] for k in ("geometry", "coordinates", "georel")}
    if "geoproperty" in geo_q:
        out["geoproperty"] = tm.compact(geo_q["geoproperty"])
    return out
