"""Measures onto NGSI-LD attribute instances, and the entity mutations that write them (pure).

For each measure group of a message (one update each): mapped measures are coerced to their
provisioned type and written under the provisioned name (with unitCode, datasetId and metadata
sub-properties); measures nothing maps keep their name and value (unless explicitAttrs says
otherwise); expressions run in provisioning order over the measures and the values computed
before them (one whose variables the message does not name is skipped; a null result is not
written). `observedAt` is the measure's own time, else the transport's, else the reception
time (none when the provisioning sets `timestamp: false`). A value that does not fit its type
or an expression that fails rejects the whole message: nothing of it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from urbis.agents.measure_plan import AttrPlan, Plan, names_of
from urbis.context import operations as ops
from urbis.context.device_values import as_is, checked, infer, value_key
from urbis.context.devices import EXPRESSION, INVALID_VALUE
from urbis.context.errors import BadRequestData
from urbis.context.expressions import Expression
from urbis.context.jsonld import TermMap
from urbis.context.model import (
    GEO_CORE_ATTRS,
    GEO_PROPERTY,
    INSTANCE_KEYS,
    PROPERTY,
    SYS_ATTRS,
    Entity,
    Instance,
)
from urbis.context.normalize import check_name
from urbis.decoders.base import Measurement
from urbis.storage.base import Change

_IGNORED = frozenset({"id", "type"})  # FIWARE agents drop measures with these names


class MappingError(Exception):
    """A message that cannot be written: `reason` is the dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Update:
    """One entity change of a message: attributes to append; statics it must carry."""

    entity_id: str
    type_iri: str
    attrs: dict[str, list[Instance]] = field(default_factory=dict)
    statics: tuple[tuple[str, Instance], ...] = ()
    initial: tuple[tuple[str, Instance], ...] = ()  # only when the update creates the entity


@dataclass(slots=True)
class _Emitted:
    name: str
    object_id: str
    target: tuple[str, str]
    iri: str
    inst: Instance
    provisioned: bool


def apply(plan: Plan, measures: Sequence[Measurement], when: str, tm: TermMap
          ) -> list[Update]:
    """The updates of one message; `when` is the observation time of measures without one."""
    updates: list[Update] = []
    ordered = sorted(measures, key=lambda m: m.group)
    for index, (_, group) in enumerate(groupby(ordered, key=lambda m: m.group)):
        updates.extend(_group(plan, list(group), when, tm, first=index == 0))
    if not updates:
        updates.extend(_group(plan, [], when, tm, first=True))
    return updates


def _group(plan: Plan, measures: list[Measurement], when: str, tm: TermMap, *, first: bool
           ) -> list[Update]:
    scope: dict[str, Any] = dict(plan.context)
    present: set[str] = set()
    emitted: list[_Emitted] = []
    for m in measures:
        if m.value is None or m.name in _IGNORED:
            continue
        present.add(m.name)
        stamp = m.observed_at or when
        plans = plan.by_object.get(m.name)
        if plans:
            for p in plans:
                value = _coerce(p, m.value, m.name)
                scope[p.name] = scope[m.name] = value
                present.add(p.name)
                emitted.append(_mapped(plan, p, value, stamp, m))
        else:
            scope[m.name] = m.value
            emitted.append(_unmapped(plan, m, stamp, tm))
    _expressions(plan, scope, present, emitted, when)
    keep = _explicit(plan, scope)
    return _updates(plan, [e for e in emitted if _kept(e, keep)], keep, first, tm)


def _coerce(p: AttrPlan, value: Any, what: str) -> Any:
    try:
        return checked(p.kind, p.coerce, value)
    except BadRequestData as err:
        raise MappingError(INVALID_VALUE, f"{what}: {err.detail}") from None


def _instance(plan: Plan, kind: str, value: Any, stamp: str, unit: str | None,
              dataset: str | None) -> Instance:
    inst: Instance = {"type": kind, value_key(kind): value}
    if plan.timestamp:
        inst["observedAt"] = stamp
    if unit:
        inst["unitCode"] = unit
    if dataset:
        inst["datasetId"] = dataset
    return inst


def _mapped(plan: Plan, p: AttrPlan, value: Any, stamp: str, m: Measurement | None
            ) -> _Emitted:
    inst = _instance(plan, p.kind, value, stamp, p.unit or (m.unit if m else None),
                     p.dataset_id or (m.dataset_id if m else None))
    for iri, sub in p.subs:
        inst[iri] = dict(sub)
    target = p.target or (plan.entity_id, plan.type_iri)
    return _Emitted(p.name, p.object_id, target, p.iri, inst, True)


def _unmapped(plan: Plan, m: Measurement, stamp: str, tm: TermMap) -> _Emitted:
    try:
        check_name(m.name, "measure name")
        iri = tm.expand(m.name)
        kind = GEO_PROPERTY if iri in GEO_CORE_ATTRS else infer(m.value)
        value = checked(kind, as_is, m.value)
    except BadRequestData as err:
        raise MappingError(INVALID_VALUE, f"{m.name}: {err.detail}") from None
    inst = _instance(plan, kind, value, stamp, m.unit, m.dataset_id)
    return _Emitted(m.name, m.name, (plan.entity_id, plan.type_iri), iri, inst, False)


