"""Compile q, scopeQ and type-selection ASTs into SQLite SQL over the embedded schema.

The SQL text is built only from fixed templates, the caller's column names and generated table
aliases: every IRI, JSON path, member key, value and pattern is a bound `?` parameter (S608 is
silenced for that reason). A top-level attribute is reached with `json_each(attrs, ?)` and the
whole path `$."<iri>"` as the parameter when the IRI is printable ASCII without a quote or backslash
(such a label matches however the JSON was encoded); other attributes, sub-attributes and
compound members with `json_each(...)` filtered on `key = ?`. Call `register_functions` on every
connection. The semantics mirror `urbis.context.query.evaluate` exactly (the tests' oracle).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, NamedTuple

from urbis.context.errors import NgsiError
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
    compile_regex,
    datetime_key,
    time_key,
)
from urbis.context.query.scope import PLUS, ScopeAnd, ScopeNode, ScopeOr, ScopeTerm, term_regex
from urbis.context.query.types import TypeAnd, TypeName, TypeNode, TypeOr


class Frag(NamedTuple):
    """A piece of SQL and its parameters, in order."""

    sql: str
    params: list[Any]


TRUE = Frag("1", [])
FALSE = Frag("0", [])
_SQL_OP = {Op.EQ: "=", Op.GT: ">", Op.GE: ">=", Op.LT: "<", Op.LE: "<="}
_TEMPORAL = {Kind.DATETIME: "urbis_datetime", Kind.TIME: "urbis_time"}
_VALUE_KEY_CASE = (
    "CASE json_extract({e}, '$.type') "
    + " ".join(f"WHEN '{t}' THEN '{k}'" for t, k in sorted(VALUE_KEYS.items()) if k != "value")
    + " ELSE 'value' END"
)
SqlPredicate = Callable[[str, str], Frag]  # (json type expr, value expr) -> condition


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the functions compiled queries call: regexp, urbis_datetime, urbis_time."""
    conn.create_function("regexp", 2, _regexp, deterministic=True)
    conn.create_function("urbis_datetime", 1, _temporal(datetime_key), deterministic=True)
    conn.create_function("urbis_time", 1, _temporal(time_key), deterministic=True)


def _regexp(pattern: Any, value: Any) -> bool:
    if not isinstance(pattern, str) or not isinstance(value, str):
        return False
    try:
        return compile_regex(pattern).search(value) is not None
    except NgsiError:
        return False


def _temporal(key: Callable[[str], str | None]) -> Callable[[Any], str | None]:
    return lambda value: key(value) if isinstance(value, str) else None


def _join(sep: str, frags: list[Frag]) -> Frag:
    return Frag(sep.join(f.sql for f in frags), [p for f in frags for p in f.params])


def _fmt(template: str, *frags: Frag) -> Frag:
    return Frag(template.format(*(f.sql for f in frags)), [p for f in frags for p in f.params])


def _exists(froms: list[str | Frag], conds: list[Frag]) -> Frag:
    tables = _join(", ", [f if isinstance(f, Frag) else Frag(f, []) for f in froms])
    return _fmt("EXISTS (SELECT 1 FROM {} WHERE {})", tables, _join(" AND ", conds))


def _path_safe(iri: str) -> bool:
    """Whether a JSON path label `$."iri"` finds the key whichever way the JSON was encoded."""
    return iri.isascii() and iri.isprintable() and '"' not in iri and "\\" not in iri


def compile_q(node: QNode, attrs_col: str = "e.attrs") -> tuple[str, list[Any]]:
    """A SQL condition selecting the rows whose attributes satisfy the q expression."""
    frag = _QCompiler(attrs_col).node(node)
    return frag.sql, frag.params


