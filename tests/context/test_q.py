"""q language (ETSI GS CIM 009 V1.9.1 clause 4.9): parser, serialiser and evaluator."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbis.context.errors import BadRequestData, InvalidRequest, TooComplexQuery
from urbis.context.jsonld import core_term_map
from urbis.context.model import Entity
from urbis.context.query.evaluate import q_matches
from urbis.context.query.q import (
    MAX_DEPTH,
    MAX_LENGTH,
    META_NAMES,
    ORDERED_KINDS,
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
    parse_q,
    time_key,
    to_text,
    value_class,
)

N = lambda v: Value(Kind.NUMBER, v)  # noqa: E731
S = lambda v: Value(Kind.STRING, v)  # noqa: E731
P = Path


# --- golden examples of clause 4.9 -------------------------------------------------------------

GOLDEN: list[tuple[str, QNode]] = [
    ("temperature", Exists(P("temperature"))),  # EXAMPLE 0
    ("temperature==20", Compare(P("temperature"), Op.EQ, N(20))),  # EXAMPLE 1
    ('brandName!="Mercedes"', Compare(P("brandName"), Op.NE, S("Mercedes"))),  # EXAMPLE 2
    (  # EXAMPLE 3
        'isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"',
        Compare(P("isParked"), Op.EQ, S("urn:ngsi-ld:OffStreetParking:Downtown1")),
    ),
    (  # EXAMPLE 4
        'speed>50;brandName!="Mercedes"',
        And((Compare(P("speed"), Op.GT, N(50)), Compare(P("brandName"), Op.NE, S("Mercedes")))),
    ),
    ("isMonitoredBy", Exists(P("isMonitoredBy"))),  # EXAMPLE 5
    (  # EXAMPLE 6
        '((speed>50|rpm>3000);brandName=="Mercedes")',
        And(
            (
                Or((Compare(P("speed"), Op.GT, N(50)), Compare(P("rpm"), Op.GT, N(3000)))),
                Compare(P("brandName"), Op.EQ, S("Mercedes")),
            )
        ),
    ),
    (  # EXAMPLE 7
        "(temperature>=20;temperature<=25)|capacity<=10",
        Or(
            (
                And(
                    (
                        Compare(P("temperature"), Op.GE, N(20)),
                        Compare(P("temperature"), Op.LE, N(25)),
                    )
                ),
                Compare(P("capacity"), Op.LE, N(10)),
            )
        ),
    ),
    (  # EXAMPLE 8
        "temperature.observedAt>=2017-12-24T12:00:00Z",
        Compare(
            P("temperature", meta="observedAt"), Op.GE, Value(Kind.DATETIME, "2017-12-24T12:00:00Z")
        ),
    ),
    ('address[city]=="Berlin"', Compare(P("address", keys=("city",)), Op.EQ, S("Berlin"))),
    (  # EXAMPLE 10
        "sensor.rawdata[airquality.particulate]==40",
        Compare(P("sensor", ("rawdata",), keys=("airquality", "particulate")), Op.EQ, N(40)),
    ),
    (  # EXAMPLE 11
        'parkingTickets[value]=="Overstay 60 minutes"',
        Compare(P("parkingTickets", keys=("value",)), Op.EQ, S("Overstay 60 minutes")),
    ),
    ("gender==Male", Compare(P("gender"), Op.EQ, Value(Kind.TERM, "Male"))),  # EXAMPLE 12
    ('color=="red"', Compare(P("color"), Op.EQ, S("red"))),
    ('color=="black","red"', Compare(P("color"), Op.EQ, ValueList((S("black"), S("red"))))),
    ("temperature==10..20", Compare(P("temperature"), Op.EQ, Range(N(10), N(20)))),
    ("temperature!=10..20", Compare(P("temperature"), Op.NE, Range(N(10), N(20)))),
    ('color[en]=="red"', Compare(P("color", keys=("en",)), Op.EQ, S("red"))),
    ('color[*]!="red"', Compare(P("color", keys=("*",)), Op.NE, S("red"))),
    ('color!= "black", "red"', Compare(P("color"), Op.NE, ValueList((S("black"), S("red"))))),
    (
        'color=="http://example/black","http://example/red"',
        Compare(P("color"), Op.EQ, ValueList((S("http://example/black"), S("http://example/red")))),
    ),
    ("!temperature", Exists(P("temperature"), negated=True)),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN)
def test_golden_examples(text: str, expected: QNode) -> None:
    assert parse_q(text) == expected
    assert parse_q(to_text(expected)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a==1", N(1)),
        ("a==-1", N(-1)),
        ("a==1.5", N(1.5)),
        ("a==-2.5e3", N(-2500.0)),
        ("a==1E-2", N(0.01)),
        ('a=="x\\"y\\\\z\\u00e9\\n"', S('x"y\\z\u00e9\n')),
        ("a==true", Value(Kind.BOOL, True)),
        ("a==false", Value(Kind.BOOL, False)),
        ("a==2020-01-01T00:00:00Z", Value(Kind.DATETIME, "2020-01-01T00:00:00Z")),
        ("a==2020-01-01T00:00:00.5+01:00", Value(Kind.DATETIME, "2020-01-01T00:00:00.5+01:00")),
        ("a==2020-02-29", Value(Kind.DATE, "2020-02-29")),
        ("a==12:30:00Z", Value(Kind.TIME, "12:30:00Z")),
        ("a==urn:ngsi-ld:X:1", Value(Kind.URI, "urn:ngsi-ld:X:1")),
        ("a==https://example.org/a?b=c#d", Value(Kind.URI, "https://example.org/a?b=c#d")),
        ("a==null", Value(Kind.TERM, "null")),
    ],
)
def test_values(text: str, expected: Value) -> None:
    node = parse_q(text)
    assert isinstance(node, Compare)
    assert node.operand == expected


def test_ranges_lists_and_patterns() -> None:
    dt = Value(Kind.DATETIME, "2020-01-01T00:00:00Z"), Value(Kind.DATETIME, "2021-01-01T00:00:00Z")
    assert parse_q("a==2020-01-01T00:00:00Z..2021-01-01T00:00:00Z") == Compare(
        P("a"), Op.EQ, Range(*dt)
    )
    assert parse_q("a==1.5..2") == Compare(P("a"), Op.EQ, Range(N(1.5), N(2)))
    assert parse_q('a=="a".."m"') == Compare(P("a"), Op.EQ, Range(S("a"), S("m")))
    assert parse_q("a==1,2,3") == Compare(P("a"), Op.EQ, ValueList((N(1), N(2), N(3))))
    assert parse_q("a~=^Ber.*n$") == Pattern(P("a"), "^Ber.*n$")
    assert parse_q('a!~="x;y|z"') == Pattern(P("a"), "x;y|z", negated=True)
    # An unquoted pattern ends at `;`, `|` or `)` outside its own groups and classes.
    assert parse_q("(a~=(x|y)[;)]+;b)") == And((Pattern(P("a"), "(x|y)[;)]+"), Exists(P("b"))))
    assert parse_q("a~=(?i)mercedes|b") == Or((Pattern(P("a"), "(?i)mercedes"), Exists(P("b"))))


def test_precedence_and_grouping() -> None:
    a, b, c = (Exists(P(n)) for n in "abc")
    assert parse_q("a;b|c") == Or((And((a, b)), c))
    assert parse_q("a|b;c") == Or((a, And((b, c))))
    assert parse_q("a;(b|c)") == And((a, Or((b, c))))
    assert parse_q("(a;b);c") == And((And((a, b)), c))
    assert parse_q("((a))") == a
    assert parse_q(" a ; b ") == And((a, b))


def test_expansion_of_names_not_keys() -> None:
    terms = core_term_map()
    node = parse_q("temperature.accuracy[a.b]==1", terms.expand)
    default = "https://uri.etsi.org/ngsi-ld/default-context/"
    assert node == Compare(
        P(default + "temperature", (default + "accuracy",), keys=("a", "b")), Op.EQ, N(1)
    )
    node = parse_q("location.observedAt>2020-01-01", terms.expand)
    assert isinstance(node, Compare)
    assert node.path == P("https://uri.etsi.org/ngsi-ld/location", meta="observedAt")


def test_expand_values() -> None:
    expand = {"gender": "http://x/gender", "Male": "http://x/Male"}.get
    node = parse_q("gender==Male", lambda t: expand(t) or t, expand_values=["gender"])
    assert node == Compare(P("http://x/gender"), Op.EQ, S("http://x/Male"))
    assert parse_q("gender==1", lambda t: expand(t) or t, expand_values=["gender"]).operand == N(1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "a==",
        "==1",
        "a=1",
        "a===1",
        "a==1;",
        "a==1|",
        ";a",
        "(a==1",
        "a==1)",
        "()",
        "a..b",
        "a.",
        "a[",
        "a[]",
        "a[b",
        "a[b.]",
        "a>true",
        "a>urn:x",
        "a>1,2",
        "a>1..2",
        "a==1..true",
        'a==1.."x"',
        "a==1x",
        'a=="x"y',
        'a=="unterminated',
        'a=="bad \\q escape"',
        "a==2020-13-01",
        "a==2020-01-01T25:00:00Z",
        "a==25:00:00",
        "a~=",
        "a~=(",
        "a~=[a-",
        "!a==1",
        "a.observedAt.b",
        "a.observedAt[b]",
        "a b",
        "1a==1",
        "a==1e999",
        "a!!=1",
        "sensor{humidity}==40",  # linked-entity queries (V1.9.1 EXAMPLE 13) are not supported
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(BadRequestData) as info:
        parse_q(text)
    assert "q" in info.value.detail


def test_error_detail_names_position_and_expectation() -> None:
    with pytest.raises(BadRequestData) as info:
        parse_q("speed>50;brandName!=")
    assert info.value.detail == (
        "Invalid q at position 20: expected a value (number, \"string\", true, false, date, "
        "time or URI), found the end"
    )
    with pytest.raises(BadRequestData, match=r"position 5: expected '\)'"):
        parse_q("(a==1")


def test_complexity_bounds() -> None:
    with pytest.raises(TooComplexQuery):
        parse_q("a" * (MAX_LENGTH + 1))
    with pytest.raises(TooComplexQuery):
        parse_q("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(TooComplexQuery):
        parse_q(";".join(["a"] * 300))
    with pytest.raises(TooComplexQuery):
        parse_q("a==" + ",".join(["1"] * 300))
    with pytest.raises(TooComplexQuery):
        compile_regex("x" * 2000)


def test_parse_speed() -> None:
    text = '(temperature>=20;temperature<=25)|brandName=="Mercedes";address[city]~=Ber.*'
    rounds, best = 500, float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            parse_q(text)
        best = min(best, (time.perf_counter() - start) / rounds)
    assert best < 100e-6, f"{best * 1e6:.1f} µs per parse"


# --- round trip and robustness ------------------------------------------------------------------

names = st.from_regex(r"[^\W\d]\w{0,6}(?:[-:]\w{1,3})?", fullmatch=True)
sub_names = names.filter(lambda n: n not in META_NAMES)
keys = st.one_of(st.just("*"), st.text(st.characters(exclude_characters=".[]"), min_size=1))


@st.composite
def paths(draw: st.DrawFn) -> Path:
    """Random attribute paths."""
    meta = draw(st.none() | st.sampled_from(sorted(META_NAMES)))
    key_path = () if meta else tuple(draw(st.lists(keys, max_size=3)))
    return Path(draw(names), tuple(draw(st.lists(sub_names, max_size=2))), meta, key_path)


@st.composite
def datetimes(draw: st.DrawFn) -> str:
    """Valid unquoted DateTime texts in several shapes."""
    moment = draw(st.datetimes())
    text = moment.strftime("%Y-%m-%dT%H:%M") if moment.year >= 1000 else "1999-01-01T00:00"
    text += draw(st.sampled_from(["", f":{moment.second:02d}", f":{moment.second:02d}.5"]))
    return text + draw(st.sampled_from(["", "Z", "+01:00", "-0230"]))


VALUES: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.NUMBER: st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    Kind.STRING: st.text(),
    Kind.BOOL: st.booleans(),
    Kind.DATETIME: datetimes(),
    Kind.DATE: st.dates(min_value=__import__("datetime").date(1000, 1, 1)).map(str),
    Kind.TIME: st.times().map(lambda t: t.strftime("%H:%M:%S") + ("Z" if t.minute % 2 else "")),
    Kind.URI: st.from_regex(r"[A-Za-z][A-Za-z0-9+.\-]{0,5}:[^\s;|),\"]{0,10}", fullmatch=True),
    Kind.TERM: st.from_regex(r"[^\W\d][\w\-]{0,8}", fullmatch=True).filter(
        lambda w: w not in ("true", "false")
    ),
}


def values(kinds: list[Kind] | None = None) -> st.SearchStrategy[Value]:
    """Random literal values of the given kinds."""
    chosen = kinds or list(Kind)
    return st.one_of(*(VALUES[k].map(lambda v, k=k: Value(k, v)) for k in chosen))


@st.composite
def operands(draw: st.DrawFn, op: Op) -> Value | ValueList | Range:
    """An operand valid for the operator."""
    if op not in (Op.EQ, Op.NE):
        return draw(values(sorted(ORDERED_KINDS)))
    shape = draw(st.sampled_from(["value", "list", "range"]))
    if shape == "value":
        return draw(values())
    if shape == "list":
        return ValueList(tuple(draw(st.lists(values(), min_size=2, max_size=4))))
    low = draw(values(sorted(ORDERED_KINDS)))
    same = [k for k in ORDERED_KINDS if value_class(Value(k, "")) == value_class(low)]
    return Range(low, draw(values(sorted(same))))


def _valid_regex(text: str) -> bool:
    try:
        compile_regex(text)
    except (BadRequestData, TooComplexQuery):
        return False
    return True


regexes = st.sampled_from(["^a", "b$", "(?i)x|y", "[;|)]", "a.c", r"\d+"]) | st.text(
    min_size=1, max_size=8
).filter(_valid_regex)


@st.composite
def terms(draw: st.DrawFn) -> QNode:
    """A random query term."""
    path = draw(paths())
    shape = draw(st.sampled_from(["exists", "compare", "pattern"]))
    if shape == "exists":
        return Exists(path, draw(st.booleans()))
    if shape == "pattern":
        return Pattern(path, draw(regexes), draw(st.booleans()))
    op = draw(st.sampled_from(list(Op)))
    return Compare(path, op, draw(operands(op)))


def _combine(children: st.SearchStrategy[QNode]) -> st.SearchStrategy[QNode]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return items.map(And) | items.map(Or)


q_asts = st.recursive(terms(), _combine, max_leaves=8)


@settings(max_examples=250, deadline=None)
@given(q_asts)
def test_round_trip(node: QNode) -> None:
    assert parse_q(to_text(node)) == node


query_chars = st.sampled_from([*'=!<>~;|()[].,"*\\ -:+aZ09T', "..", "==", "a", "b"])


@settings(max_examples=400, deadline=None)
@given(st.text() | st.lists(query_chars, max_size=25).map("".join))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        node = parse_q(text)
    except (BadRequestData, InvalidRequest, TooComplexQuery):
        return
    assert parse_q(to_text(node)) == node


# --- evaluation (clause 4.9 semantics) ----------------------------------------------------------


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    """A Property instance."""
    return {"type": "Property", "value": value, **extra}


def entity(**attrs: Any) -> Entity:
    """An entity whose attributes are single instances (or lists of instances)."""
    return Entity(
        "urn:e:1", ["T"], {k: v if isinstance(v, list) else [v] for k, v in attrs.items()}
    )


def match(q: str, ent: Entity) -> bool:
    """Parse and evaluate."""
    return q_matches(parse_q(q), ent)


def test_existence() -> None:
    ent = entity(temperature=prop(20), rel={"type": "Relationship", "object": "urn:x"})
    assert match("temperature", ent)
    assert match("rel", ent)
    assert not match("humidity", ent)
    assert match("!humidity", ent)
    assert not match("!temperature", ent)
    assert not match("temperature.observedAt", ent)
    assert match("temperature", entity(temperature=prop(None)))


def test_equal_and_unequal() -> None:
    red = entity(color=prop("red"))
    colours = entity(color=prop(["blue", "red", "green"]))
    black = entity(color=prop("black"))
    assert match('color=="red"', red)
    assert match('color=="red"', colours)
    assert not match('color=="red"', black)
    assert match('color=="black","red"', red)
    assert match('color=="black","red"', colours)
    assert match('color!="red"', black)
    assert not match('color!="red"', colours)
    assert match('color!="red"', entity(color=prop(["blue", "black"])))
    assert not match('color!="black","red"', red)
    assert match('color!="black","red"', entity(color=prop("blue")))
    assert not match('color!="red"', entity(other=prop(1)))  # the target must exist


def test_data_types_never_mix() -> None:
    assert not match("a==1", entity(a=prop("1")))
    assert not match('a=="1"', entity(a=prop(1)))
    assert not match("a==1", entity(a=prop(True)))
    assert not match("a==true", entity(a=prop(1)))
    assert match("a==true", entity(a=prop(True)))
    assert match("a==1", entity(a=prop(1.0)))
    assert not match("a>0", entity(a=prop("5")))
    assert match("a!=1", entity(a=prop("1")))  # different data types are unequal
    assert not match("a~=1", entity(a=prop(1)))
    assert not match("a!~=1", entity(a=prop(1)))  # non-String targets never match patterns


def test_ordering_and_ranges() -> None:
    assert match("temperature>20", entity(temperature=prop(21)))
    assert not match("temperature>20", entity(temperature=prop(20)))
    assert match("temperature>=20", entity(temperature=prop(20)))
    assert match("temperature==10..20", entity(temperature=prop(15)))
    assert match("temperature==10..20", entity(temperature=prop(10.0)))
    assert not match("temperature==10..20", entity(temperature=prop(21)))
    assert match("temperature!=10..20", entity(temperature=prop(9)))
    assert match('name<"b"', entity(name=prop("abc")))
    assert match('name=="a".."c"', entity(name=prop("b")))


def test_temporal_comparison() -> None:
    ent = entity(t=prop(20, observedAt="2020-01-01T00:00:00.000000Z"))
    assert match("t.observedAt>=2020-01-01T00:00:00Z", ent)
    assert match("t.observedAt==2020-01-01T01:00:00+01:00", ent)
    assert match("t.observedAt<2020-01-01T00:00:00.000001Z", ent)
    assert not match("t.observedAt>2020-01-01T00:00:00Z", ent)
    stamped = entity(t=prop({"@type": "DateTime", "@value": "2021-06-01T12:00:00Z"}))
    assert match("t==2021-01-01T00:00:00Z..2022-01-01T00:00:00Z", stamped)
    assert match("t>12:00", entity(t=prop("12:00:01Z")))
    assert match("t>=2020-01-01", entity(t=prop("2020-05-05")))
    assert datetime_key("2020-01-01T00:00:00+01:00") == "2019-12-31T23:00:00.000000Z"
    assert time_key("07:05") == "07:05:00.000000"


def test_relationships_only_compare_for_equality() -> None:
    ent = entity(rel={"type": "Relationship", "object": "urn:ngsi-ld:X:2"})
    assert match("rel==urn:ngsi-ld:X:2", ent)
    assert match('rel=="urn:ngsi-ld:X:2"', ent)
    assert match("rel!=urn:ngsi-ld:X:1", ent)
    assert not match('rel>"urn:ngsi-ld:X:1"', ent)
    assert not match("rel~=X", ent)
    assert not match("rel!~=Y", ent)
    lst = entity(rel={"type": "ListRelationship", "objectList": [{"object": "urn:a"}, "urn:b"]})
    assert match("rel==urn:a", lst)
    assert match("rel==urn:b", lst)
    assert not match("rel!=urn:b", lst)


def test_language_property() -> None:
    lang = {"type": "LanguageProperty", "languageMap": {"fr": "rouge", "en": "red"}}
    listed = {"type": "LanguageProperty", "languageMap": {"fr": ["chat", "rouge"], "en": ["cat"]}}
    assert match('color[en]=="red"', entity(color=lang))
    assert not match('color[fr]=="red"', entity(color=lang))
    assert match('color[*]=="red"', entity(color=lang))
    assert match('color=="red"', entity(color=lang))
    assert match('color[fr]=="rouge"', entity(color=listed))
    assert not match('color[en]!="cat"', entity(color=listed))
    assert match('color!="red"', entity(color=listed))
    assert not match('color[de]!="red"', entity(color=lang))  # no German: no target


def test_other_attribute_types() -> None:
    ent = entity(
        tags={"type": "ListProperty", "valueList": [1, 5, 9]},
        kind={"type": "VocabProperty", "vocab": "http://x/Male"},
        raw={"type": "JsonProperty", "json": {"id": "85a6", "value": "Overstay 60 minutes"}},
    )
    assert match("tags==5", ent)
    assert match("tags>8", ent)
    assert not match("tags!=5", ent)
    assert match('kind=="http://x/Male"', ent)
    assert not match("kind==Male", ent)
    assert match('raw[value]=="Overstay 60 minutes"', ent)
    assert not match('raw=="x"', ent)


def test_compound_values_and_sub_attributes() -> None:
    ent = entity(
        address=prop({"city": "Berlin", "street": "Ulrich Strasse"}),
        sensor=prop(40, rawdata=prop({"airquality": {"particulate": 40, "PM20": 85}})),
    )
    assert match('address[city]=="Berlin"', ent)
    assert match("address[city]", ent)
    assert not match("address[zip]", ent)
    assert not match("address[zip]!=1", ent)
    assert match("sensor.rawdata[airquality.particulate]==40", ent)
    assert match("sensor.rawdata", ent)
    assert not match("sensor.other", ent)
    assert match("sensor.rawdata[airquality.*]==85", ent)


def test_dataset_instances_any_matches() -> None:
    ent = entity(
        speed=[prop(10), prop(90, datasetId="urn:ds:gps", observedAt="2020-01-01T00:00:00Z")]
    )
    assert match("speed>50", ent)
    assert match("speed<50", ent)
    assert match("speed!=10", ent)
    assert match('speed.datasetId=="urn:ds:gps"', ent)
    assert match("speed.observedAt", ent)


def test_patterns() -> None:
    ent = entity(name=prop("Berlin"), tags=prop(["x", "Berlin"]))
    assert match("name~=^Ber", ent)
    assert match("name~=(?i)berlin", ent)
    assert not match("name~=^erl", ent)
    assert match("name~=erl", ent)
    assert match("name!~=^x", ent)
    assert not match("name!~=Ber", ent)
    assert match("tags~=^x$", ent)
    assert not match("tags!~=^x$", ent)


def test_logic() -> None:
    ent = entity(speed=prop(60), brandName=prop("Mercedes"), rpm=prop(1000))
    assert match('((speed>50|rpm>3000);brandName=="Mercedes")', ent)
    assert not match('((speed>70|rpm>3000);brandName=="Mercedes")', ent)
    assert match("speed>70|rpm<3000", ent)
    assert not match(";".join(["speed>50", "rpm>5000"]), ent)


def test_evaluator_ignores_malformed_attributes() -> None:
    weird = Entity("urn:e:2", ["T"], {"a": "not a list", "b": [1, "x", {"type": 5}]})  # type: ignore[dict-item]
    results = {q: q_matches(parse_q(q), weird) for q in ["a", "a==1", "b", "b!=1", "b[c]", "!a"]}
    expected = {"a": False, "a==1": False, "b": True, "b!=1": True, "b[c]": False, "!a": True}
    assert results == expected
