"""SQLite compilation of q / scopeQ / type selections: it must agree with the Python evaluator."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbis.context.model import ATTRIBUTE_TYPES, VALUE_KEYS, Entity
from urbis.context.query.evaluate import q_matches, scope_matches, types_match
from urbis.context.query.q import (
    META_NAMES,
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
    date_key,
    datetime_key,
    parse_q,
    time_key,
)
from urbis.context.query.scope import ScopeAnd, ScopeNode, ScopeOr, ScopeTerm, parse_scope_q
from urbis.context.query.types import TypeAnd, TypeName, TypeNode, TypeOr, parse_type_expr
from urbis.storage.sqlite.qsql import (
    compile_q,
    compile_scope_q,
    compile_types,
    register_functions,
)
from urbis.storage.sqlite.schema import migrate

TENANT = "t"
NOW = "2024-01-01T00:00:00.000000Z"


def connect() -> sqlite3.Connection:
    """A fresh in-memory database with the schema and the query functions."""
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    register_functions(conn)
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    """A fresh database per test."""
    db = connect()
    yield db
    db.close()


def insert(conn: sqlite3.Connection, entities: list[Entity], tenant: str = TENANT) -> None:
    """Store entities per the layout of schema.py."""
    for ent in entities:
        scopes = None if ent.scopes is None else json.dumps(ent.scopes)
        cur = conn.execute(
            "INSERT INTO entities (tenant, id, types, scopes, created_at, modified_at, attrs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tenant, ent.id, json.dumps(ent.types), scopes, NOW, NOW, json.dumps(ent.attrs)),
        )
        for type_iri in set(ent.types):
            conn.execute(
                "INSERT INTO entity_types (tenant, type, pk) VALUES (?, ?, ?)",
                (tenant, type_iri, cur.lastrowid),
            )


def select(conn: sqlite3.Connection, where: str, params: list[Any]) -> set[str]:
    """Ids of the tenant's entities satisfying a compiled condition."""
    sql = f"SELECT e.id FROM entities AS e WHERE e.tenant = ? AND {where}"
    return {row[0] for row in conn.execute(sql, [TENANT, *params])}


def sql_q(conn: sqlite3.Connection, node: QNode) -> set[str]:
    """Entities selected by the compiled q."""
    return select(conn, *compile_q(node))


def py_q(entities: list[Entity], node: QNode) -> set[str]:
    """Entities selected by the evaluator."""
    return {e.id for e in entities if q_matches(node, e)}


# --- pools shared by generated entities and queries, so that queries hit -------------------------

ATTRS = ["a", "b"]
SUBS = ["s", "t"]
KEYS = ["k", "m"]
TEXTS = [
    "x",
    "y",
    "",
    "Berlin",
    "é",
    "urn:x:1",
    "2020-01-01T00:00:00Z",
    "2020-01-01T01:00:00+01:00",
    "2020-01-01T00:00:00.5Z",
    "2020-01-01",
    "12:00:00Z",
    "12:00",
    "'; DROP TABLE entities; --",
    '"',
    "\\",
    "%",
    "_",
]
NUMBERS = [-2, 0, 1, 3, 0.5, 2.0, -1.5]

scalars = st.sampled_from([*NUMBERS, True, False, *TEXTS, None])
json_values = st.one_of(
    scalars,
    scalars,
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(KEYS), inner, max_size=2),
            st.builds(lambda v: {"@type": "DateTime", "@value": v}, inner),
            st.builds(lambda v: {"object": v}, inner),
        ),
        max_leaves=5,
    ),
)
meta_values = st.sampled_from(
    ["2020-01-01T00:00:00Z", "2021-05-05T10:00:00+02:00", "urn:ds:1", "x"]
)


