"""PostgreSQL compilation of q / scopeQ / type selections: it must agree with the Python evaluator.

The generators are those of test_qsql.py (SQLite), so both backends face the same cases. Runs
when URBIS_TEST_DATABASE_URL names a PostgreSQL server (PostGIS installed): the module works in
a database of its own, created and dropped here, and every example rolls back its rows.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import threading
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, given, settings

asyncpg = pytest.importorskip("asyncpg")

from test_qsql import CAR, NASTY, cases, entity_sets, scope_asts, type_asts  # noqa: E402

from urbis.context.errors import BadRequestData  # noqa: E402
from urbis.context.model import Entity  # noqa: E402
from urbis.context.query import evaluate  # noqa: E402
from urbis.context.query.evaluate import q_matches, scope_matches, types_match  # noqa: E402
from urbis.context.query.q import (  # noqa: E402
    Compare,
    Exists,
    Kind,
    Op,
    Path,
    Pattern,
    QNode,
    Value,
    ValueList,
    datetime_key,
    parse_q,
    time_key,
)
from urbis.context.query.scope import ScopeNode, parse_scope_q  # noqa: E402
from urbis.context.query.types import TypeName, TypeNode, parse_type_expr  # noqa: E402
from urbis.storage.postgres.db import setup_connection  # noqa: E402
from urbis.storage.postgres.qsql import (  # noqa: E402
    Params,
    compile_q,
    compile_scope_q,
    compile_types,
)
from urbis.storage.postgres.regex import to_postgres  # noqa: E402
from urbis.storage.postgres.schema import migrate  # noqa: E402

URL = os.environ.get("URBIS_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="URBIS_TEST_DATABASE_URL is not set")
T = TypeVar("T")
TENANT = "t"
NOW = "2024-01-01T00:00:00.000000Z"


class PgHarness:
    """A private database on the test server, driven synchronously through a loop thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.name = f"urbis_test_{uuid.uuid4().hex[:12]}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(self._admin(f'CREATE DATABASE "{self.name}"'))
        self.url = urlparse(base_url)._replace(path="/" + self.name).geturl()
        self.conn = self.run(asyncpg.connect(self.url))
        self.run(setup_connection(self.conn))
        self.run(migrate(self.conn))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the harness loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.base_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    @contextmanager
    def rolled_back(self) -> Iterator[None]:
        """Everything written inside is undone afterwards."""
        self.run(self.conn.execute("BEGIN"))
        try:
            yield
        finally:
            self.run(self.conn.execute("ROLLBACK"))

    def close(self) -> None:
        """Drop the database and stop the loop."""
        self.run(self.conn.close())
        self.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


@pytest.fixture(scope="module")
def pg() -> Iterator[PgHarness]:
    """The module's database."""
    harness = PgHarness(URL)
    yield harness
    harness.close()


@pytest.fixture
def db(pg: PgHarness) -> Iterator[PgHarness]:
    """The module's database; the test's rows are rolled back."""
    with pg.rolled_back():
        yield pg


def insert(pg: PgHarness, entities: list[Entity], tenant: str = TENANT) -> None:
    """Store entities per the layout of schema.py."""
    rows = [(tenant, e.id, e.types, e.scopes, NOW, NOW, e.attrs) for e in entities]
    pg.run(pg.conn.executemany(
        "INSERT INTO entities (tenant, id, types, scopes, created_at, modified_at, attrs) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)", rows))


def select(pg: PgHarness, compile_: Any) -> set[str]:
    """Ids of the tenant's entities satisfying the condition `compile_(params)` returns."""
    params = Params([TENANT])
    where = compile_(params)
    sql = f"SELECT e.id FROM entities AS e WHERE e.tenant = $1 AND {where}"
    return {row[0] for row in pg.run(pg.conn.fetch(sql, *params.values))}


def sql_q(pg: PgHarness, node: QNode) -> set[str]:
    """Entities selected by the compiled q."""
    return select(pg, lambda params: compile_q(node, params))


def py_q(entities: list[Entity], node: QNode) -> set[str]:
    """Entities selected by the evaluator."""
    # The evaluator caches element tests per node, and Value(NUMBER, True) == Value(NUMBER, 1):
    # the generators can build the former, so a cached test must not leak between examples.
    evaluate._element_test.cache_clear()
    return {e.id for e in entities if q_matches(node, e)}


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cases())
def test_sql_agrees_with_evaluator(pg: PgHarness, case: tuple[list[Entity], QNode]) -> None:
    entities, node = case
    with pg.rolled_back():
        insert(pg, entities)
        assert sql_q(pg, node) == py_q(entities, node)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entity_sets(), scope_asts)
