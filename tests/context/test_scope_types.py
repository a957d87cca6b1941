"""scopeQ (clause 4.19) and entity type selection (clause 4.17): parsers and evaluators."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbis.context.errors import BadRequestData, InvalidRequest, TooComplexQuery
from urbis.context.jsonld import core_term_map
from urbis.context.query.evaluate import scope_matches, types_match
from urbis.context.query.scope import (
    ScopeAnd,
    ScopeNode,
    ScopeOr,
    ScopeTerm,
    parse_scope_q,
    scope_to_text,
)
from urbis.context.query.types import (
    TypeAnd,
    TypeName,
    TypeNode,
    TypeOr,
    parse_type_expr,
    type_names,
    type_to_text,
)

T = ScopeTerm

# --- scopeQ -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Madrid", T(("Madrid",))),  # EXAMPLE 1
        ("/Madrid/Gardens/#", T(("Madrid", "Gardens"), True)),  # EXAMPLE 2
        ("/Madrid/+/ParqueNorte", T(("Madrid", "+", "ParqueNorte"))),  # EXAMPLE 3
        (  # EXAMPLE 4
            "(/Madrid/Districts;/CompanyA)",
            ScopeAnd((T(("Madrid", "Districts")), T(("CompanyA",)))),
        ),
        (  # EXAMPLE 5 (as printed in the spec, without the leading `/` of CompanyB)
            "(/Madrid/Districts;/CompanyA)|CompanyB",
            ScopeOr((ScopeAnd((T(("Madrid", "Districts")), T(("CompanyA",)))), T(("CompanyB",)))),
        ),
        (
            "(/Madrid/Districts;/CompanyA),/CompanyB",
            ScopeOr((ScopeAnd((T(("Madrid", "Districts")), T(("CompanyA",)))), T(("CompanyB",)))),
        ),
        ("/#", T((), True)),
        ("/A,/B|/C", ScopeOr((T(("A",)), T(("B",)), T(("C",))))),
        ("/A;/B|/C", ScopeOr((ScopeAnd((T(("A",)), T(("B",)))), T(("C",))))),
        ("/A/+/#", T(("A", "+"), True)),
        (" /A ; /B ", ScopeAnd((T(("A",)), T(("B",))))),
    ],
)
def test_scope_golden(text: str, expected: ScopeNode) -> None:
    assert parse_scope_q(text) == expected
    assert parse_scope_q(scope_to_text(expected)) == expected


@pytest.mark.parametrize(
    "text", ["", "/", "//A", "/A/", "/A/#/B", "/A#", "(/A", "/A)", "/A;", "/A-B", "/A/##", "#"]
)
def test_scope_syntax_errors(text: str) -> None:
    with pytest.raises(BadRequestData, match="scopeQ"):
        parse_scope_q(text)


def test_scope_complexity() -> None:
    with pytest.raises(TooComplexQuery):
        parse_scope_q("(" * 40 + "/A" + ")" * 40)
    with pytest.raises(TooComplexQuery):
        parse_scope_q("|".join(["/A"] * 200))


def smatch(q: str, scopes: list[str] | None) -> bool:
    """Parse and evaluate a scopeQ."""
    return scope_matches(parse_scope_q(q), scopes)


def test_scope_semantics() -> None:
    gardens = ["/Madrid/Gardens", "/Madrid/Gardens/ParqueNorte", "/Madrid/Gardens/ParqueSur"]
    for scope in [*gardens, "/Madrid/Gardens/ParqueNorte/Parterre1"]:
        assert smatch("/Madrid/Gardens/#", [scope])
    assert not smatch("/Madrid/Gardens/#", ["/Madrid/GardensX"])
    assert not smatch("/Madrid/Gardens/#", ["/Madrid"])
    assert smatch("/Madrid/Gardens", ["/Madrid/Gardens"])
    assert not smatch("/Madrid/Gardens", ["/Madrid/Gardens/ParqueNorte"])
    assert smatch("/Madrid/+/ParqueNorte", ["/Madrid/Sights/ParqueNorte"])
    assert not smatch("/Madrid/+/ParqueNorte", ["/Madrid/ParqueNorte"])
    assert not smatch("/Madrid/+/ParqueNorte", ["/Madrid/A/B/ParqueNorte"])
    assert smatch("/Madrid/+/#", ["/Madrid/A/B"])
    both = ["/Madrid/Districts", "/CompanyA"]
    assert smatch("(/Madrid/Districts;/CompanyA)", both)
    assert not smatch("(/Madrid/Districts;/CompanyA)", ["/CompanyA"])
    assert smatch("(/Madrid/Districts;/CompanyA)|/CompanyB", ["/CompanyB"])
    assert smatch("/#", ["/X"])
    assert not smatch("/#", [])
    assert not smatch("/#", None)
    assert not smatch("/A", None)
    assert smatch("/A/B", ["A/B"])  # the leading `/` of a scope is optional (clause 4.18)


scope_levels = st.lists(
    st.from_regex(r"\w{1,4}", fullmatch=True) | st.just("+"), min_size=1, max_size=3
)
scope_terms = st.builds(ScopeTerm, scope_levels.map(tuple), st.booleans()) | st.just(T((), True))


def _scope_combine(children: st.SearchStrategy[ScopeNode]) -> st.SearchStrategy[ScopeNode]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return items.map(ScopeAnd) | items.map(ScopeOr)


scope_asts = st.recursive(scope_terms, _scope_combine, max_leaves=6)


@settings(max_examples=200)
@given(scope_asts)
def test_scope_round_trip(node: ScopeNode) -> None:
    assert parse_scope_q(scope_to_text(node)) == node


scope_chars = st.sampled_from(list("/#+;|,() aB1_-"))


@given(st.text() | st.lists(scope_chars, max_size=20).map("".join))
def test_scope_arbitrary_text(text: str) -> None:
    try:
        node = parse_scope_q(text)
    except (BadRequestData, InvalidRequest, TooComplexQuery):
        return
    assert parse_scope_q(scope_to_text(node)) == node


# --- entity type selection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Building", TypeName("Building")),
        ("Building|House", TypeOr((TypeName("Building"), TypeName("House")))),  # EXAMPLE 1
        ("Building,House", TypeOr((TypeName("Building"), TypeName("House")))),
        ("(Home;Vehicle)", TypeAnd((TypeName("Home"), TypeName("Vehicle")))),  # EXAMPLE 2
        (  # EXAMPLE 3
            "(Home;Vehicle)|Motorhome",
            TypeOr((TypeAnd((TypeName("Home"), TypeName("Vehicle"))), TypeName("Motorhome"))),
        ),
        (
            "(Home;Vehicle),Motorhome",
            TypeOr((TypeAnd((TypeName("Home"), TypeName("Vehicle"))), TypeName("Motorhome"))),
        ),
        ("Home;Vehicle|Boat", TypeOr((TypeAnd((TypeName("Home"), TypeName("Vehicle"))),
                                      TypeName("Boat")))),
        ("https://example.org/T", TypeName("https://example.org/T")),
        ("ex:T", TypeName("ex:T")),
    ],
)
def test_type_golden(text: str, expected: TypeNode) -> None:
    assert parse_type_expr(text) == expected
    assert parse_type_expr(type_to_text(expected)) == expected


def test_type_expansion() -> None:
    terms = core_term_map()
    node = parse_type_expr("(Building;Home)|https://x/T", terms.expand)
    default = "https://uri.etsi.org/ngsi-ld/default-context/"
    assert type_names(node) == {default + "Building", default + "Home", "https://x/T"}


@pytest.mark.parametrize("text", ["", "A|", ",A", "(A;B", "A)", "()", "A B", "A;;B"])
def test_type_syntax_errors(text: str) -> None:
    with pytest.raises(BadRequestData, match="type selection"):
        parse_type_expr(text)


def test_type_complexity() -> None:
    with pytest.raises(TooComplexQuery):
        parse_type_expr(",".join(["A"] * 200))


def test_type_semantics() -> None:
    def tmatch(text: str, types: list[str]) -> bool:
        return types_match(parse_type_expr(text), types)

    assert tmatch("Building|House", ["House"])
    assert not tmatch("Building|House", ["Car"])
    assert tmatch("(Home;Vehicle)", ["Home", "Vehicle", "X"])
    assert not tmatch("(Home;Vehicle)", ["Home"])
    assert tmatch("(Home;Vehicle)|Motorhome", ["Motorhome"])


type_terms = st.from_regex(r"[^\s,;|()]{1,6}", fullmatch=True).map(TypeName)


def _type_combine(children: st.SearchStrategy[TypeNode]) -> st.SearchStrategy[TypeNode]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return items.map(TypeAnd) | items.map(TypeOr)


@settings(max_examples=200)
@given(st.recursive(type_terms, _type_combine, max_leaves=6))
def test_type_round_trip(node: TypeNode) -> None:
    assert parse_type_expr(type_to_text(node)) == node


@given(st.text() | st.lists(st.sampled_from(list(",;|() aB:")), max_size=20).map("".join))
def test_type_arbitrary_text(text: str) -> None:
    try:
        node = parse_type_expr(text)
    except (BadRequestData, InvalidRequest, TooComplexQuery):
        return
    assert parse_type_expr(type_to_text(node)) == node