@st.composite
def instances(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """One attribute instance of any type, sometimes with metadata and sub-attributes."""
    kind = draw(st.sampled_from(["Property"] * 4 + [*sorted(ATTRIBUTE_TYPES), "Weird", None]))
    inst: dict[str, Any] = {} if kind is None else {"type": kind}
    key = VALUE_KEYS.get(kind or "", "value")
    if kind == "LanguageProperty" and draw(st.booleans()):
        inst[key] = draw(
            st.dictionaries(
                st.sampled_from(["en", "fr", *KEYS]),
                st.sampled_from(TEXTS) | st.lists(st.sampled_from(TEXTS), max_size=2),
                max_size=2,
            )
        )
    elif draw(st.integers(0, 9)) > 0:
        inst[draw(st.sampled_from([key, key, "value"]))] = draw(json_values)
    for meta in sorted(META_NAMES):
        if draw(st.integers(0, 4)) == 0:
            inst[meta] = draw(meta_values)
    if depth == 0:
        for sub in draw(st.lists(st.sampled_from(SUBS), max_size=2, unique=True)):
            inst[sub] = draw(instances(depth=1)) if draw(st.integers(0, 5)) else "junk"
    return inst


attr_values = st.one_of(
    st.lists(instances(), min_size=1, max_size=2),
    st.lists(instances(), min_size=1, max_size=2),
    st.lists(instances(), min_size=1, max_size=2),
    st.just([]),
    st.just("not a list"),
    st.just({"type": "Property", "value": 1}),
    st.lists(st.sampled_from([1, "x", None]), max_size=1),
)


@st.composite
def entity_sets(draw: st.DrawFn) -> list[Entity]:
    """A few entities with attributes, scopes and types from the pools."""
    count = draw(st.integers(1, 5))
    return [
        Entity(
            f"urn:e:{i}",
            draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True)),
            draw(st.dictionaries(st.sampled_from(ATTRS), attr_values, max_size=2)),
            draw(st.none() | st.lists(st.sampled_from(SCOPES), max_size=3)),
        )
        for i in range(count)
    ]


# --- generated queries ---------------------------------------------------------------------------


def _kinds_of(raw: Any) -> list[Kind]:
    if isinstance(raw, bool):
        return [Kind.BOOL]
    if isinstance(raw, int | float):
        return [Kind.NUMBER]
    kinds = [Kind.STRING, Kind.TERM] if raw.isalpha() else [Kind.STRING]
    if raw.startswith("urn:"):
        kinds.append(Kind.URI)
    checks = ((Kind.DATETIME, datetime_key), (Kind.TIME, time_key), (Kind.DATE, date_key))
    for kind, check in checks:
        if check(raw) is not None:
            kinds.append(kind)
    return kinds


