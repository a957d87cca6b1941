"""TermMap against the JSON-LD reference (pyld, fed local files only), plus its own rules."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyld import jsonld

from urbis.context.errors import BadRequestData
from urbis.context.jsonld import (
    CORE_DEFAULT_VERSION,
    CORE_URLS,
    CORE_VERSIONS,
    DEFAULT_VOCAB,
    NGSI_LD,
    TermMap,
    core_context_urls,
    core_term_map,
    is_absolute_iri,
)

ROOT = Path(__file__).resolve().parents[2]
CORE_DIR = ROOT / "src/urbis/data/contexts/core"
PRELOAD = ROOT / "src/urbis/data/contexts/preload"
MIRROR = Path(__file__).parents[1] / "fixtures" / "contexts-mirror"
CORE = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{CORE_DEFAULT_VERSION}.jsonld"
PROPERTY = NGSI_LD + "Property"
HAS_VALUE = NGSI_LD + "hasValue"
HAS_VOCAB = NGSI_LD + "hasVocab"
DATETIME = NGSI_LD + "DateTime"


def mirror_url(path: Path) -> str:
    """The published URL of a mirrored file (the mirror is laid out as host/path)."""
    return "https://" + path.relative_to(MIRROR).as_posix()


def local_files() -> dict[str, Path]:
    """URL -> local file, for every context the tests may load."""
    files = {url: CORE_DIR / f"ngsi-ld-core-context-v{v}.jsonld" for url, v in CORE_URLS.items()}
    if MIRROR.is_dir():
        for path in MIRROR.rglob("*.jsonld"):
            files.setdefault(mirror_url(path), path)
    return files


@cache
def load_url(url: str) -> Any:
    """The document behind a URL, from local files; anything else fails (no network)."""
    if url == "https://w3id.org/security/data-integrity/v2":
        return {"@context": {}}  # scoped in the core's `ngsildproof`, never needed by names
    path = local_files().get(url)
    if path is None:
        raise AssertionError(f"test tried to load {url}")
    return json.loads(path.read_text("utf-8"))


def loader(url: str, options: Any = None) -> dict[str, Any]:
    """pyld document loader serving local files only."""
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": load_url(url)}


OPTIONS = {"documentLoader": loader}


def flatten(raw: Any) -> list[Any]:
    """Local contexts of a raw @context, URLs loaded recursively, core URLs left out."""
    if isinstance(raw, list):
        return [c for item in raw for c in flatten(item)]
    if isinstance(raw, str):
        return [] if raw in CORE_URLS else flatten(load_url(raw)["@context"])
    return [raw]


def pyld_safe(ctx: dict[str, Any]) -> dict[str, Any]:
    """A copy pyld accepts when the core comes last: full DateTime type IRIs, and without
    the few Smart Data Models terms that JSON-LD 1.1 rejects (IRI-like term names that do not
    expand to their own IRI, IRIs with spaces). TermMap accepts those leniently."""
    out = {}
    for term, value in ctx.items():
        if isinstance(value, dict) and value.get("@type") == "DateTime":
            value = {**value, "@type": DATETIME}
        iri = value if isinstance(value, str) else (value or {}).get("@id", "")
        if not term.startswith("@") and (re.search("[:/]", term) or re.search(r"\s", iri or "")):
            continue
        out[term] = value
    return out


def reference_context(raw: Any) -> list[Any]:
    """The context pyld is given: the user's contexts, then the core (as the broker does)."""
    return [pyld_safe(c) if isinstance(c, dict) else c for c in flatten(raw)] + [CORE]


def user_terms(raw: Any) -> list[str]:
    """Terms pyld can check: defined by the user contexts, not keyword aliases."""
    terms: dict[str, None] = {}
    for ctx in flatten(raw):
        for term, value in pyld_safe(ctx).items():
            if not term.startswith("@") and value not in ("@id", "@type"):
                terms[term] = None
    return list(terms)


EXTRA_TERMS = ["undefinedTerm", "ngsi-ld:someName", "geojson:x", "urn:ngsi-ld:Thing:1",
               "https://example.org/a#b", "location", "name", "observedAt", "Property",
               "unitCode", "_:b0", "zz:top"]


def context_cases() -> list[Any]:
    """Every context the broker must handle, as it would be referenced."""
    cases: list[Any] = [json.loads(p.read_text("utf-8"))["@context"]
                        for p in sorted(PRELOAD.glob("*.jsonld"))]
    if MIRROR.is_dir():
        cases += sorted(mirror_url(p) for p in MIRROR.rglob("*.jsonld")
                        if "core-context" not in p.name)
    return cases


def case_id(raw: Any) -> str:
    """A short test id for a context case."""
    if isinstance(raw, str):
        return raw.rsplit("/", 2)[-2] + "/" + raw.rsplit("/", 1)[-1]
    return next(iter(raw))[:20] + f"-{len(raw)}"


