"""Notifications (ETSI GS CIM 009 V1.8.1 clauses 5.2.19, 5.3.1, 7.3): bodies and messages.

A notification carries the entities a subscription was triggered by, rendered as GET renders
them (`urbis.context.render`) with the subscription's @context, in its `format`, restricted to
`notification.attributes` (or pick / omit), with `sysAttrs`. With `showChanges` each changed
attribute instance also carries its previous value (`previousValue`, `previousObject`,
`previousLanguageMap`, ...). A deleted attribute is rendered as NGSI-LD Null
(`"urn:ngsi-ld:null"`) with `deletedAt`; a deleted entity as its id, type and `deletedAt`.

The @context goes with the `accept` of the endpoint: `application/json` (default) names it in a
`Link` header, `application/ld+json` inlines it as `@context`; `application/geo+json` sends
`data` as a FeatureCollection. MQTT messages are `{"metadata": {headers}, "body": ...}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from urbis.context.geojson import to_feature_collection
from urbis.context.jsonld import TermMap
from urbis.context.model import PROPERTY, RELATIONSHIP, VALUE_KEYS, Entity
from urbis.context.notify_match import EntityChange
from urbis.context.render import KEY_VALUES, RenderOptions, render
from urbis.context.subscription import Subscription

NOTIFICATION = "Notification"
ID_PREFIX = "urn:ngsi-ld:Notification:"
NGSI_LD_NULL = "urn:ngsi-ld:null"
JSON, JSON_LD, GEO_JSON = "application/json", "application/ld+json", "application/geo+json"
JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
PREVIOUS = {key: "previous" + key[0].upper() + key[1:] for key in VALUE_KEYS.values()}


def context_url(sub: Subscription) -> str:
    """The @context of a subscription's notifications: jsonldContext, else its own."""
    return sub.jsonld_context or sub.context


def render_options(sub: Subscription) -> RenderOptions:
    """How the entities of a subscription's notifications are rendered."""
    note = sub.notification
    pick = set(note.pick) if note.pick else None
    omit = set(note.omit) if note.omit else None
    attrs = set(note.attributes) if note.attributes else pick
    return RenderOptions(
        format=note.format or "normalized", sys_attrs=bool(note.sys_attrs),
        attrs={a for a in attrs if a not in ("id", "type")} if attrs is not None else None,
        omit={a for a in omit if a not in ("id", "type")} if omit is not None else None,
        lang=sub.lang,
        keep_id=not (omit and "id" in omit) and (pick is None or "id" in pick),
        keep_type=not (omit and "type" in omit) and (pick is None or "type" in pick))


def render_change(sub: Subscription, change: EntityChange, tm: TermMap, now: str
                  ) -> dict[str, Any]:
    """The entity of one change as the subscription's notifications show it."""
    opts = render_options(sub)
    if change.after is None:
        return _deleted_entity(change.entity, tm, opts, now)
    out = render(change.after, tm, opts)
    wanted = _wanted(opts)
    for attr in change.deleted if change.before is not None else ():
        if wanted(attr):
            out[tm.compact(attr)] = _null(change.before, attr, opts, now)  # type: ignore[arg-type]
    if sub.notification.show_changes and change.before is not None:
        for attr in change.updated:
            if wanted(attr):
                _add_previous(out, tm.compact(attr), change.before.attrs[attr], opts)
    return out


def notification_body(sub: Subscription, entities: list[dict[str, Any]], now: str,
                      notification_id: str, reason: str | None = None) -> dict[str, Any]:
    """The Notification data type (without @context: see `http_message`)."""
    body: dict[str, Any] = {"id": notification_id, "type": NOTIFICATION,
                            "subscriptionId": sub.id, "notifiedAt": now, "data": entities}
    if reason is not None:
        body["triggerReason"] = reason
    return body


def message(sub: Subscription, body: dict[str, Any], tenant: str | None
            ) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, body) of a notification for the endpoint's `accept`, receiverInfo included."""
    endpoint = sub.notification.endpoint
    accept = endpoint.accept or JSON
    context = context_url(sub)
    headers = {"Content-Type": accept}
    if accept == JSON_LD:
        body = {**body, "@context": context}
    else:
        headers["Link"] = f'<{context}>; rel="{JSONLD_REL}"; type="application/ld+json"'
        if accept == GEO_JSON:
            key_values = sub.notification.format == KEY_VALUES
            body = {**body, "data": to_feature_collection(body["data"], key_values=key_values)}
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    for pair in endpoint.receiver_info or ():
        headers[pair["key"]] = pair["value"]
    return headers, body


def mqtt_payload(headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """The JSON object published to an MQTT endpoint (clause 7.3): metadata and body."""
    return {"metadata": headers, "body": body}


def _wanted(opts: RenderOptions) -> Any:
    def wanted(attr: str) -> bool:
        return (opts.attrs is None or attr in opts.attrs) and not (opts.omit and attr in opts.omit)

    return wanted


def _deleted_entity(entity: Entity, tm: TermMap, opts: RenderOptions, now: str
                    ) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entity.id}
    types = [tm.compact_value_iri(t) for t in entity.types]
    out["type"] = types[0] if len(types) == 1 else types
    if opts.format != KEY_VALUES:
        out["deletedAt"] = now
    return out


def _null(before: Entity, attr: str, opts: RenderOptions, now: str) -> Any:
    if opts.format == KEY_VALUES:
        return NGSI_LD_NULL
    kind = before.attrs[attr][0].get("type", PROPERTY)
    if kind != RELATIONSHIP:
        kind = PROPERTY
    value: dict[str, Any] = {"type": kind, VALUE_KEYS[kind]: NGSI_LD_NULL, "deletedAt": now}
    if opts.format != "normalized":
        value.pop("type")
    return value


def _add_previous(out: dict[str, Any], name: str, old: Sequence[dict[str, Any]],
                  opts: RenderOptions) -> None:
    """Add previous values to the rendered instances of one attribute (matched by datasetId)."""
    rendered = out.get(name)
    if rendered is None:
        return
    items = rendered if isinstance(rendered, list) else [rendered]
    fixed = []
    for item in items:
        if not isinstance(item, dict) or "coordinates" in item or "geometries" in item:
            item = {"value": item}  # concise: a bare value (or geometry)
        dataset = item.get("datasetId")
        prior = next((i for i in old if i.get("datasetId") == dataset), None)
        if prior is not None:
            key = VALUE_KEYS.get(prior.get("type", PROPERTY), "value")
            if key in prior:
                item[PREVIOUS[key]] = prior[key]
        fixed.append(item)
    out[name] = fixed if isinstance(rendered, list) else fixed[0]
