"""Compile q, scopeQ and type-selection ASTs into PostgreSQL conditions over jsonb and text[].

SQL text comes only from fixed templates, the caller's column names and generated aliases:
every IRI, member key, value and pattern is a `$n` parameter collected in a `Params` (S608 is
silenced for that reason). The semantics mirror `urbis.context.query.evaluate`, the oracle of
the tests; each term is one `EXISTS` over set-returning functions walking the instances:

    instances  jsonb_array_elements(attrs -> $attr), then `-> $sub` for sub-attributes
    targets    the value member named by the instance type (CASE below), a meta member, or
               `[k1.k2]` members (`*`: jsonb_each); a LanguageProperty: each language
    candidates the elements of an array target, `{"@value": v}` / `{"object": v}` unwrapped

Comparisons of numbers, and text equality, are preceded by a superset test the server runs in
C (`jsonb_path_exists` over the attribute's values at any depth), so the EXISTS only runs on
rows that may match: about twice as fast on scans.

Values compare only with their own JSON type: numbers as jsonb numbers (numeric), text with
`COLLATE "C"` (code points), date-times and times through `urbis_datetime_key` /
`urbis_time_key`, patterns with `~` on the ARE translated by `regex.to_postgres`.
PostgreSQL text cannot hold U+0000; no stored string has one, and query text that does is
compiled to the equivalent condition (a name or key: absent; `==`: false; `<`: `<=` prefix).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from urbis.context.model import VALUE_KEYS
from urbis.context.query.evaluate import value_key
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
)
from urbis.context.query.scope import PLUS, ScopeAnd, ScopeNode, ScopeOr, ScopeTerm
from urbis.context.query.types import TypeAnd, TypeName, TypeNode
from urbis.storage.postgres.regex import to_postgres

TRUE, FALSE = "TRUE", "FALSE"
_SQL_OP = {Op.EQ: "=", Op.GT: ">", Op.GE: ">=", Op.LT: "<", Op.LE: "<="}
_PLAIN_TEXT = frozenset({Kind.STRING, Kind.URI, Kind.TERM, Kind.DATE})
_KEY_FUNCTION = {Kind.DATETIME: "urbis_datetime_key", Kind.TIME: "urbis_time_key"}
_VALUE_KEY = (
    "(CASE {e} ->> 'type' "
    + " ".join(f"WHEN '{t}' THEN '{k}'" for t, k in sorted(VALUE_KEYS.items()) if k != "value")
    + " ELSE 'value' END)"
)
Test = Callable[[str], str]  # a condition on one candidate (a jsonb expression)


class Params:
    """The positional parameters of one statement; `add` gives the `$n` that refers to one."""

    def __init__(self, values: list[Any] | None = None) -> None:
        self.values: list[Any] = values if values is not None else []

    def add(self, value: Any, cast: str) -> str:
        """Append a parameter and return its placeholder with a type cast."""
        self.values.append(value)
        return f"${len(self.values)}::{cast}"

    def name(self, text: str) -> str:
        """A name or key: NULL (absent from every document) when it holds U+0000."""
        return self.add(None if "\x00" in text else text, "text")


def _and(conds: list[str]) -> str:
    return " AND ".join(conds) if conds else TRUE


def _exists(froms: list[str], conds: list[str]) -> str:
    return f"EXISTS (SELECT 1 FROM {', '.join(froms)} WHERE {_and(conds)})"  # noqa: S608


def compile_q(node: QNode, params: Params, attrs_col: str = "e.attrs") -> str:
    """A condition selecting the rows whose attributes satisfy the q expression."""
    return _QCompiler(params, attrs_col).node(node)


class _QCompiler:
    def __init__(self, params: Params, attrs_col: str) -> None:
        self.params = params
        self.attrs_col = attrs_col
        self.count = 0

    def alias(self) -> str:
        self.count += 1
        return f"q{self.count}"

    def node(self, node: QNode) -> str:
        if isinstance(node, And | Or):
            sep = " AND " if isinstance(node, And) else " OR "
            return "(" + sep.join(self.node(item) for item in node.items) + ")"
        if isinstance(node, Exists):
            froms, conds, el = self.elements(node.path)
            if node.path.meta is not None or node.path.keys:
                conds.append(self.target_exists(node.path, el))
            found = _exists(froms, conds)
            return f"NOT {found}" if node.negated else found
        if isinstance(node, Pattern):
            return self.pattern(node)
        return self.compare(node)

    def elements(self, path: Path) -> tuple[list[str], list[str], str]:
        """FROM items and conditions walking to the target elements; their jsonb expression."""
        inst = self.alias()
        attr = f"{self.attrs_col} -> {self.params.name(path.attr)}"
        froms = [f"jsonb_array_elements(CASE WHEN jsonb_typeof({attr}) = 'array' "
                 f"THEN {attr} END) AS {inst}(v)"]
        el = f"{inst}.v"
        for sub in path.sub:
            el = f"({el} -> {self.params.name(sub)})"
        return froms, [f"jsonb_typeof({el}) = 'object'"], el

    def targets(self, path: Path, el: str) -> tuple[list[str], str]:
        """FROM items reaching the raw target values of element `el`; the target (or NULL)."""
        if path.meta is not None:
            return [], f"({el} -> {self.params.name(path.meta)})"
        value = f"({el} -> {_VALUE_KEY.format(e=el)})"
        if not path.keys:  # every language of a LanguageProperty, else the one value
            each = self.alias()
            source = (f"CASE WHEN {el} ->> 'type' = 'LanguageProperty' THEN CASE WHEN "
                      f"jsonb_typeof({value}) = 'object' THEN {value} END "
                      f"ELSE jsonb_build_object('', {value}) END")
            return [f"jsonb_each({source}) AS {each}(k, v)"], f"{each}.v"
        froms: list[str] = []
        for key in path.keys:
            if key == WILDCARD:
                each = self.alias()
                froms.append(f"jsonb_each(CASE WHEN jsonb_typeof({value}) = 'object' "
                             f"THEN {value} END) AS {each}(k, v)")
                value = f"{each}.v"
            else:
                value = f"({value} -> {self.params.name(key)})"
        return froms, value

    def candidates(self, target: str) -> tuple[str, str]:
        """The FROM item flattening an array target, and the unwrapped candidate."""
        item = self.alias()
        source = (f"CASE WHEN jsonb_typeof({target}) = 'array' THEN {target} "
                  f"ELSE jsonb_build_array({target}) END")
        value = (f"(CASE WHEN jsonb_typeof({item}.v) = 'object' THEN COALESCE("
                 f"{item}.v -> '@value', {item}.v -> 'object') ELSE {item}.v END)")
        return f"jsonb_array_elements({source}) AS {item}(v)", value

    def walk(self, path: Path, el: str) -> tuple[list[str], str]:
        """FROM items reaching every candidate value of element `el`; the candidate."""
        froms, target = self.targets(path, el)
        item, value = self.candidates(target)
        return [*froms, item], value

    def any_value(self, path: Path, el: str, test: Test) -> str:
        """Some candidate value of element `el` passes `test`."""
        froms, value = self.walk(path, el)
        return _exists(froms, [test(value)])

    def target_exists(self, path: Path, el: str) -> str:
        """The element holds the target (only a meta member or keys can be missing)."""
        if path.meta is None and not path.keys:
            return TRUE
        froms, target = self.targets(path, el)
        present = f"{target} IS NOT NULL"
        return _exists(froms, [present]) if froms else present

    def compare(self, node: Compare) -> str:
        froms, conds, el = self.elements(node.path)
        if node.op is Op.NE:
            equal = _predicate(Op.EQ, node.operand, self.params)
            conds.append(self.target_exists(node.path, el))
            conds.append(f"NOT {self.any_value(node.path, el, equal)}")
            return _exists(froms, conds)
        if node.op is not Op.EQ:
            conds.append(_orderable(node.path, el))
        more, value = self.walk(node.path, el)
        conds.append(_predicate(node.op, node.operand, self.params)(value))
        exact = _exists(froms + more, conds)
        quick = _prefilter(node, self.params, self.attrs_col)
        return exact if quick is None else f"({quick} AND {exact})"

    def pattern(self, node: Pattern) -> str:
        froms, conds, el = self.elements(node.path)
        conds.append(_orderable(node.path, el))
        regex = self.params.add(to_postgres(node.regex), "text")

        def matches(value: str) -> str:
            return f"({_text(value)} ~ {regex})"

        if node.negated:
            conds.append(self.any_value(node.path, el, _is_text))
            conds.append(f"NOT {self.any_value(node.path, el, matches)}")
            return _exists(froms, conds)
        more, value = self.walk(node.path, el)
        return _exists(froms + more, [*conds, matches(value)])


def _prefilter(node: Compare, params: Params, attrs_col: str) -> str | None:
    """A necessary condition run in C before the exact EXISTS: some JSON value anywhere under
    the attribute passes the comparison (a jsonpath over `.**`). Only for comparisons where
    jsonpath and the evaluator agree on what is equal or ordered (numbers; text equality)."""
    variables: dict[str, Any] = {}
    test = _jsonpath_test(node.op, node.operand, variables)
    if test is None or "\x00" in node.path.attr:
        return None
    path = f"$.{json.dumps(node.path.attr)}.** ? ({test})"
    return (f"jsonb_path_exists({attrs_col}, {params.add(path, 'jsonpath')}, "
            f"{params.add(orjson.dumps(variables), 'jsonb')})")


def _jsonpath_test(op: Op, operand: Value | ValueList | Range, variables: dict[str, Any]
                   ) -> str | None:
    if isinstance(operand, ValueList):
        tests = [_jsonpath_test(Op.EQ, value, variables) for value in operand.values]
        return None if None in tests else " || ".join(f"({t})" for t in tests)
    if isinstance(operand, Range):
        if operand.low.kind is not Kind.NUMBER or operand.high.kind is not Kind.NUMBER:
            return None
        low, high = (_jsonpath_test(o, v, variables)
                     for o, v in ((Op.GE, operand.low), (Op.LE, operand.high)))
        return None if low is None or high is None else f"{low} && {high}"
    wanted = value_key(operand.value, operand.kind)
    text_equality = operand.kind in _PLAIN_TEXT and op is Op.EQ
    if wanted is None or not (operand.kind is Kind.NUMBER or text_equality or (
            operand.kind is Kind.BOOL and op is Op.EQ)):
        return None
    if isinstance(wanted, str) and "\x00" in wanted:
        return None
    name = f"v{len(variables)}"
    variables[name] = wanted
    return f"@ {_SQL_OP[op] if op is not Op.EQ else '=='} ${name}"


def _text(value: str) -> str:
    return f"(CASE WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}' END)"


def _is_text(value: str) -> str:
    return f"jsonb_typeof({value}) = 'string'"


def _orderable(path: Path, el: str) -> str:
    if path.meta is not None:
        return TRUE
    return f"COALESCE({el} ->> 'type', '') NOT IN ('Relationship', 'ListRelationship')"


def _predicate(op: Op, operand: Value | ValueList | Range, params: Params) -> Test:
    """The SQL form of `evaluate.predicate` over one candidate."""
    if isinstance(operand, ValueList):
        tests = [_predicate(Op.EQ, value, params) for value in operand.values]
        return lambda v: "(" + " OR ".join(test(v) for test in tests) + ")"
    if isinstance(operand, Range):
        low, high = _predicate(Op.GE, operand.low, params), _predicate(Op.LE, operand.high, params)
        return lambda v: f"({low(v)} AND {high(v)})"
    kind, wanted = operand.kind, value_key(operand.value, operand.kind)
    if wanted is None or (kind is Kind.BOOL and op is not Op.EQ):
        return lambda v: FALSE
    if kind is Kind.BOOL:
        literal = params.add(orjson.dumps(wanted), "jsonb")
        return lambda v: f"({v} = {literal})"
    if kind is Kind.NUMBER:
        number = params.add(orjson.dumps(wanted), "jsonb")
        return lambda v: f"(jsonb_typeof({v}) = 'number' AND {v} {_SQL_OP[op]} {number})"
    return _text_predicate(op, kind, wanted, params)


def _text_predicate(op: Op, kind: Kind, wanted: str, params: Params) -> Test:
    if "\x00" in wanted:  # stored text has no NUL: compare with the part before it
        if op is Op.EQ:
            return lambda v: FALSE
        op, wanted = (Op.LE if op in (Op.LT, Op.LE) else Op.GT), wanted.split("\x00", 1)[0]
    text = params.add(wanted, "text")
    function = _KEY_FUNCTION.get(kind, "")
    return lambda v: f"({function}({_text(v)}) COLLATE \"C\" {_SQL_OP[op]} {text})"


def compile_scope_q(node: ScopeNode, params: Params, scopes_col: str = "e.scopes") -> str:
    """A condition selecting the rows whose scopes satisfy the scopeQ expression."""
    if isinstance(node, ScopeAnd | ScopeOr):
        sep = " AND " if isinstance(node, ScopeAnd) else " OR "
        return "(" + sep.join(compile_scope_q(i, params, scopes_col) for i in node.items) + ")"
    if not node.levels:
        return f"(cardinality({scopes_col}) > 0)" if node.descendants else FALSE
    prefix = "/".join(node.levels)
    if PLUS not in node.levels and not node.descendants:  # the GIN index answers this one
        return f"({scopes_col} && {params.add([prefix, '/' + prefix], 'text[]')})"
    scope = "(CASE WHEN left(s.v, 1) = '/' THEN substr(s.v, 2) ELSE s.v END)"
    if PLUS not in node.levels:
        same, below = params.add(prefix, "text"), params.add(prefix + "/", "text")
        cond = f"({scope} = {same} OR starts_with({scope}, {below}))"
        return _exists([f"unnest({scopes_col}) AS s(v)"], [cond])
    return _exists([f"unnest({scopes_col}) AS s(v)", f"string_to_array({scope}, '/') AS p(a)"],
                   _level_conds(node, params))


def _level_conds(term: ScopeTerm, params: Params) -> list[str]:
    count = len(term.levels)
    conds = [f"cardinality(p.a) {'>=' if term.descendants else '='} {count}"]
    for index, level in enumerate(term.levels, start=1):
        if level == PLUS:
            conds.append(f"p.a[{index}] <> ''")
        else:
            conds.append(f"p.a[{index}] = {params.add(level, 'text')}")
    return conds


def compile_types(node: TypeNode, params: Params, types_col: str = "e.types") -> str:
    """A condition selecting the rows whose types satisfy the type selection (GIN-indexed)."""
    if isinstance(node, TypeName):
        return f"({types_col} && {params.add(_iris([node]), 'text[]')})"
    if all(isinstance(item, TypeName) for item in node.items):
        operator = "@>" if isinstance(node, TypeAnd) else "&&"
        return f"({types_col} {operator} {params.add(_iris(node.items), 'text[]')})"
    sep = " AND " if isinstance(node, TypeAnd) else " OR "
    return "(" + sep.join(compile_types(item, params, types_col) for item in node.items) + ")"


def _iris(items: Any) -> list[str | None]:
    return [None if "\x00" in i.iri else i.iri for i in items]
