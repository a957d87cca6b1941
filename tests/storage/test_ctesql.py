"""Combining write statements into one WITH (urbis.storage.postgres.ctesql): what is taken
apart, what is refused, and that nothing it accepts loses or moves a piece of text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from urbis.storage.postgres.ctesql import combine, shift, split

TEMPORAL_LIKE = """
WITH ent AS (
    INSERT INTO hist AS t (tenant, id) SELECT $1::text, u.id FROM unnest($2::text[]) AS u(id)
    ON CONFLICT (tenant, id) DO UPDATE SET id = excluded.id RETURNING tpk, id, (xmax = 0) AS new
), ser(sid, tpk) AS MATERIALIZED (
    INSERT INTO series (tpk, attr) SELECT ent.tpk, 'a''b' FROM ent RETURNING sid, tpk
)
SELECT id, new FROM ent
"""


def test_a_plain_write_is_its_own_main_statement() -> None:
    parsed = split("  INSERT INTO t (a) VALUES ($1);\n")
    assert parsed is not None
    assert (parsed.names, parsed.ctes, parsed.main, parsed.verb) == (
        [], [], "INSERT INTO t (a) VALUES ($1)", "INSERT")


def test_ctes_are_taken_apart() -> None:
    parsed = split(TEMPORAL_LIKE)
    assert parsed is not None
    assert parsed.names == ["ent", "ser"]
    assert parsed.ctes[0].startswith("ent AS (\n    INSERT INTO hist")
    assert parsed.ctes[1].startswith("ser(sid, tpk) AS MATERIALIZED (")
    assert parsed.ctes[1].endswith("RETURNING sid, tpk\n)")
    assert parsed.main == "SELECT id, new FROM ent"
    assert parsed.verb == "SELECT"


def test_what_is_not_understood_is_refused() -> None:
    for sql in ("SELECT 1", "WITH RECURSIVE x AS (SELECT 1) DELETE FROM t",
                "INSERT INTO t VALUES ($$x$$)", "INSERT INTO t VALUES (E'\\n')",
                "WITH x AS (SELECT 1) WITH y AS (SELECT 2) DELETE FROM t",
                "INSERT INTO t VALUES ('unclosed)", "DELETE FROM t -- a comment",
                'WITH "Quoted" AS (SELECT 1) DELETE FROM t', "WITH x AS SELECT 1",
                "DELETE FROM t WHERE a IN (1", "VACUUM t", ""):
        assert split(sql) is None, sql


def test_combine_hoists_ctes_renumbers_and_reads_selects() -> None:
    sql, args = combine("urbis_w AS (UPDATE e SET a = $2 WHERE pk = $1 RETURNING pk)", [1, 2],
                        [(TEMPORAL_LIKE, ("t", ["x"])), ("INSERT INTO o VALUES ($1)", (9,))],
                        "SELECT count(*) FROM urbis_w") or ("", [])
    assert args == [1, 2, "t", ["x"], 9]
    assert "SELECT $3::text, u.id FROM unnest($4::text[])" in sql
    assert "urbis_j0 AS (SELECT id, new FROM ent)" in sql
    assert "urbis_j1 AS (INSERT INTO o VALUES ($5))" in sql
    assert sql.endswith("SELECT count(*) FROM urbis_w, (SELECT count(*) FROM urbis_j0)")
    assert sql.index("ent AS") < sql.index("ser(sid, tpk) AS") < sql.index("urbis_j0 AS")


def test_combine_refuses_clashing_names() -> None:
    first = "urbis_w AS (UPDATE e SET a = $1 RETURNING pk)"
    # the same CTE name twice, a CTE hiding a table another statement uses, a reserved name
    assert combine(first, [1], [(TEMPORAL_LIKE, ()), (TEMPORAL_LIKE, ())], "SELECT 1") is None
    assert combine(first, [1], [("WITH e AS (SELECT 1) DELETE FROM t", ())], "SELECT 1") is None
    assert combine(first, [1], [("WITH urbis_x AS (SELECT 1) DELETE FROM t", ())],
                   "SELECT 1") is None


def test_shift_renumbers_every_parameter() -> None:
    assert shift("a = $1 AND b = $10 AND c = $2", 5) == "a = $6 AND b = $15 AND c = $7"


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
# Well-formed bodies: balanced parentheses, closed quotes (with '' inside), parameters.
BODIES = st.from_regex(r"(SELECT|INSERT INTO t VALUES) (\([a-z0-9 ,$]{0,12}\))?"
                       r"( '([a-z(), ]|'')*')?( \$[1-9])?", fullmatch=True)


@given(st.text(max_size=200))
def test_split_never_raises(sql: str) -> None:
    split(sql)


@given(st.lists(st.tuples(NAMES, BODIES), min_size=1, max_size=4), BODIES)
def test_split_returns_the_pieces_it_was_given(ctes: list[tuple[str, str]], main: str) -> None:
    sql = "WITH " + ", ".join(f"{n} AS ({b})" for n, b in ctes) + " " + main
    parsed = split(sql)
    if parsed is None:  # a body the scanner refuses (unbalanced, quotes, ...)
        return
    assert parsed.names == [n for n, _ in ctes]
    assert parsed.ctes == [f"{n} AS ({b})" for n, b in ctes]
    assert parsed.main == main.rstrip("; \n\t")