def markers(value: Any) -> list[int]:
    """The numbers of the markers (m<i>m) found anywhere in a value."""
    return [int(i) for i in re.findall(r"m(\d+)m", json.dumps(value))]


def pyld_expansions(raw: Any, terms: list[str]) -> dict[str, str | None]:
    """term -> the IRI pyld expands it to (None when pyld drops it)."""
    doc: dict[str, Any] = {"@context": reference_context(raw), "@id": "urn:test:1"}
    for i, term in enumerate(terms):
        doc[term] = f"m{i}m"
    expanded = jsonld.expand(doc, OPTIONS)[0]
    out: dict[str, str | None] = {t: None for t in terms}
    for key, value in expanded.items():
        for i in markers(value):
            out[terms[i]] = key
    return out


def pyld_name_compactions(raw: Any, iris: list[str]) -> dict[str, str]:
    """IRI -> the key pyld compacts a Property of that IRI to."""
    node: dict[str, Any] = {"@id": "urn:test:1"}
    for i, iri in enumerate(iris):
        node[iri] = [{"@type": [PROPERTY], HAS_VALUE: [{"@value": f"m{i}m"}]}]
    compacted = jsonld.compact([node], reference_context(raw), OPTIONS)
    return {iris[i]: key for key, value in compacted.items() for i in markers(value)}


def pyld_value_compactions(raw: Any, iris: list[str]) -> tuple[list[str], list[str]]:
    """How pyld compacts IRIs as @type values and as @vocab-typed (VocabProperty) values."""
    node = {"@id": "urn:test:1", "@type": iris, HAS_VOCAB: [{"@id": i} for i in iris]}
    compacted = jsonld.compact([node], reference_context(raw), OPTIONS)
    types, vocab = compacted["type"], compacted["vocab"]
    return ([types] if isinstance(types, str) else types,
            [vocab] if isinstance(vocab, str) else vocab)


def compiled(raw: Any) -> TermMap:
    """The TermMap of a raw @context, resolved from local files, core applied last."""
    return TermMap.compile(flatten(raw), core=CORE_DEFAULT_VERSION)


CASES = context_cases()


@pytest.mark.parametrize("raw", CASES, ids=[case_id(c) for c in CASES])
def test_expansion_agrees_with_pyld(raw: Any) -> None:
    tm = compiled(raw)
    terms = user_terms(raw) + EXTRA_TERMS
    expected = pyld_expansions(raw, terms)
    mismatches = {t: (tm.expand(t), expected[t]) for t in terms if tm.expand(t) != expected[t]}
    assert not mismatches


@pytest.mark.parametrize("raw", CASES, ids=[case_id(c) for c in CASES])
def test_name_compaction_agrees_with_pyld(raw: Any) -> None:
    tm = compiled(raw)
    iris = sorted({tm.expand(t) for t in user_terms(raw) + EXTRA_TERMS} - {"_:b0"})
    expected = pyld_name_compactions(raw, iris)
    assert {i: tm.compact(i) for i in iris} == expected


@pytest.mark.parametrize("raw", CASES, ids=[case_id(c) for c in CASES])
def test_type_and_vocab_compaction_agree_with_pyld(raw: Any) -> None:
    tm = compiled(raw)
    iris = sorted({tm.expand(t) for t in user_terms(raw) + EXTRA_TERMS} - {"_:b0"})
    types, vocab = pyld_value_compactions(raw, iris)
    assert [tm.compact_value_iri(i) for i in iris] == types
    assert [tm.compact_value_iri(i) for i in iris] == vocab


@pytest.mark.parametrize("version", CORE_VERSIONS)
def test_each_core_version_agrees_with_pyld(version: str) -> None:
    url = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld"
    tm = core_term_map(version)
    core = load_url(url)["@context"]
    terms = [t for t, v in core.items() if not t.startswith("@") and v not in ("@id", "@type")]
    terms += [t for t in EXTRA_TERMS if t not in terms]
    doc: dict[str, Any] = {"@context": url, "@id": "urn:test:1"}
    doc.update({t: f"m{i}m" for i, t in enumerate(terms)})
    expanded = jsonld.expand(doc, OPTIONS)[0]
    found = {terms[i]: key for key, value in expanded.items() for i in markers(value)}
    assert found == {t: tm.expand(t) for t in terms}