class _QCompiler:
    def __init__(self, attrs_col: str) -> None:
        self.attrs_col = attrs_col
        self.count = 0

    def alias(self) -> str:
        self.count += 1
        return f"q{self.count}"

    def node(self, node: QNode) -> Frag:
        if isinstance(node, And | Or):
            sep = " AND " if isinstance(node, And) else " OR "
            return _fmt("({})", _join(sep, [self.node(item) for item in node.items]))
        if isinstance(node, Exists):
            froms, conds, el = self.elements(node.path)
            if node.path.meta is not None or node.path.keys:
                more, more_conds, _ = self.nodes(node.path, el)
                froms, conds = froms + more, conds + more_conds
            found = _exists(froms, conds)
            return _fmt("NOT {}", found) if node.negated else found
        if isinstance(node, Pattern):
            return self.pattern(node)
        return self.compare(node)

    def elements(self, path: Path) -> tuple[list[str | Frag], list[Frag], str]:
        """FROM items and conditions walking to the target elements; their JSON expression."""
        inst = self.alias()
        froms: list[str | Frag]
        if _path_safe(path.attr):  # a direct JSON path is faster than scanning the attributes
            froms = [Frag(f"json_each({self.attrs_col}, ?) AS {inst}", [f'$."{path.attr}"'])]
            conds = [Frag(f"typeof({inst}.key) = 'integer' AND {inst}.type = 'object'", [])]
        else:
            attr = self.alias()
            froms = [
                f"json_each({self.attrs_col}) AS {attr}",
                f"json_each(CASE WHEN {attr}.type = 'array' THEN {attr}.value END) AS {inst}",
            ]
            conds = [Frag(f"{attr}.key = ?", [path.attr]), Frag(f"{inst}.type = 'object'", [])]
        current = inst
        for sub in path.sub:
            alias = self.alias()
            froms.append(_children(current, alias))
            conds += [Frag(f"{alias}.key = ?", [sub]), Frag(f"{alias}.type = 'object'", [])]
            current = alias
        return froms, conds, f"{current}.value"

    def nodes(self, path: Path, el: str) -> tuple[list[str | Frag], list[Frag], str]:
        """FROM items and conditions reaching the raw target values of element `el`."""
        root = self.alias()
        if path.meta is not None:
            return [f"json_each({el}) AS {root}"], [Frag(f"{root}.key = ?", [path.meta])], root
        value_key_sql = _VALUE_KEY_CASE.format(e=el)
        if not path.keys:
            is_lp = f"json_extract({el}, '$.type') = 'LanguageProperty'"
            lang_map = (
                f"CASE WHEN json_type({el}, '$.languageMap') = 'object' "
                f"THEN json_extract({el}, '$.languageMap') END"
            )
            source = f"CASE WHEN {is_lp} THEN {lang_map} ELSE {el} END"
            cond = Frag(f"({is_lp} OR {root}.key = {value_key_sql})", [])
            return [f"json_each({source}) AS {root}"], [cond], root
        froms: list[str | Frag] = [f"json_each({el}) AS {root}"]
        conds = [Frag(f"{root}.key = {value_key_sql}", [])]
        current = root
        for key in path.keys:
            alias = self.alias()
            froms.append(_children(current, alias))
            if key != WILDCARD:
                conds.append(Frag(f"{alias}.key = ?", [key]))
            current = alias
        return froms, conds, current

    def candidates(self, node: str, test: SqlPredicate) -> Frag:
        """`test` holds for a scalar target value, or for an element of an array one."""
        item = self.alias()
        direct, inner = test(*_unwrapped(node)), test(*_unwrapped(item))
        array = f"json_each(CASE WHEN {node}.type = 'array' THEN {node}.value END) AS {item}"
        in_array = _exists([array], [inner])
        return _fmt(f"(({node}.type <> 'array' AND {{}}) OR {{}})", direct, in_array)

    def any_value(self, path: Path, el: str, test: SqlPredicate) -> Frag:
        """Some candidate value of element `el` passes `test`."""
        froms, conds, node = self.nodes(path, el)
        return _exists(froms, [*conds, self.candidates(node, test)])

    def compare(self, node: Compare) -> Frag:
        froms, conds, el = self.elements(node.path)
        if node.op is Op.NE:
            equal = _predicate(Op.EQ, node.operand)
            missing = _fmt("NOT {}", self.any_value(node.path, el, equal))
            return _exists(froms, [*conds, self.target_exists(node.path, el), missing])
        if node.op is not Op.EQ:
            conds.append(_orderable(node.path, el))
        conds.append(self.any_value(node.path, el, _predicate(node.op, node.operand)))
        return _exists(froms, conds)

    def pattern(self, node: Pattern) -> Frag:
        froms, conds, el = self.elements(node.path)
        conds.append(_orderable(node.path, el))

        def matches(t: str, v: str) -> Frag:
            return Frag(f"({t} = 'text' AND regexp(?, {v}))", [node.regex])

        if node.negated:
            conds.append(self.any_value(node.path, el, _is_text))
            conds.append(_fmt("NOT {}", self.any_value(node.path, el, matches)))
        else:
            conds.append(self.any_value(node.path, el, matches))
        return _exists(froms, conds)

    def target_exists(self, path: Path, el: str) -> Frag:
        """The element holds the target (only a meta member or keys can be missing)."""
        if path.meta is None and not path.keys:
            return TRUE
        froms, conds, _ = self.nodes(path, el)
        return _exists(froms, conds)


def _children(parent: str, alias: str) -> str:
    return f"json_each(CASE WHEN {parent}.type = 'object' THEN {parent}.value END) AS {alias}"


def _unwrapped(node: str) -> tuple[str, str]:
    """JSON type and value of a json_each row, looking through `{"@value": v}`/`{"object": v}`."""
    at_value, obj = f"json_type({node}.value, '$.\"@value\"')", f"{node}.value"
    kind = (
        f"(CASE WHEN {node}.type = 'object' THEN COALESCE({at_value}, "
        f"json_type({obj}, '$.object')) ELSE {node}.type END)"
    )
    value = (
        f"(CASE WHEN {node}.type = 'object' THEN CASE WHEN {at_value} IS NOT NULL "
        f"THEN json_extract({obj}, '$.\"@value\"') ELSE json_extract({obj}, '$.object') END "
        f"ELSE {obj} END)"
    )
    return kind, value


