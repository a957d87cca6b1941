"""Compiled JSON-LD term maps: expansion and compaction of terms without a full JSON-LD run.

A `TermMap` is built once per distinct @context (a list of resolved context objects) and
cached by the broker; the hot path only does dictionary look-ups. The full JSON-LD algorithms
(pyld) are used where they are needed and tested to agree with these maps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CORE_VERSIONS = ("1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9")
CORE_DEFAULT_VERSION = "1.9"
CORE_BASE = "https://uri.etsi.org/ngsi-ld/v1/"
CORE_CONTEXT_URL = f"{CORE_BASE}ngsi-ld-core-context-v{CORE_DEFAULT_VERSION}.jsonld"
_GEN_DELIMS = (":", "/", "?", "#", "[", "]", "@")


def core_context_urls() -> dict[str, str]:
    """Every URL under which an ETSI core context is published, mapped to its version."""
    urls = {f"{CORE_BASE}ngsi-ld-core-context.jsonld": CORE_DEFAULT_VERSION}
    for version in CORE_VERSIONS:
        urls[f"{CORE_BASE}ngsi-ld-core-context-v{version}.jsonld"] = version
        urls[f"https://uri.etsi.org/ngsi-ld/v{version}/ngsi-ld-core-context.jsonld"] = version
    return urls


CORE_URLS = core_context_urls()


@lru_cache(maxsize=None)
def core_context_document(version: str = CORE_DEFAULT_VERSION) -> dict[str, Any]:
    """The built-in ETSI core context document of a version (never fetched)."""
    name = f"ngsi-ld-core-context-v{version}.jsonld"
    text = resources.files("urbis.data.contexts.core").joinpath(name).read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def is_absolute_iri(value: str) -> bool:
    """True for an absolute IRI (scheme:rest), e.g. `urn:ngsi-ld:X:1`, `https://x/y`."""
    colon = value.find(":")
    if colon <= 0:
        return False
    scheme = value[:colon]
    return scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)


class TermMap:
    """Term definitions of one resolved @context, compiled for fast expand/compact."""

    __slots__ = ("_compact_cache", "_expand_cache", "prefixes", "reverse", "terms", "vocab")

    def __init__(self, terms: Mapping[str, str], vocab: str | None, prefixes: Iterable[str]):
        self.terms = dict(terms)
        self.vocab = vocab
        self.prefixes = {p: self.terms[p] for p in prefixes if p in self.terms}
        reverse: dict[str, str] = {}
        for term, iri in sorted(self.terms.items(), key=lambda kv: (len(kv[0]), kv[0])):
            reverse.setdefault(iri, term)
        self.reverse = reverse
        self._expand_cache: dict[str, str] = {}
        self._compact_cache: dict[str, str] = {}

    @classmethod
    def compile(cls, contexts: Iterable[Mapping[str, Any]]) -> TermMap:
        """Compile resolved context objects (in order; later ones override) into a map."""
        raw: dict[str, Any] = {}
        vocab: str | None = None
        protected: set[str] = set()
        for ctx in contexts:
            is_protected = bool(ctx.get("@protected"))
            for key, value in ctx.items():
                if key == "@vocab":
                    vocab = value
                elif not key.startswith("@") and key not in protected:
                    raw[key] = value
                    if is_protected:
                        protected.add(key)
        terms: dict[str, str] = {}
        prefixes: list[str] = []
        for term, definition in raw.items():
            iri = definition if isinstance(definition, str) else _definition_id(definition)
            if iri is None:
                continue
            terms[term] = iri
            if isinstance(definition, str) and iri.endswith(_GEN_DELIMS):
                prefixes.append(term)
            elif isinstance(definition, dict) and definition.get("@prefix") is True:
                prefixes.append(term)
        # Resolve compact IRIs in definitions (e.g. "ngsi-ld:Property") against prefixes.
        resolved = {t: _resolve(iri, terms, vocab) for t, iri in terms.items()}
        if vocab is not None:
            vocab = _resolve(vocab, resolved, None)
        return cls(resolved, vocab, prefixes)

    def expand(self, term: str) -> str:
        """Expand a term (attribute name, type name) into an absolute IRI."""
        hit = self._expand_cache.get(term)
        if hit is not None:
            return hit
        iri = self._expand(term)
        if len(self._expand_cache) < 100_000:
            self._expand_cache[term] = iri
        return iri

    def _expand(self, term: str) -> str:
        iri = self.terms.get(term)
        if iri is not None:
            return iri
        if ":" in term:
            prefix, _, suffix = term.partition(":")
            base = self.prefixes.get(prefix)
            if base is not None and not suffix.startswith("//"):
                return base + suffix
            if is_absolute_iri(term):
                return term
        return (self.vocab or "") + term

    def compact(self, iri: str) -> str:
        """Compact an absolute IRI into the shortest term or compact IRI of this context."""
        hit = self._compact_cache.get(iri)
        if hit is not None:
            return hit
        term = self._compact(iri)
        if len(self._compact_cache) < 100_000:
            self._compact_cache[iri] = term
        return term

    def _compact(self, iri: str) -> str:
        term = self.reverse.get(iri)
        if term is not None:
            return term
        if self.vocab and iri.startswith(self.vocab):
            suffix = iri[len(self.vocab) :]
            if suffix and ":" not in suffix and suffix not in self.terms:
                return suffix
        best: str | None = None
        for prefix, base in self.prefixes.items():
            if iri.startswith(base) and len(iri) > len(base):
                candidate = f"{prefix}:{iri[len(base):]}"
                if candidate not in self.terms and (best is None or len(candidate) < len(best)):
                    best = candidate
        return best or iri


def _definition_id(definition: Any) -> str | None:
    if isinstance(definition, dict):
        value = definition.get("@id")
        return value if isinstance(value, str) and not value.startswith("@") else None
    return None


def _resolve(iri: str, terms: Mapping[str, str], vocab: str | None) -> str:
    seen = 0
    while seen < 10 and ":" in iri and not iri.split(":", 1)[1].startswith("//"):
        prefix, _, suffix = iri.partition(":")
        base = terms.get(prefix)
        if base is None or base == iri:
            break
        iri = base + suffix
        seen += 1
    if ":" not in iri and vocab is not None:
        return vocab + iri
    return iri


@lru_cache(maxsize=None)
def core_term_map(version: str = CORE_DEFAULT_VERSION) -> TermMap:
    """The term map of the core context alone."""
    return TermMap.compile([core_context_document(version)["@context"]])
