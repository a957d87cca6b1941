"""Pure-Python evaluation of q, scopeQ and type selections over internal entities.

Used for subscription matching and as the oracle of the SQL compilers: both must select exactly
the same entities. Semantics (ETSI GS CIM 009 V1.9.1 clause 4.9):

- The target elements of a path are the attribute's instances (any instance may match), then
  their sub-attributes; the target value is the member named by the instance type ("value",
  "object", "languageMap", ...) or the trailing meta member (`a.observedAt`), optionally
  followed into a compound value by `[k1.k2]` (`*` is any member). A LanguageProperty without
  `[lang]` targets every language.
- An array target value matches when any of its elements does; `{"@value": v}` compares as v
  and `{"object": uri}` (objectList items) as uri. Anything else that is not a scalar never
  compares.
- Values compare only with their own data type (a number never equals a string); unquoted
  date-times and times compare temporally, other text code point by code point.
- `!=` matches a present target that equals none of the values; `!~=` a present target that has
  text and no text matching the pattern. Ordering and patterns never match a Relationship.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from urbis.context.model import (
    LANGUAGE_PROPERTY,
    LIST_RELATIONSHIP,
    RELATIONSHIP,
    VALUE_KEYS,
    Entity,
    Instance,
)
from urbis.context.query.q import (
    WILDCARD,
    And,
    Compare,
    Exists,
    Kind,
    Op,
    Or,
    Path,
    Pattern,
    QNode,
    Range,
    Value,
    ValueList,
    compile_regex,
    datetime_key,
    time_key,
)
from urbis.context.query.scope import ScopeAnd, ScopeNode, ScopeOr, term_matches
from urbis.context.query.types import TypeAnd, TypeName, TypeNode

UNORDERED_TYPES = (RELATIONSHIP, LIST_RELATIONSHIP)
_NOTHING = object()
_ORDER: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
    Op.LT: operator.lt,
    Op.LE: operator.le,
}
Predicate = Callable[[Any], bool]
ElementTest = Callable[[Instance], bool]


def q_matches(node: QNode, entity: Entity) -> bool:
    """Whether the entity satisfies the q expression."""
    return _matches(node, entity.attrs)


def _matches(node: QNode, attrs: dict[str, Any]) -> bool:
    if isinstance(node, And):
        return all(_matches(item, attrs) for item in node.items)
    if isinstance(node, Or):
        return any(_matches(item, attrs) for item in node.items)
    if isinstance(node, Exists):
        found = any(target_exists(node.path, el) for el in elements(node.path, attrs))
        return found != node.negated
    test = _element_test(node)
    return any(test(el) for el in elements(node.path, attrs))


def elements(path: Path, attrs: dict[str, Any]) -> list[Instance]:
    """The target elements: every instance of the attribute, then of each sub-attribute."""
    instances = attrs.get(path.attr)
    if not isinstance(instances, list):
        return []
    found = [inst for inst in instances if isinstance(inst, dict)]
    for sub in path.sub:
        found = [el[sub] for el in found if isinstance(el.get(sub), dict)]
    return found


def targets(path: Path, element: Instance) -> list[Any]:
    """The raw target values of one element (before array flattening)."""
    if path.meta is not None:
        return [element[path.meta]] if path.meta in element else []
    kind = element.get("type")
    key = VALUE_KEYS.get(kind, "value") if isinstance(kind, str) else "value"
    if key not in element:
        return []
    found = [element[key]]
    keys = path.keys or ((WILDCARD,) if kind == LANGUAGE_PROPERTY else ())
    for name in keys:
        found = [child for obj in found if isinstance(obj, dict) for child in _members(obj, name)]
    return found


def _members(obj: dict[str, Any], name: str) -> list[Any]:
    if name == WILDCARD:
        return list(obj.values())
    return [obj[name]] if name in obj else []


def target_exists(path: Path, element: Instance) -> bool:
    """Whether the element holds the target (always, unless a meta member or keys are named)."""
    if path.meta is not None:
        return path.meta in element
    return bool(targets(path, element)) if path.keys else True


def candidates(path: Path, element: Instance) -> Iterator[Any]:
    """The scalar values a query value is compared with."""
    for raw in targets(path, element):
        for item in raw if isinstance(raw, list) else (raw,):
            yield _unwrap(item)


def _unwrap(item: Any) -> Any:
    if isinstance(item, dict):
        if "@value" in item:
            return item["@value"]
        return item.get("object", _NOTHING)
    return item


def orderable(path: Path, element: Instance) -> bool:
    """False for a Relationship target: only == and != apply to those."""
    return path.meta is not None or element.get("type") not in UNORDERED_TYPES


@lru_cache(maxsize=2048)
def _element_test(node: Compare | Pattern) -> ElementTest:
    if isinstance(node, Pattern):
        return _pattern_test(node)
    path = node.path
    if node.op is Op.NE:
        equal = predicate(Op.EQ, node.operand)
        return lambda el: target_exists(path, el) and not _any(path, el, equal)
    test = predicate(node.op, node.operand)
    if node.op is Op.EQ:
        return lambda el: _any(path, el, test)
    return lambda el: orderable(path, el) and _any(path, el, test)


def _pattern_test(node: Pattern) -> ElementTest:
    path, regex = node.path, compile_regex(node.regex)

    def is_text(value: Any) -> bool:
        return isinstance(value, str)

    def matches(value: Any) -> bool:
        return isinstance(value, str) and regex.search(value) is not None

    if node.negated:
        return lambda el: (
            orderable(path, el) and _any(path, el, is_text) and not _any(path, el, matches)
        )
    return lambda el: orderable(path, el) and _any(path, el, matches)


def _any(path: Path, element: Instance, test: Predicate) -> bool:
    return any(test(value) for value in candidates(path, element))


def predicate(op: Op, operand: Value | ValueList | Range) -> Predicate:
    """A test of one candidate value against `op operand` (NE is handled by the caller)."""
    if isinstance(operand, ValueList):
        tests = [predicate(Op.EQ, value) for value in operand.values]
        return lambda value: any(test(value) for test in tests)
    if isinstance(operand, Range):
        low, high = predicate(Op.GE, operand.low), predicate(Op.LE, operand.high)
        return lambda value: low(value) and high(value)
    kind, wanted, compare = operand.kind, value_key(operand.value, operand.kind), _ORDER[op]
    if wanted is None or (kind is Kind.BOOL and op is not Op.EQ):
        return lambda value: False

    def test(value: Any) -> bool:
        key = value_key(value, kind)
        return key is not None and compare(key, wanted)

    return test


def value_key(value: Any, kind: Kind) -> Any:
    """The comparable form of a value for a query value of `kind`, or None if they differ."""
    if kind is Kind.NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return value if ok else None
    if kind is Kind.BOOL:
        return value if isinstance(value, bool) else None
    if not isinstance(value, str):
        return None
    if kind is Kind.DATETIME:
        return datetime_key(value)
    if kind is Kind.TIME:
        return time_key(value)
    return value


def scope_matches(node: ScopeNode, scopes: list[str] | None) -> bool:
    """Whether an entity with these scopes satisfies the scopeQ expression."""
    if isinstance(node, ScopeAnd):
        return all(scope_matches(item, scopes) for item in node.items)
    if isinstance(node, ScopeOr):
        return any(scope_matches(item, scopes) for item in node.items)
    if not node.levels:
        return node.descendants and bool(scopes)
    return any(isinstance(s, str) and term_matches(node, s) for s in scopes or ())


def types_match(node: TypeNode, types: list[str]) -> bool:
    """Whether an entity with these (expanded) types satisfies the type selection."""
    if isinstance(node, TypeName):
        return node.iri in types
    if isinstance(node, TypeAnd):
        return all(types_match(item, types) for item in node.items)
    return any(types_match(item, types) for item in node.items)