def _orderable(path: Path, el: str) -> Frag:
    if path.meta is not None:
        return TRUE
    return Frag(
        f"COALESCE(json_extract({el}, '$.type'), '') NOT IN ('Relationship', 'ListRelationship')",
        [],
    )


def _is_text(t: str, v: str) -> Frag:
    return Frag(f"{t} = 'text'", [])


def _predicate(op: Op, operand: Value | ValueList | Range) -> SqlPredicate:
    """The SQL form of `evaluate.predicate`."""
    if isinstance(operand, ValueList):
        tests = [_predicate(Op.EQ, value) for value in operand.values]
        return lambda t, v: _fmt("({})", _join(" OR ", [test(t, v) for test in tests]))
    if isinstance(operand, Range):
        low, high = _predicate(Op.GE, operand.low), _predicate(Op.LE, operand.high)
        return lambda t, v: _fmt("({} AND {})", low(t, v), high(t, v))
    kind, wanted = operand.kind, value_key(operand.value, operand.kind)
    if wanted is None or (kind is Kind.BOOL and op is not Op.EQ):
        return lambda t, v: FALSE
    if kind is Kind.BOOL:
        return lambda t, v: Frag(f"({t} = ?)", ["true" if wanted else "false"])
    sql_op = _SQL_OP[op]
    if kind is Kind.NUMBER:
        return lambda t, v: Frag(f"({t} IN ('integer', 'real') AND {v} {sql_op} ?)", [wanted])
    function = _TEMPORAL.get(kind)

    def text(t: str, v: str) -> Frag:
        expr = f"{function}({v})" if function else v
        return Frag(f"({t} = 'text' AND {expr} {sql_op} ?)", [wanted])

    return text


def compile_scope_q(node: ScopeNode, scopes_col: str = "e.scopes") -> tuple[str, list[Any]]:
    """A SQL condition selecting the rows whose scopes satisfy the scopeQ expression."""
    frag = _scope(node, scopes_col)
    return frag.sql, frag.params


def _scope(node: ScopeNode, col: str) -> Frag:
    if isinstance(node, ScopeAnd | ScopeOr):
        sep = " AND " if isinstance(node, ScopeAnd) else " OR "
        return _fmt("({})", _join(sep, [_scope(item, col) for item in node.items]))
    if not node.levels:
        return Frag(f"EXISTS (SELECT 1 FROM json_each({col}))", []) if node.descendants else FALSE  # noqa: S608
    return _exists([f"json_each({col}) AS s"], [Frag("s.type = 'text'", []), _scope_cond(node)])


def _scope_cond(term: ScopeTerm) -> Frag:
    scope = "(CASE WHEN substr(s.value, 1, 1) = '/' THEN substr(s.value, 2) ELSE s.value END)"
    if PLUS in term.levels:
        return Frag(f"regexp(?, {scope})", [term_regex(term)])
    prefix = "/".join(term.levels)
    if not term.descendants:
        return Frag(f"{scope} = ?", [prefix])
    params = [prefix, len(prefix) + 1, prefix + "/"]
    return Frag(f"({scope} = ? OR substr({scope}, 1, ?) = ?)", params)


def compile_types(node: TypeNode, tenant: str, pk_col: str = "e.pk") -> tuple[str, list[Any]]:
    """A SQL condition selecting the rows of `tenant` whose types satisfy the selection."""
    frag = _types(node, tenant, pk_col)
    return frag.sql, frag.params


def _types(node: TypeNode, tenant: str, pk_col: str) -> Frag:
    names = [node] if isinstance(node, TypeName) else list(node.items)
    if isinstance(node, TypeName) or (
        isinstance(node, TypeOr) and all(isinstance(i, TypeName) for i in names)
    ):
        iris = [i.iri for i in names if isinstance(i, TypeName)]
        marks = ", ".join("?" * len(iris))
        if pk_col.startswith("+"):  # not the driving term: a primary-key probe per row
            return Frag(
                "EXISTS (SELECT 1 FROM entity_types t WHERE t.tenant = ? AND "  # noqa: S608
                f"t.type IN ({marks}) AND t.pk = {pk_col[1:]})",
                [tenant, *iris],
            )
        return Frag(
            f"{pk_col} IN (SELECT pk FROM entity_types WHERE tenant = ? AND type IN ({marks}))",  # noqa: S608
            [tenant, *iris],
        )
    sep = " AND " if isinstance(node, TypeAnd) else " OR "
    return _fmt("({})", _join(sep, [_types(item, tenant, pk_col) for item in names]))