def test_scope_sql_agrees_with_evaluator(pg: PgHarness, entities: list[Entity],
                                         node: ScopeNode) -> None:
    with pg.rolled_back():
        insert(pg, entities)
        expected = {e.id for e in entities if scope_matches(node, e.scopes)}
        assert select(pg, lambda params: compile_scope_q(node, params)) == expected


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entity_sets(), type_asts)
def test_type_sql_agrees_with_evaluator(pg: PgHarness, entities: list[Entity],
                                        node: TypeNode) -> None:
    with pg.rolled_back():
        insert(pg, entities)
        insert(pg, entities, tenant="other")  # another tenant's rows are never selected
        expected = {e.id for e in entities if types_match(node, e.types)}
        assert select(pg, lambda params: compile_types(node, params)) == expected


def test_types_use_the_gin_index(db: PgHarness) -> None:
    params = Params()
    where = compile_types(parse_type_expr("T1|T2"), params)
    db.run(db.conn.execute("SET LOCAL enable_seqscan = off"))
    plan = db.run(db.conn.fetch(f"EXPLAIN SELECT e.pk FROM entities e WHERE {where}",
                                *params.values))
    assert "entities_types" in " ".join(r[0] for r in plan)


def test_combined_filters(db: PgHarness) -> None:
    ents = [
        Entity("urn:e:1", ["T1"], {"a": [{"type": "Property", "value": 5}]}, ["/A/B"]),
        Entity("urn:e:2", ["T2"], {"a": [{"type": "Property", "value": 7}]}, ["/A"]),
        Entity("urn:e:3", ["T1"], {"a": [{"type": "Property", "value": 9}]}, None),
    ]
    insert(db, ents)

    def where(params: Params) -> str:
        return " AND ".join([compile_q(parse_q("a>4"), params),
                             compile_scope_q(parse_scope_q("/A/#"), params),
                             compile_types(parse_type_expr("T1"), params)])

    assert select(db, where) == {"urn:e:1"}


# --- golden cases over a stored entity ---------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    ["speed", "!speed", "speed>70", "speed>90", "speed==55,80", "speed==60..70", "speed!=55",
     'speed.datasetId=="urn:ds:gps"', "speed.observedAt>=2019-12-31T23:00:00-01:00",
     'brandName!="Mercedes"', "brandName~=^Merc", "brandName!~=^Merc",
     'isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"',
     "isParked==urn:ngsi-ld:OffStreetParking:Downtown1", 'isParked>"urn"',
     'address[city]=="Berlin"', "address[zip]", 'name[en]=="red"', 'name=="rouge"',
     'name[fr]!="rouge"', 'tags=="b"', "sensor.rawdata[airquality.particulate]==40",
     '((speed>50|rpm>3000);brandName=="Mercedes")', "(speed>=20;speed<=25)|capacity<=10"],
)
def test_golden_queries(db: PgHarness, q: str) -> None:
    insert(db, [CAR])
    node = parse_q(q)
    assert sql_q(db, node) == ({CAR.id} if q_matches(node, CAR) else set())


# --- injection and U+0000 ----------------------------------------------------------------------