SMALL = {"ex": "http://example.org/", "plain": "http://example.org/x",
         "typedId": {"@id": "http://example.org/x", "@type": "@id"},
         "dt": {"@id": "http://example.org/dt", "@type": DATETIME},
         "vocabTyped": {"@id": "http://example.org/v", "@type": "@vocab"},
         "aSet": {"@id": "http://example.org/s", "@container": "@set"},
         "aList": {"@id": "http://example.org/l", "@container": "@list"},
         "indexed": {"@id": "http://example.org/i", "@container": "@index"},
         "byId": {"@id": "http://example.org/m", "@container": "@id"},
         "lang": {"@id": "http://example.org/g", "@language": "en"},
         "pfx": {"@id": "http://example.org/p/", "@prefix": True},
         "rev": {"@reverse": "http://example.org/r"}}


def test_term_selection_follows_json_ld_on_containers_and_types() -> None:
    tm = TermMap.compile([SMALL], core=CORE_DEFAULT_VERSION)
    iris = sorted({d.iri for d in tm.definitions.values() if d.iri and "example" in d.iri})
    expected = pyld_name_compactions([SMALL], iris)
    assert {i: tm.compact(i) for i in iris} == expected
    types, vocab = pyld_value_compactions([SMALL], iris)
    assert [tm.compact_value_iri(i) for i in iris] == types == vocab
    assert tm.compact("http://example.org/x") == "typedId"  # @type @id is preferred
    assert tm.compact("http://example.org/dt") == "ex:dt"  # typed literals never name a node
    assert tm.compact("http://example.org/i") == "indexed"
    assert tm.compact_value_iri("http://example.org/i") == "ex:i"


def test_vocab_suffixes_that_would_not_read_back_are_not_used() -> None:
    # A deliberate difference from JSON-LD, which would compact this IRI to "a:b", a term
    # that then expands to the IRI "a:b": the broker must read back what it writes.
    iri = DEFAULT_VOCAB + "a:b"
    assert pyld_name_compactions([], [iri]) == {iri: "a:b"}
    tm = core_term_map()
    assert tm.compact(iri) == "ngsi-ld:default-context/a:b"
    assert tm.expand(tm.compact(iri)) == iri
    assert tm.expand_value_iri(tm.compact_value_iri(iri)) == iri


def test_core_is_applied_last_and_its_terms_win() -> None:
    user = {"location": "http://example.org/myLocation", "observedAt": "http://example.org/o",
            "@vocab": "http://example.org/vocab/"}
    tm = TermMap.compile([user], core=CORE_DEFAULT_VERSION)
    assert tm.expand("location") == NGSI_LD + "location"
    assert tm.expand("observedAt") == NGSI_LD + "observedAt"
    assert tm.vocab == DEFAULT_VOCAB  # as in JSON-LD: the core's @vocab comes after


def test_user_terms_may_use_core_prefixes() -> None:
    tm = TermMap.compile([{"speed": "ngsi-ld:speed", "gj": "geojson:x"}], core="1.9")
    assert tm.expand("speed") == NGSI_LD + "speed"
    assert tm.expand("gj") == "https://purl.org/geojson/vocab#x"
    assert tm.compact(NGSI_LD + "speed") == "speed"


def test_terms_of_iri_form_are_taken_as_defined() -> None:
    ctx = json.loads((PRELOAD / "dataModel.IssueTracking.context.jsonld").read_text())
    tm = compiled(ctx["@context"])
    iri = "https://smartdatamodels.org/dataModel.IssueTracking/open311:metadata"
    assert tm.expand("open311:metadata") == iri
    assert tm.compact(iri) == "open311:metadata"


def test_keyword_aliases_and_null_terms() -> None:
    tm = TermMap.compile([{"gone": None, "alsoGone": {"@id": None}}], core="1.9")
    assert tm.expand("type") == "@type"
    assert tm.expand("id") == "@id"
    assert tm.compact("@type") == "type"
    assert tm.compact_value_iri("@id") == "id"
    assert tm.expand("gone") == "gone"  # decoupled from @vocab, left as it is
    assert tm.expand("alsoGone") == "alsoGone"
    assert tm.compact(DEFAULT_VOCAB + "gone") == "ngsi-ld:default-context/gone"


def test_protected_terms() -> None:
    first = {"@protected": True, "speed": "http://example.org/speed"}
    TermMap.compile([first, {"speed": "http://example.org/speed"}])  # identical: allowed
    with pytest.raises(BadRequestData, match="protected"):
        TermMap.compile([first, {"speed": "http://other.org/speed"}])
    with pytest.raises(BadRequestData, match="nullification"):
        TermMap.compile([first, None])
    # the core, applied last, wins over a protected user term without an error
    tm = TermMap.compile([{"@protected": True, "location": "http://x.org/l"}], core="1.9")
    assert tm.expand("location") == NGSI_LD + "location"


def test_null_context_resets_user_terms() -> None:
    tm = TermMap.compile([{"speed": "http://example.org/speed"}, None], core="1.9")
    assert tm.expand("speed") == DEFAULT_VOCAB + "speed"