def _expressions(plan: Plan, scope: dict[str, Any], present: set[str],
                 emitted: list[_Emitted], when: str) -> None:
    for p in plan.expressions:
        assert p.expression is not None
        names = p.expression.names
        if not names <= scope.keys():
            continue  # a variable the message does not give (FIWARE: not "covered")
        if p.object_id not in present and not names & present and names - plan.context.keys():
            continue  # nothing it reads came with this message
        result = _evaluate(p.expression, scope, p.name)
        if result is None or result == p.skip:
            continue
        value = _coerce(p, result, p.name)
        scope[p.name] = value
        present.add(p.name)
        emitted.append(_mapped(plan, p, value, when, None))


def _evaluate(expression: Expression, scope: dict[str, Any], what: str) -> Any:
    try:
        return expression.evaluate(scope)
    except BadRequestData as err:  # ExpressionError
        raise MappingError(EXPRESSION, f"{what}: {err.detail}") from None


def _explicit(plan: Plan, scope: dict[str, Any]) -> bool | frozenset[str]:
    """False: every measure; True: provisioned attributes only; a set: those names only."""
    rule = plan.explicit
    if not isinstance(rule, Expression):
        return rule
    result = _evaluate(rule, scope, "explicitAttrs")
    if isinstance(result, bool):
        return not result  # FIWARE: true propagates every measure, false the provisioned
    if isinstance(result, list):
        return names_of(result)
    raise MappingError(EXPRESSION, "explicitAttrs must give a boolean or an array")


def _kept(e: _Emitted, keep: bool | frozenset[str]) -> bool:
    if keep is False:
        return True
    if keep is True:
        return e.provisioned
    return e.provisioned and (e.name in keep or "object_id:" + e.object_id in keep)


def _commands(plan: Plan, tm: TermMap) -> tuple[tuple[str, Instance], ...]:
    """A new entity's command attributes: the command, its status and its info."""
    out: list[tuple[str, Instance]] = []
    for name in plan.commands:
        for attr, value in ((name, ""), (f"{name}_status", "UNKNOWN"), (f"{name}_info", "")):
            out.append((tm.expand(attr), {"type": PROPERTY, "value": value}))
    return tuple(out)


def _updates(plan: Plan, emitted: list[_Emitted], keep: bool | frozenset[str], first: bool,
             tm: TermMap) -> list[Update]:
    device = (plan.entity_id, plan.type_iri)
    by_target: dict[tuple[str, str], Update] = {}
    if first:
        statics = tuple((iri, inst) for name, iri, inst in plan.statics
                        if not isinstance(keep, frozenset) or name in keep)
        by_target[device] = Update(plan.entity_id, plan.type_iri, statics=statics,
                                   initial=_commands(plan, tm))
    for e in emitted:
        update = by_target.get(e.target)
        if update is None:
            update = by_target[e.target] = Update(*e.target)
        instances = update.attrs.setdefault(e.iri, [])
        dataset = e.inst.get("datasetId")
        instances[:] = [i for i in instances if i.get("datasetId") != dataset]
        instances.append(e.inst)
    return list(by_target.values())


# --- the store mutation of an update -----------------------------------------------------------


def mutation(update: Update, now: str) -> Callable[[Entity | None], Change]:
    """Create the entity (with its statics) or append the update's attributes to it."""

    def fn(current: Entity | None) -> Change:
        attrs = {iri: [_fresh(i) for i in insts] for iri, insts in update.attrs.items()}
        if current is None:
            for iri, inst in (*update.statics, *update.initial):
                attrs.setdefault(iri, [_fresh(inst)])
            entity = Entity(update.entity_id, [update.type_iri], attrs)
            return Change(ops.create(None, entity, now), result="created")
        for iri, inst in update.statics:
            if iri not in attrs and _differs(current.instance(iri, inst.get("datasetId")), inst):
                attrs[iri] = [_fresh(inst)]
        if not attrs and update.type_iri in current.types:
            return Change()
        merged, _ = ops.append_attrs(current, update.entity_id, attrs, now, True,
                                     [update.type_iri])
        return Change(merged)

    return fn


def _fresh(inst: Instance) -> Instance:
    """A copy the store may stamp (sub-properties copied too)."""
    return {k: (dict(v) if isinstance(v, dict) and k not in INSTANCE_KEYS else v)
            for k, v in inst.items()}


def _core(inst: Instance) -> dict[str, Any]:
    return {k: (_core(v) if isinstance(v, dict) and k not in INSTANCE_KEYS else v)
            for k, v in inst.items() if k not in SYS_ATTRS}


def _differs(current: Instance | None, wanted: Instance) -> bool:
    return current is None or _core(current) != _core(wanted)