def _intact(pg: PgHarness, count: int) -> None:
    tables = {r[0] for r in pg.run(pg.conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
    assert {"entities", "geo", "tenants"} <= tables
    assert pg.run(pg.conn.fetchval("SELECT count(*) FROM entities")) == count


@pytest.mark.parametrize("nasty", NASTY)
def test_injection_in_names_keys_values(db: PgHarness, nasty: str) -> None:
    inst = {"type": "Property", "value": {nasty: nasty}, nasty: {"type": "Property", "value": 1}}
    ents = [
        Entity("urn:e:1", [nasty], {nasty: [inst]}, [f"/A/{nasty}"]),
        Entity("urn:e:2", ["T"], {"other": [{"type": "Property", "value": nasty}]}, ["/A"]),
    ]
    insert(db, ents)
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
        assert sql_q(db, node) == py_q(ents, node), node
    _intact(db, 2)
    assert sql_q(db, queries[0]) == {"urn:e:1"}
    assert sql_q(db, queries[2]) == {"urn:e:1"}
    assert sql_q(db, queries[4]) == {"urn:e:2"}
    assert select(db, lambda params: compile_types(TypeName(nasty), params)) == {"urn:e:1"}
    _intact(db, 2)


def test_sql_text_carries_no_user_input() -> None:
    node = parse_q('a=="SECRET1";b[SECRET2]~=SECRET3;c>"SECRET7"', lambda t: "SECRET_" + t)
    params = Params()
    sql = compile_q(node, params)
    assert "SECRET" not in sql
    assert {"SECRET1", "SECRET2", "SECRET3", "SECRET_a", "SECRET_b"} <= set(params.values)
    params = Params()
    assert "SECRET" not in compile_scope_q(parse_scope_q("/SECRET/+/X/#|/SECRET4/#"), params)
    assert "SECRET" not in compile_types(parse_type_expr("(SECRET5;X)|Y"), Params())


def test_nul_in_query_text_is_data(db: PgHarness) -> None:
    ents = [Entity("urn:e:1", ["T"], {"a": [{"type": "Property", "value": "ab"}]})]
    insert(db, ents)
    queries: list[QNode] = [
        Exists(Path("a\x00")),
        Exists(Path("a\x00"), negated=True),
        *[Compare(Path("a"), op, Value(Kind.STRING, text)) for op in Op
          for text in ("ab\x00c", "a\x00", "b\x00")],
        Compare(Path("a", keys=("k\x00",)), Op.NE, Value(Kind.NUMBER, 1)),
    ]
    for node in queries:
        assert sql_q(db, node) == py_q(ents, node), node
    assert select(db, lambda p: compile_types(TypeName("T\x00"), p)) == set()


def test_unsupported_regex_is_bad_request() -> None:
    for pattern in ("(?>a)", "a++", "(?i:a)b", "(?(1)a|b)"):
        with pytest.raises(BadRequestData):
            compile_q(Pattern(Path("a"), pattern), Params())


# --- the parts PostgreSQL computes itself agree with Python ------------------------------------

PATTERNS = ["^x", "y$", "(?i)BER", "[%_]", "^$", "a.b", "(?s)a.b", "(?m)^b", "(?m)a$", "a$",
            "\\bfoo\\b", "\\Bo", "a{,2}b", "x{}", "\\x41B", "[\\x41-\\x43]+", "(a)(?=(b))\\1",
            "(?P<n>a)(?P=n)", "[^a]", "[]a]", "[^]a]", "[[]", "\\101", "[\\101]", "(a)\\1",
            "\\d", "[\\d.]+", "\\D", "(?a)\\w", "(?x) a b # comment\n c", "a\\Z", "\\Aa",
            "(?<=a)b", "(?<!a)b", "a*?b", "\\$", "\\^x", "\\u00e9", "\\N{EM DASH}", "(?#c)a"]
TEXTS = ["x", "y", "", "Berlin", "é", "a\nb", "ab", "b\n", "a\n", "foo bar", "AB", "A", "aa",
         "ab\n", "]", "[", ":", "abc", "aab", "٣", "1.5", "a b c", "ac", "\t", "$", "^x", "—"]


def test_regex_translation_agrees_with_python(db: PgHarness) -> None:
    for pattern in PATTERNS:
        rows = db.run(db.conn.fetch("SELECT t, t ~ $1 FROM unnest($2::text[]) t",
                                    to_postgres(pattern), TEXTS))
        for text, matched in rows:
            assert matched == (re.search(pattern, text) is not None), (pattern, text)


def test_datetime_and_time_keys_agree_with_python(db: PgHarness) -> None:
    rnd = random.Random(5)
    stamps = ["2020-02-29T23:59:59.9999999-05:30", "2019-02-29T00:00Z", "0001-01-01T00:00+00:01",
              "9999-12-31T23:59:59.999999-00:01", "2020-01-01T00:60Z", "2020-01-01T00:00+9999"]
    times = ["23:59:59.1234567", "24:00", "12:00:60", "1:00", "12:00Z"]
    for _ in range(1000):
        stamp = (f"{rnd.choice(['0000', '0001', '2024', '9999'])}-{rnd.randint(0, 13):02d}-"
                 f"{rnd.randint(0, 32):02d}T{rnd.randint(0, 25):02d}:{rnd.randint(0, 61):02d}")
        stamp += rnd.choice(["", f":{rnd.randint(0, 61):02d}", ":05.123456789"])
        stamps.append(stamp + rnd.choice(["", "Z", "+01:00", "-0530", "-99:99"]))
        times.append(f"{rnd.randint(0, 25):02d}:{rnd.randint(0, 61):02d}"
                     + rnd.choice(["", ":59", ":60.5", ":07.1234567"]) + rnd.choice(["", "Z"]))
    rows = db.run(db.conn.fetch("SELECT s, urbis_datetime_key(s) FROM unnest($1::text[]) s",
                                stamps))
    assert [(s, k) for s, k in rows if k != datetime_key(s)] == []
    rows = db.run(db.conn.fetch("SELECT s, urbis_time_key(s) FROM unnest($1::text[]) s", times))
    assert [(s, k) for s, k in rows if k != time_key(s)] == []
