"""JSON forms of parsed q and type-selection ASTs, so that they can be stored with IRIs.

Expanded attribute and type IRIs cannot be written back as q or type-selection text (`:` and
`/` are not allowed in names there), so a stored subscription keeps its filters as these JSON
trees: lists and objects of plain strings, numbers and booleans that decode to the same AST.
"""

from __future__ import annotations

from typing import Any

from urbis.context.query.q_ast import (
    And,
    Compare,
    Exists,
    Kind,
    Op,
    Operand,
    Or,
    Path,
    Pattern,
    QNode,
    Range,
    Value,
    ValueList,
)
from urbis.context.query.types import TypeAnd, TypeName, TypeNode, TypeOr


def q_to_json(node: QNode) -> Any:
    """A q AST as JSON."""
    if isinstance(node, And | Or):
        return {"and" if isinstance(node, And) else "or": [q_to_json(i) for i in node.items]}
    if isinstance(node, Exists):
        return {"exists": _path(node.path), "not": node.negated}
    if isinstance(node, Pattern):
        return {"match": _path(node.path), "regex": node.regex, "not": node.negated}
    return {"cmp": _path(node.path), "op": node.op.value, "operand": _operand(node.operand)}


def q_from_json(data: Any) -> QNode:
    """The q AST of `q_to_json` output."""
    if "and" in data:
        return And(tuple(q_from_json(i) for i in data["and"]))
    if "or" in data:
        return Or(tuple(q_from_json(i) for i in data["or"]))
    if "exists" in data:
        return Exists(_path_of(data["exists"]), data["not"])
    if "match" in data:
        return Pattern(_path_of(data["match"]), data["regex"], data["not"])
    return Compare(_path_of(data["cmp"]), Op(data["op"]), _operand_of(data["operand"]))


def type_to_json(node: TypeNode) -> Any:
    """A type selection AST as JSON: an IRI, or {"and"|"or": [...]}."""
    if isinstance(node, TypeName):
        return node.iri
    return {"and" if isinstance(node, TypeAnd) else "or": [type_to_json(i) for i in node.items]}


def type_from_json(data: Any) -> TypeNode:
    """The type selection AST of `type_to_json` output."""
    if isinstance(data, str):
        return TypeName(data)
    if "and" in data:
        return TypeAnd(tuple(type_from_json(i) for i in data["and"]))
    return TypeOr(tuple(type_from_json(i) for i in data["or"]))


def _path(path: Path) -> dict[str, Any]:
    return {"attr": path.attr, "sub": list(path.sub), "meta": path.meta, "keys": list(path.keys)}


def _path_of(data: dict[str, Any]) -> Path:
    return Path(data["attr"], tuple(data["sub"]), data["meta"], tuple(data["keys"]))


def _operand(operand: Operand) -> Any:
    if isinstance(operand, Range):
        return {"range": [_value(operand.low), _value(operand.high)]}
    if isinstance(operand, ValueList):
        return {"list": [_value(v) for v in operand.values]}
    return _value(operand)


def _operand_of(data: Any) -> Operand:
    if isinstance(data, dict) and "range" in data:
        low, high = data["range"]
        return Range(_value_of(low), _value_of(high))
    if isinstance(data, dict):
        return ValueList(tuple(_value_of(v) for v in data["list"]))
    return _value_of(data)


def _value(value: Value) -> list[Any]:
    return [value.kind.value, value.value]


def _value_of(data: list[Any]) -> Value:
    return Value(Kind(data[0]), data[1])
