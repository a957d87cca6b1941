"""Compiled JSON-LD term maps: expansion and compaction of terms without a full JSON-LD run.

A `TermMap` is built once per distinct @context (a list of resolved context objects) and
cached by the broker; the hot path only does dictionary look-ups. Compilation follows the
JSON-LD 1.1 context processing algorithm for what names need (term definitions, prefixes,
@vocab, @protected, null contexts), and compaction follows its term selection for node-valued
properties (attribute names) and for @type / @vocab values. pyld is the reference in tests.

NGSI-LD rules on top of JSON-LD (ETSI GS CIM 009, 5.5.7): the core @context is always
applied last, so its terms win over user definitions, and user terms may use the core's
prefixes (e.g. "ngsi-ld:x") even though the core comes after them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from urbis.context.errors import BadRequestData

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CORE_VERSIONS = ("1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9")
CORE_DEFAULT_VERSION = "1.9"
CORE_BASE = "https://uri.etsi.org/ngsi-ld/v1/"
CORE_CONTEXT_URL = f"{CORE_BASE}ngsi-ld-core-context-v{CORE_DEFAULT_VERSION}.jsonld"
KEYWORDS = frozenset({
    "@base", "@container", "@context", "@default", "@direction", "@embed", "@explicit", "@first",
    "@graph", "@id", "@import", "@included", "@index", "@json", "@language", "@list", "@nest",
    "@none", "@omitDefault", "@propagate", "@protected", "@preserve", "@requireAll", "@reverse",
    "@set", "@type", "@value", "@version", "@vocab",
})
_GEN_DELIMS = (":", "/", "?", "#", "[", "]", "@")
_CACHE_LIMIT = 100_000
# Container order of JSON-LD term selection (JSON-LD 1.1 API, IRI Compaction): for a
# node-valued property, and for an IRI in @type or in a @vocab-typed value.
_NAME_CONTAINERS = ("@id", "@id@set", "@type", "@set@type", "@set", "@none", "@index", "@index@set")
_VALUE_CONTAINERS = ("@set", "@none")
_VALID_CONTAINERS = frozenset({"@list", "@set", "@index", "@language", "@graph", "@id", "@type"})


def core_context_urls() -> dict[str, str]:
    """Every URL under which an ETSI core context is published, mapped to its version."""
    urls: dict[str, str] = {}
    for scheme in ("https", "http"):
        base = f"{scheme}://uri.etsi.org/ngsi-ld/"
        urls[f"{base}v1/ngsi-ld-core-context.jsonld"] = CORE_DEFAULT_VERSION
        for version in CORE_VERSIONS:
            urls[f"{base}v1/ngsi-ld-core-context-v{version}.jsonld"] = version
            urls[f"{base}v{version}/ngsi-ld-core-context.jsonld"] = version
    return urls


CORE_URLS = core_context_urls()


@cache
def core_context_document(version: str = CORE_DEFAULT_VERSION) -> dict[str, Any]:
    """The built-in ETSI core context document of a version (never fetched)."""
    name = f"ngsi-ld-core-context-v{version}.jsonld"
    text = resources.files("urbis.data.contexts.core").joinpath(name).read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def is_absolute_iri(value: str) -> bool:
    """True for an absolute IRI (scheme:rest), e.g. `urn:ngsi-ld:X:1`, `https://x/y`."""
    return _ABSOLUTE_IRI.match(value) is not None


_ABSOLUTE_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:\S*\Z")


@dataclass(frozen=True, slots=True)
class TermDef:
    """The parts of one JSON-LD term definition that expansion and term selection need."""

    iri: str | None
    prefix: bool = False
    container: str = "@none"  # sorted container keywords joined, e.g. "@index@set"
    type_mapping: str | None = None
    language: bool = False  # has @language or @direction
    reverse: bool = False
    nest: bool = False
    protected: bool = False

    def same_as(self, other: TermDef) -> bool:
        """Equal except for the protected flag (JSON-LD allows such redefinitions)."""
        return replace(self, protected=False) == replace(other, protected=False)


class TermMap:
    """Term definitions of one resolved @context, compiled for fast expand/compact."""

    __slots__ = ("_compact_cache", "_expand_cache", "_names", "_prefix_items",
                 "_value_cache", "_values", "definitions", "prefixes", "terms", "vocab")

    def __init__(self, definitions: Mapping[str, TermDef], vocab: str | None) -> None:
        self.definitions = dict(definitions)
        self.vocab = vocab
        self.terms: dict[str, str | None] = {t: d.iri for t, d in self.definitions.items()}
        self.prefixes = {t: d.iri for t, d in self.definitions.items()
                         if d.prefix and d.iri and ":" not in t}
        self._prefix_items = sorted(self.prefixes.items())
        self._names = _selection_table(self.definitions, _NAME_CONTAINERS, names=True)
        self._values = _selection_table(self.definitions, _VALUE_CONTAINERS, names=False)
        self._expand_cache: dict[str, str] = {}
        self._compact_cache: dict[str, str] = {}
        self._value_cache: dict[str, str] = {}

    @classmethod
    def compile(cls, contexts: Iterable[Any], *, core: str | None = None) -> TermMap:
        """Compile resolved local contexts in order; `core` (a version) is applied last."""
        compiler = _Compiler()
        for ctx in contexts:
            compiler.apply(ctx)
        if core is not None:
            compiler.apply(core_context_document(core)["@context"], override_protected=True)
        return cls(compiler.finish(), compiler.vocab)

    def expand(self, term: str) -> str:
        """Expand an attribute name or type (vocab-relative) into an absolute IRI.

        A term explicitly mapped to null (JSON-LD "decoupled") is returned unchanged.
        """
        hit = self._expand_cache.get(term)
        if hit is None:
            hit = self._expand(term)
            if len(self._expand_cache) < _CACHE_LIMIT:
                self._expand_cache[term] = hit
        return hit

    def expand_value_iri(self, value: str) -> str:
        """Expand a @vocab-typed value (VocabProperty `vocab`, `objectType`) or a type."""
        return self.expand(value)

    def compact(self, iri: str) -> str:
        """Compact the IRI of an attribute (a node-valued property) into a term."""
        hit = self._compact_cache.get(iri)
        if hit is None:
            hit = self._compact(iri, self._names, for_value=False)
            if len(self._compact_cache) < _CACHE_LIMIT:
                self._compact_cache[iri] = hit
        return hit

    def compact_value_iri(self, iri: str) -> str:
        """Compact an entity type IRI or a @vocab-typed value (VocabProperty) into a term."""
        hit = self._value_cache.get(iri)
        if hit is None:
            hit = self._compact(iri, self._values, for_value=True)
            if len(self._value_cache) < _CACHE_LIMIT:
                self._value_cache[iri] = hit
        return hit

    def _expand(self, term: str) -> str:
        if term in self.terms:
            iri = self.terms[term]
            return term if iri is None else iri
        if term.startswith("@"):
            return term
        colon = term.find(":")
        if colon > 0:
            prefix, suffix = term[:colon], term[colon + 1 :]
            if prefix == "_" or suffix.startswith("//"):
                return term
            base = self.prefixes.get(prefix)
            if base is not None:
                return base + suffix
            if is_absolute_iri(term):
                return term
        return term if self.vocab is None else self.vocab + term

    def _compact(self, iri: str, table: Mapping[str, str], *, for_value: bool) -> str:
        term = table.get(iri)
        if term is not None:
            return term
        vocab = self.vocab
        if vocab and iri.startswith(vocab) and len(iri) > len(vocab):
            suffix = iri[len(vocab) :]
            # Unlike JSON-LD, a suffix that would re-expand as an IRI is not used.
            if suffix not in self.terms and ":" not in suffix and not suffix.startswith("@"):
                return suffix
        return self._curie(iri, for_value) or iri

    def _curie(self, iri: str, for_value: bool) -> str | None:
        best: str | None = None
        for prefix, base in self._prefix_items:
            if base == iri or not iri.startswith(base):
                continue
            rest = iri[len(base) :]
            candidate = f"{prefix}:{rest}"
            if rest.startswith("//"):
                continue  # would read back as an absolute IRI, not as a compact one
            if candidate in self.terms and not (for_value and self.terms[candidate] == iri):
                continue
            if best is None or (len(candidate), candidate) < (len(best), best):
                best = candidate
        return best


def _selection_table(defs: Mapping[str, TermDef], containers: tuple[str, ...], *,
                     names: bool) -> dict[str, str]:
    """IRI -> the term JSON-LD term selection picks for it (containers, type, length, name)."""
    best: dict[str, tuple[int, int, int, str]] = {}
    for term, d in defs.items():
        if d.iri is None or d.reverse or d.language or (names and d.nest):
            continue
        if d.type_mapping not in (None, "@none", "@id") or d.container not in containers:
            continue
        rank = (containers.index(d.container), 0 if d.type_mapping == "@id" else 1,
                len(term), term)
        if d.iri not in best or rank < best[d.iri]:
            best[d.iri] = rank
    return {iri: rank[3] for iri, rank in best.items()}


class _Compiler:
    """The JSON-LD 1.1 context processing algorithm, reduced to what term maps need."""

    def __init__(self) -> None:
        self.defs: dict[str, TermDef] = {}
        self.vocab: str | None = None
        self.pending: dict[str, tuple[str, str]] = {}  # term -> (prefix or "", rest)
        self._protected = False  # the @protected default of the local context
        self._override = False

    def apply(self, ctx: Any, *, override_protected: bool = False) -> None:
        """Process one local context (an object, or null which resets)."""
        if ctx is None:
            if not override_protected and any(d.protected for d in self.defs.values()):
                raise BadRequestData("invalid context nullification: protected terms exist")
            self.defs, self.vocab, self.pending = {}, None, {}
            return
        if not isinstance(ctx, Mapping):
            raise BadRequestData(f"invalid local @context: {_short(ctx)}")
        if "@vocab" in ctx:
            self.vocab = self._vocab(ctx["@vocab"])
        protected = ctx.get("@protected", False)
        if not isinstance(protected, bool):
            raise BadRequestData("@protected must be true or false")
        self._protected, self._override = protected, override_protected
        local = {k: v for k, v in ctx.items() if not k.startswith("@")}
        defined: dict[str, bool] = {}
        for term in local:
            self._define(term, local, defined)

    def finish(self) -> dict[str, TermDef]:
        """Resolve compact IRIs and relative IRIs left for later contexts (the core)."""
        for term, (prefix, rest) in self.pending.items():
            d = self.defs[term]
            base = self.defs.get(prefix) if prefix else None
            if base is not None and base.prefix and base.iri:
                iri = base.iri + rest
            elif prefix:
                continue  # stays an absolute IRI with that scheme, as in JSON-LD
            elif self.vocab is not None:
                iri = self.vocab + rest
            else:
                raise BadRequestData(f"term {term!r} has no IRI (relative and no @vocab)")
            self.defs[term] = replace(d, iri=iri, prefix=d.prefix and iri.endswith(_GEN_DELIMS))
        self.pending = {}
        return self.defs

    def _vocab(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadRequestData("@vocab must be a string or null")
        return self._expand_iri(value, {}, {}, None)

    def _define(self, term: str, local: Mapping[str, Any], defined: dict[str, bool]) -> None:
        if defined.get(term):
            return
        if term in defined:
            raise BadRequestData(f"cyclic IRI mapping for term {term!r}")
        defined[term] = False
        previous = self.defs.pop(term, None)
        pending = self.pending.pop(term, None)
        new = self._build(term, local[term], local, defined)
        if new is None:  # "@reserved" IRI: JSON-LD ignores the definition
            self.defs.update({term: previous} if previous is not None else {})
            self.pending.update({term: pending} if pending is not None else {})
        else:
            if previous is not None and previous.protected and not self._override:
                if not new.same_as(previous):
                    raise BadRequestData(f"protected term redefinition: {term!r}")
                new = replace(new, protected=True)
            self.defs[term] = new
        defined[term] = True

    def _build(self, term: str, value: Any, local: Mapping[str, Any],
               defined: dict[str, bool]) -> TermDef | None:
        protected = self._protected
        if _reserved(value) or (isinstance(value, Mapping) and _reserved(
                value.get("@reverse", value.get("@id")))):
            return None
        if value is None or isinstance(value, str):
            iri = self._term_iri(term, value, local, defined)
            simple_prefix = iri is not None and ":" not in term and "/" not in term and (
                iri.endswith(_GEN_DELIMS) or iri.startswith("_:"))
            return TermDef(iri, prefix=simple_prefix, protected=protected)
        if not isinstance(value, Mapping):
            raise BadRequestData(f"invalid term definition for {term!r}: {_short(value)}")
        reverse = value.get("@reverse")
        if reverse is not None and not isinstance(reverse, str):
            raise BadRequestData(f"@reverse of {term!r} must be a string")
        source = reverse if reverse is not None else value.get("@id", term)
        iri = self._term_iri(term, source, local, defined)
        return TermDef(
            iri,
            prefix=_prefix_flag(term, value),
            container=_container(term, value.get("@container")),
            type_mapping=_type_mapping(term, value.get("@type")),
            language="@language" in value or "@direction" in value,
            reverse=reverse is not None,
            nest="@nest" in value,
            protected=bool(value.get("@protected", protected)),
        )

    def _term_iri(self, term: str, value: Any, local: Mapping[str, Any],
                  defined: dict[str, bool]) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadRequestData(f"@id of {term!r} must be a string")
        if value in KEYWORDS:
            return value
        if value == term:
            return self._self_iri(term, local, defined)
        return self._expand_iri(value, local, defined, term)

    def _self_iri(self, term: str, local: Mapping[str, Any], defined: dict[str, bool]) -> str:
        colon = term.find(":")
        if colon > 0:
            prefix = term[:colon]
            if prefix in local and prefix != term:
                self._define(prefix, local, defined)
            base = self.defs.get(prefix)
            if base is not None and base.iri:
                return base.iri + term[colon + 1 :]
            self.pending[term] = (prefix, term[colon + 1 :])
            return term
        if self.vocab is None:
            self.pending[term] = ("", term)
            return term
        return self.vocab + term

    def _expand_iri(self, value: str, local: Mapping[str, Any], defined: dict[str, bool],
                    term: str | None) -> str:
        if value in local and value != term and not defined.get(value):
            self._define(value, local, defined)
        known = self.defs.get(value)
        if known is not None and known.iri is not None:
            return known.iri
        colon = value.find(":")
        if colon > 0:
            prefix, rest = value[:colon], value[colon + 1 :]
            if prefix == "_" or rest.startswith("//"):
                return value
            if prefix in local and not defined.get(prefix) and prefix != term:
                self._define(prefix, local, defined)
            base = self.defs.get(prefix)
            if base is not None and base.prefix and base.iri:
                return base.iri + rest
            if is_absolute_iri(value):
                if term is not None:
                    self.pending[term] = (prefix, rest)
                return value
        if self.vocab is not None:
            return self.vocab + value
        if term is not None:
            self.pending[term] = ("", value)
        return value


def _reserved(value: Any) -> bool:
    """A string of keyword form that is not a keyword (reserved by JSON-LD, ignored)."""
    return (isinstance(value, str) and value.startswith("@") and value not in KEYWORDS
            and value[1:].isalpha())


def _prefix_flag(term: str, value: Mapping[str, Any]) -> bool:
    flag = value.get("@prefix", False)
    if not isinstance(flag, bool):
        raise BadRequestData(f"@prefix of {term!r} must be true or false")
    return flag


def _container(term: str, value: Any) -> str:
    if value is None:
        return "@none"
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(
            isinstance(i, str) and i in _VALID_CONTAINERS for i in items):
        raise BadRequestData(f"invalid @container of {term!r}: {_short(value)}")
    return "".join(sorted(set(items)))


def _type_mapping(term: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadRequestData(f"invalid @type of {term!r}: {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


@cache
def core_term_map(version: str = CORE_DEFAULT_VERSION) -> TermMap:
    """The term map of the core context alone."""
    return TermMap.compile([], core=version)