def test_definitions_resolve_in_any_order_within_a_context() -> None:
    tm = TermMap.compile([{"a": "ex:a", "ex": "http://example.org/"}], core="1.9")
    assert tm.expand("a") == "http://example.org/a"
    assert tm.expand("ex:b") == "http://example.org/b"


@pytest.mark.parametrize("ctx", [
    {"a": 5},
    {"a": {"@id": 7}},
    {"a": {"@id": "http://x/a", "@container": "@bogus"}},
    {"a": {"@id": "http://x/a", "@type": 3}},
    {"a": {"@id": "http://x/a", "@prefix": "yes"}},
    {"a": "b:x", "b": "a:y"},
    {"@vocab": 3},
    {"@protected": "yes"},
], ids=lambda c: json.dumps(c)[:40])
def test_invalid_definitions_are_bad_request_data(ctx: dict[str, Any]) -> None:
    with pytest.raises(BadRequestData):
        TermMap.compile([ctx], core="1.9")


def test_non_object_local_context_is_bad_request_data() -> None:
    with pytest.raises(BadRequestData):
        TermMap.compile([42])


def test_core_context_urls_cover_every_spelling() -> None:
    urls = core_context_urls()
    assert urls["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"] == "1.9"
    assert urls["http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld"] == "1.3"
    assert urls["https://uri.etsi.org/ngsi-ld/v1.8/ngsi-ld-core-context.jsonld"] == "1.8"
    assert set(urls.values()) == set(CORE_VERSIONS)


def test_absolute_iris() -> None:
    assert is_absolute_iri("urn:ngsi-ld:Car:1")
    assert is_absolute_iri("https://x/y")
    assert not is_absolute_iri("speed")
    assert not is_absolute_iri(":x")
    assert not is_absolute_iri("1a:b")
    assert not is_absolute_iri("http://x/a b")


# ---- properties ----

PROPERTY_CASES = [c for c in CASES if isinstance(c, str) and "compound" in c][:1] + [
    json.loads((PRELOAD / n).read_text())["@context"]
    for n in ("dataModel.Parking.context.jsonld", "data-models.legacy-global.context.jsonld")]
TERM_MAPS = [compiled(c) for c in PROPERTY_CASES]
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True)
SAFE = st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=/?#@:-]{0,30}", fullmatch=True)


@st.composite
def absolute_iris(draw: st.DrawFn) -> str:
    """Absolute IRIs, many sharing a prefix or the @vocab of the term maps under test."""
    tm = draw(st.sampled_from(TERM_MAPS))
    bases = ["http://example.org/", "https://", "urn:ngsi-ld:", tm.vocab or DEFAULT_VOCAB,
             *list(tm.prefixes.values())[:20], *[i for i in tm.terms.values() if i][:50]]
    return draw(st.sampled_from(bases)) + draw(SAFE)


@given(iri=absolute_iris(), which=st.integers(0, len(TERM_MAPS) - 1))
@settings(max_examples=400, deadline=None)
def test_expand_of_compact_is_identity_for_absolute_iris(iri: str, which: int) -> None:
    tm = TERM_MAPS[which]
    assume(is_absolute_iri(iri) and iri not in tm.terms)
    assert tm.expand(tm.compact(iri)) == iri
    assert tm.expand_value_iri(tm.compact_value_iri(iri)) == iri


@given(term=NAME, which=st.integers(0, len(TERM_MAPS) - 1))
@settings(max_examples=300, deadline=None)
def test_undefined_terms_round_trip(term: str, which: int) -> None:
    tm = TERM_MAPS[which]
    assume(term not in tm.terms and tm.vocab is not None)
    assume(tm.vocab + term not in tm.terms.values())
    assert tm.compact(tm.expand(term)) == term
    assert tm.compact_value_iri(tm.expand_value_iri(term)) == term


def plain_terms(tm: TermMap) -> list[str]:
    """Terms that are the only name of their IRI, with no type, container or language."""
    counts = Counter(tm.terms.values())
    return sorted(t for t, d in tm.definitions.items()
                  if d.iri and not d.iri.startswith("@") and d.type_mapping is None
                  and d.container == "@none" and not d.language and not d.reverse
                  and counts[d.iri] == 1)


PLAIN_TERMS = [plain_terms(tm) for tm in TERM_MAPS]


@given(data=st.data(), which=st.integers(0, len(TERM_MAPS) - 1))
@settings(max_examples=300, deadline=None)
def test_defined_terms_round_trip(data: st.DataObject, which: int) -> None:
    tm = TERM_MAPS[which]
    term = data.draw(st.sampled_from(PLAIN_TERMS[which]))
    assert tm.compact(tm.expand(term)) == term
    assert tm.compact_value_iri(tm.expand(term)) == term
    assert tm.expand(tm.compact(tm.expand(term))) == tm.expand(term)