def leaves(value: Any) -> Iterator[Any]:
    """Every scalar inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield value


@st.composite
def values(draw: st.DrawFn, ordered: bool = False, seen: tuple[Any, ...] = ()) -> Value:
    """A literal, often one stored in the entities, in every kind its text allows."""
    pool = [*NUMBERS, True, False, *TEXTS]
    raw = draw(st.sampled_from(seen) if seen and draw(st.integers(0, 3)) else st.sampled_from(pool))
    kinds = [k for k in _kinds_of(raw) if not (ordered and k is Kind.BOOL)] or [Kind.NUMBER]
    if kinds == [Kind.NUMBER] and (isinstance(raw, bool) or not isinstance(raw, int | float)):
        raw = 1
    return Value(draw(st.sampled_from(kinds)), raw)


@st.composite
def paths(draw: st.DrawFn) -> Path:
    """Paths over the pools."""
    meta = draw(st.sampled_from([None] * 8 + sorted(META_NAMES)))
    members = st.lists(st.sampled_from([*KEYS, "*"]), min_size=1, max_size=2)
    keys = () if meta or draw(st.integers(0, 2)) else tuple(draw(members))
    subs = () if draw(st.integers(0, 3)) else (draw(st.sampled_from(SUBS)),)
    return Path(draw(st.sampled_from(ATTRS)), subs, meta, keys)


@st.composite
def q_terms(draw: st.DrawFn, seen: tuple[Any, ...] = ()) -> QNode:
    """Any term: existence, comparison with value/list/range, pattern."""
    path = draw(paths())
    shape = draw(st.sampled_from(["exists", "compare", "compare", "list", "range", "pattern"]))
    if shape == "exists":
        return Exists(path, draw(st.booleans()))
    if shape == "pattern":
        regex = draw(st.sampled_from(["^x", "y$", "(?i)BER", "[%_]", "^$", "DROP", "\\d"]))
        return Pattern(path, regex, draw(st.booleans()))
    op = draw(st.sampled_from([Op.EQ, Op.NE] if shape in ("list", "range") else list(Op)))
    if shape == "list":
        items = st.lists(values(seen=seen), min_size=2, max_size=3)
        return Compare(path, op, ValueList(tuple(draw(items))))
    if shape == "range":
        return Compare(path, op, Range(draw(values(True, seen)), draw(values(True, seen))))
    return Compare(path, op, draw(values(op not in (Op.EQ, Op.NE), seen)))


def _q_combine(children: st.SearchStrategy[QNode]) -> st.SearchStrategy[QNode]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return items.map(And) | items.map(Or)


@st.composite
def targeted_terms(draw: st.DrawFn, entities: list[Entity]) -> QNode:
    """A term built from a value some entity holds, along a path that reaches it."""
    ent = draw(st.sampled_from(entities))
    names = [n for n, v in ent.attrs.items() if isinstance(v, list) and _dicts(v)]
    if not names:
        return draw(q_terms())
    name = draw(st.sampled_from(sorted(names)))
    el = draw(st.sampled_from(_dicts(ent.attrs[name])))
    subs = [k for k in SUBS if isinstance(el.get(k), dict)]
    sub = draw(st.sampled_from(subs)) if subs and draw(st.booleans()) else None
    el = el[sub] if sub else el
    metas = sorted(m for m in META_NAMES if m in el)
    meta = draw(st.sampled_from(metas)) if metas and not draw(st.integers(0, 3)) else None
    raw, keys = (el[meta], []) if meta else _walk(draw, el)
    if isinstance(raw, list) and raw:
        raw = draw(st.sampled_from(raw))
    if isinstance(raw, dict):
        raw = raw.get("@value", raw.get("object"))
    path = Path(name, (sub,) if sub else (), meta, tuple(keys))
    if raw is None or isinstance(raw, dict | list):
        return Exists(path, draw(st.booleans()))
    value = Value(draw(st.sampled_from(_kinds_of(raw))), raw)
    if isinstance(raw, str) and not draw(st.integers(0, 4)):
        return Pattern(path, "^" + re.escape(raw[:2]), draw(st.booleans()))
    ops = [Op.EQ, Op.NE] if value.kind is Kind.BOOL else list(Op)
    return Compare(path, draw(st.sampled_from(ops)), value)


def _dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)]


def _walk(draw: st.DrawFn, el: dict[str, Any]) -> tuple[Any, list[str]]:
    kind = el.get("type")
    raw = el.get(VALUE_KEYS.get(kind, "value") if isinstance(kind, str) else "value")
    keys: list[str] = []
    while isinstance(raw, dict) and raw and draw(st.booleans()):
        keys.append(draw(st.sampled_from(sorted(raw))))
        raw = raw[keys[-1]]
    if kind == "LanguageProperty" and not keys and isinstance(raw, dict) and raw:
        raw = draw(st.sampled_from([raw[k] for k in sorted(raw)]))
    return raw, keys


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Entity], QNode]:
    """Entities, and a query whose terms often target what those entities hold."""
    entities = draw(entity_sets())
    seen = tuple(sorted({repr(v): v for e in entities for v in leaves(e.attrs)}.values(), key=repr))
    terms = targeted_terms(entities) | q_terms(seen)
    return entities, draw(st.recursive(terms, _q_combine, max_leaves=4))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_sql_agrees_with_evaluator(case: tuple[list[Entity], QNode]) -> None:
    entities, node = case
    db = connect()
    insert(db, entities)
    assert sql_q(db, node) == py_q(entities, node)


# --- scopes and types --------------------------------------------------------------------------

SCOPES = ["/A", "/A/B", "A/B/C", "/A/x/C", "/B", "/A/B/C/D", "/", "", "/A/'; --", 'A/"/C']
TYPES = ["T1", "T2", "T3", "'; DROP TABLE entities; --"]

scope_terms = st.one_of(
    st.builds(
        ScopeTerm,
        st.lists(st.sampled_from(["A", "B", "C", "x", "+"]), min_size=1, max_size=3).map(tuple),
        st.booleans(),
    ),
    st.just(ScopeTerm((), True)),
)
scope_asts = st.recursive(
    scope_terms,
    lambda c: st.lists(c, min_size=2, max_size=3).map(tuple).flatmap(
        lambda items: st.sampled_from([ScopeAnd(items), ScopeOr(items)])
    ),
    max_leaves=4,
)
type_asts = st.recursive(
    st.sampled_from(TYPES).map(TypeName),
    lambda c: st.lists(c, min_size=2, max_size=3).map(tuple).flatmap(
        lambda items: st.sampled_from([TypeAnd(items), TypeOr(items)])
    ),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None)
@given(entity_sets(), scope_asts)
def test_scope_sql_agrees_with_evaluator(entities: list[Entity], node: ScopeNode) -> None:
    db = connect()
    insert(db, entities)
    expected = {e.id for e in entities if scope_matches(node, e.scopes)}
    assert select(db, *compile_scope_q(node)) == expected


@settings(max_examples=300, deadline=None)
@given(entity_sets(), type_asts)
def test_type_sql_agrees_with_evaluator(entities: list[Entity], node: TypeNode) -> None:
    db = connect()
    insert(db, entities)
    insert(db, entities, tenant="other")  # another tenant's rows are never selected
    expected = {e.id for e in entities if types_match(node, e.types)}
    assert select(db, *compile_types(node, TENANT)) == expected


def test_types_use_the_primary_key_index(conn: sqlite3.Connection) -> None:
    sql, params = compile_types(parse_type_expr("T1|T2"), TENANT)
    plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT pk FROM entities AS e WHERE {sql}", params)
    details = [row[-1] for row in plan]
    assert "SEARCH entity_types USING PRIMARY KEY (tenant=? AND type=?)" in details
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in details


def test_combined_filters(conn: sqlite3.Connection) -> None:
    ents = [
        Entity("urn:e:1", ["T1"], {"a": [{"type": "Property", "value": 5}]}, ["/A/B"]),
        Entity("urn:e:2", ["T2"], {"a": [{"type": "Property", "value": 7}]}, ["/A"]),
        Entity("urn:e:3", ["T1"], {"a": [{"type": "Property", "value": 9}]}, None),
    ]
    insert(conn, ents)
    parts = [compile_q(parse_q("a>4")), compile_scope_q(parse_scope_q("/A/#")),
             compile_types(parse_type_expr("T1"), TENANT)]
    where = " AND ".join(sql for sql, _ in parts)
    assert select(conn, where, [p for _, params in parts for p in params]) == {"urn:e:1"}


# --- golden cases over a stored entity ---------------------------------------------------------

CAR = Entity(
    "urn:ngsi-ld:Vehicle:A",
    ["Vehicle"],
    {
        "speed": [
            {"type": "Property", "value": 55, "observedAt": "2020-01-01T00:00:00.000000Z"},
            {"type": "Property", "value": 80, "datasetId": "urn:ds:gps"},
        ],
        "brandName": [{"type": "Property", "value": "Mercedes"}],
        "isParked": [{"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:Downtown1"}],
        "address": [{"type": "Property", "value": {"city": "Berlin", "street": "Ulrich Strasse"}}],
        "name": [{"type": "LanguageProperty", "languageMap": {"en": "red", "fr": ["rouge"]}}],
        "tags": [{"type": "ListProperty", "valueList": ["a", "b"]}],
        "sensor": [
            {
                "type": "Property",
                "value": 40,
                "rawdata": {"type": "Property", "value": {"airquality": {"particulate": 40}}},
            }
        ],
    },
)


@pytest.mark.parametrize(
    ("q", "hit"),
    [
        ("speed", True),
        ("!speed", False),
        ("speed>70", True),
        ("speed>90", False),
        ("speed==55,80", True),
        ("speed==60..70", False),
        ("speed!=55", True),
        ('speed.datasetId=="urn:ds:gps"', True),
        ("speed.observedAt>=2019-12-31T23:00:00-01:00", True),
        ('brandName!="Mercedes"', False),
        ("brandName~=^Merc", True),
        ("brandName!~=^Merc", False),
        ('isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"', True),
        ("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", True),
        ('isParked>"urn"', False),
        ('address[city]=="Berlin"', True),
        ("address[zip]", False),
        ('name[en]=="red"', True),
        ('name=="rouge"', True),
        ('name[fr]!="rouge"', False),
        ('tags=="b"', True),
        ("sensor.rawdata[airquality.particulate]==40", True),
        ('((speed>50|rpm>3000);brandName=="Mercedes")', True),
        ("(speed>=20;speed<=25)|capacity<=10", False),
    ],
)
def test_golden_queries(conn: sqlite3.Connection, q: str, hit: bool) -> None:
    insert(conn, [CAR])
    node = parse_q(q)
    assert q_matches(node, CAR) is hit
    assert sql_q(conn, node) == ({CAR.id} if hit else set())


# --- injection ---------------------------------------------------------------------------------

NASTY = [
    "'; DROP TABLE entities; --",
    '"; DROP TABLE entities; --',
    '"',
    "'",
    "\\",
    "%",
    "_",
    "$.a",
    '$."a"',
    "a.b",
    "a[0]",
    "?",
    ":1",
    "{}",
    "*",
    "é",
    "tab\there",
    "new\nline",
]


def _intact(conn: sqlite3.Connection, count: int) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"entities", "entity_types", "tenants"} <= tables
    assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == count


@pytest.mark.parametrize("nasty", NASTY)
def test_injection_in_names_keys_values(conn: sqlite3.Connection, nasty: str) -> None:
    inst = {"type": "Property", "value": {nasty: nasty}, nasty: {"type": "Property", "value": 1}}
    ents = [
        Entity("urn:e:1", [nasty], {nasty: [inst]}, [f"/A/{nasty}"]),
        Entity("urn:e:2", ["T"], {"other": [{"type": "Property", "value": nasty}]}, ["/A"]),
    ]
    insert(conn, ents)
    queries: list[QNode] = [
        Exists(Path(nasty)),
        Exists(Path(nasty), negated=True),
        Compare(Path(nasty, keys=(nasty,)), Op.EQ, Value(Kind.STRING, nasty)),
        Compare(Path(nasty, (nasty,)), Op.EQ, Value(Kind.NUMBER, 1)),
        Compare(Path("other"), Op.EQ, Value(Kind.STRING, nasty)),
        Compare(Path("other"), Op.NE, ValueList((Value(Kind.STRING, nasty), Value(Kind.URI, "x")))),
        Compare(Path("other"), Op.GE, Value(Kind.STRING, nasty)),
        Pattern(Path("other"), "^" + re.escape(nasty)),
    ]
    for node in queries:
        assert sql_q(conn, node) == py_q(ents, node), node
    _intact(conn, 2)
    assert sql_q(conn, queries[0]) == {"urn:e:1"}
    assert sql_q(conn, queries[2]) == {"urn:e:1"}
    assert sql_q(conn, queries[4]) == {"urn:e:2"}
    type_sql = compile_types(TypeName(nasty), TENANT)
    assert select(conn, *type_sql) == {"urn:e:1"}
    _intact(conn, 2)


def test_injection_through_parsed_text(conn: sqlite3.Connection) -> None:
    nasty_iri = "http://x/'; DROP TABLE entities; --\""
    ents = [Entity("urn:e:1", ["T"], {nasty_iri: [{"type": "Property", "value": {"k'": "v\""}}]})]
    insert(conn, ents)
    node = parse_q("""a[k']=="v\\"";a[k']~="'; DROP TABLE entities; --|v\"""", lambda _: nasty_iri)
    assert sql_q(conn, node) == py_q(ents, node) == {"urn:e:1"}
    scope = parse_scope_q("/A/+/#;/B")
    assert select(conn, *compile_scope_q(scope)) == set()
    types = parse_type_expr("x';DROP--|T")
    assert select(conn, *compile_types(types, TENANT)) == {"urn:e:1"}
    _intact(conn, 1)


def test_sql_text_carries_no_user_input() -> None:
    node = parse_q('a=="SECRET1";b[SECRET2]~=SECRET3', lambda t: "SECRET_" + t)
    sql, params = compile_q(node)
    assert "SECRET" not in sql
    assert {"SECRET1", "SECRET2", "SECRET3"} <= set(params)
    assert {'$."SECRET_a"', '$."SECRET_b"'} <= set(params)  # attribute IRIs as JSON path params
    sql, params = compile_scope_q(parse_scope_q("/SECRET/+/X/#|/SECRET4/#"))
    assert "SECRET" not in sql
    sql, params = compile_types(parse_type_expr("(SECRET5;X)|Y"), "SECRET6")
    assert "SECRET" not in sql


def test_bad_regex_in_sql_matches_nothing(conn: sqlite3.Connection) -> None:
    insert(conn, [Entity("urn:e:1", ["T"], {"a": [{"type": "Property", "value": "x"}]})])
    assert sql_q(conn, Pattern(Path("a"), "(")) == set()
