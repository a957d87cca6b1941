"""JSON-LD @context resolution, caching and management (ETSI GS CIM 009, 5.5.7 and 5.13).

`term_map(raw)` is on every request's path: the compiled TermMap of a distinct raw @context
is kept in an LRU, so a context is fetched, parsed and compiled once. Core context URLs are
built in and never fetched; Hosted and ImplicitlyCreated contexts and cached copies of remote
ones live in the ContextStore; anything else is fetched once over HTTP and stored as Cached.
When another worker changes a stored context, the store's invalidation channel calls
`invalidate`, which drops what was derived from it here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from importlib import resources
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from urbis.context.actor import Actor
from urbis.context.errors import (
    BadRequestData,
    InvalidRequest,
    LdContextNotAvailable,
    OperationNotSupported,
    ResourceNotFound,
)
from urbis.context.jsonld import (
    CORE_CONTEXT_URL,
    CORE_DEFAULT_VERSION,
    CORE_URLS,
    TermMap,
    core_context_document,
    core_term_map,
    is_absolute_iri,
)
from urbis.context.model import now_iso
from urbis.security.policy import CONTEXTS_READ, CONTEXTS_WRITE, NONE, internal, requires
from urbis.storage.base import TOPIC_ALL, TOPIC_CONTEXTS, ContextStore, StoredContext

log = logging.getLogger(__name__)

HOSTED, CACHED, IMPLICIT = "hosted", "cached", "implicitlycreated"
KIND_NAMES = {HOSTED: "Hosted", CACHED: "Cached", IMPLICIT: "ImplicitlyCreated"}
ACCEPT = "application/ld+json, application/json"
MAX_DEPTH = 8  # nesting of remote @contexts referring to others
MAX_REMOTE = 32  # remote @contexts loaded for one raw @context
FLUSH_SECONDS = 30.0  # how often usage counters are written to the store
_SDM_URLS = ("https://raw.githubusercontent.com/smart-data-models/{}/master/context.jsonld",
             "https://smart-data-models.github.io/{}/context.jsonld")
_LEGACY_SDM = {"data-models.legacy-global.context.jsonld": "https://smartdatamodels.org/context.jsonld"}

_Loaded = tuple[Any, str | None]  # (@context value, id of the stored context it came from)


class ContextService:
    """Resolves @contexts into TermMaps and manages stored ones (/jsonldContexts)."""

    def __init__(self, store: ContextStore, *, fetch_timeout: float, max_bytes: int,
                 cache_size: int, base_url: str) -> None:
        self.store = store
        self.fetch_timeout = fetch_timeout
        self.max_bytes = max_bytes
        self.cache_size = max(1, cache_size)
        self.base_url = base_url.rstrip("/")
        self._maps: OrderedDict[str, tuple[TermMap, tuple[str, ...]]] = OrderedDict()
        self._docs: OrderedDict[str, _Loaded] = OrderedDict()
        self._seeded: dict[str, Any] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._usage: dict[str, tuple[int, str]] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # usage flushes never resurrect a deleted context
        self._flushed_at = time.monotonic()
        self._started = now_iso()
        self._generation = 0  # bumped by every invalidation: a slower load must not cache

    def hosted_url(self, context_id: str) -> str:
        """The URL a Hosted or ImplicitlyCreated context is served at."""
        return f"{self.base_url}/ngsi-ld/v1/jsonldContexts/{context_id}"

    # ---- resolution (the hot path) ----

    @internal
    async def term_map(self, raw: Any | None) -> TermMap:
        """The compiled term map of a raw @context (a URL, an object or an array of both)."""
        if raw is None:
            return core_term_map()
        key = _canonical(raw)
        hit = self._maps.get(key)
        if hit is None:
            generation = self._generation
            contexts, used = await self.resolve(raw)
            hit = (TermMap.compile(contexts, core=CORE_DEFAULT_VERSION), tuple(used))
            if generation == self._generation:
                self._maps[key] = hit
            while len(self._maps) > self.cache_size:
                self._maps.popitem(last=False)
        else:
            self._maps.move_to_end(key)
        self._record_use(hit[1])
        return hit[0]

    @internal
    async def resolve(self, raw: Any) -> tuple[list[Any], list[str]]:
        """The local contexts of a raw @context in order (core URLs left out, for the core
        is applied last), and the ids of the stored contexts it used."""
        out: list[Any] = []
        used: list[str] = []
        await self._collect(raw, out, used, (), [MAX_REMOTE], None)
        return out, used

    async def _collect(self, value: Any, out: list[Any], used: list[str],
                       chain: tuple[str, ...], budget: list[int], base: str | None) -> None:
        if isinstance(value, list):
            for item in value:
                if isinstance(item, list):
                    raise BadRequestData("an @context array must not contain arrays")
                await self._collect(item, out, used, chain, budget, base)
        elif value is None or isinstance(value, dict):
            out.append(await self._imported(value, used, chain, budget, base))
        elif isinstance(value, str):
            url = _absolute(value, base)
            if url in CORE_URLS or url in chain:
                return  # the core comes last; JSON-LD 1.1 skips a context already in use
            if len(chain) >= MAX_DEPTH or budget[0] <= 0:
                raise BadRequestData(f"@context nests too deep or too wide at {url}")
            budget[0] -= 1
            ctx, ident = await self._load(url)
            if ident is not None:
                used.append(ident)
            await self._collect(ctx, out, used, (*chain, url), budget, url)
        else:
            raise BadRequestData(f"invalid @context member: {value!r:.80}")

    async def _imported(self, ctx: dict[str, Any] | None, used: list[str],
                        chain: tuple[str, ...], budget: list[int], base: str | None) -> Any:
        """A local context with its @import (JSON-LD 1.1) merged under its own terms."""
        if ctx is None or "@import" not in ctx:
            return ctx
        url = ctx["@import"]
        if not isinstance(url, str):
            raise BadRequestData("@import must be a URL string")
        url = _absolute(url, base)
        imported: Any = core_context_document()["@context"] if url in CORE_URLS else None
        if imported is None:
            imported, ident = await self._load(url)
            if ident is not None:
                used.append(ident)
        if not isinstance(imported, dict):
            raise BadRequestData(f"@import {url} is not a single context object")
        return {**imported, **{k: v for k, v in ctx.items() if k != "@import"}}

    async def _load(self, url: str) -> _Loaded:
        """The @context value behind a URL: memo, store, preloaded copy, or a fetch."""
        loaded = self._docs.get(url)
        if loaded is not None:
            self._docs.move_to_end(url)
            return loaded
        generation = self._generation
        stored = await self.store.find_context_by_url(url)
        if stored is None:
            stored = await self._shared_fetch(url)
        loaded = (context_of(stored.body, url), stored.id)
        if generation == self._generation:
            self._docs[url] = loaded
        while len(self._docs) > self.cache_size:
            self._docs.popitem(last=False)
        return loaded

    async def _shared_fetch(self, url: str) -> StoredContext:
        """Fetch and store a remote context; concurrent callers share one fetch."""
        future = self._inflight.get(url)
        if future is None:
            future = asyncio.ensure_future(self._fetch_and_store(url))
            self._inflight[url] = future
            future.add_done_callback(lambda f: self._fetch_done(url, f))
        result: StoredContext = await asyncio.shield(future)
        return result

    def _fetch_done(self, url: str, future: asyncio.Future[Any]) -> None:
        self._inflight.pop(url, None)
        if not future.cancelled():
            future.exception()  # retrieved here so an unwaited failure is not logged

    async def _fetch_and_store(self, url: str) -> StoredContext:
        body = self._seeded[url] if url in self._seeded else await self.fetch(url)
        context_of(body, url)
        stored = StoredContext(id=url, url=url, kind=CACHED, body=body, created_at=now_iso())
        await self.store.put_context(stored)
        return stored

    @internal
    async def fetch(self, url: str) -> Any:
        """GET a remote JSON-LD document (http/https only, time and size limited)."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise LdContextNotAvailable(f"@context {url} cannot be retrieved: not an http(s) URL")
        try:
            async with asyncio.timeout(self.fetch_timeout):
                data = await self._download(url)
        except TimeoutError:
            raise LdContextNotAvailable(
                f"@context {url} not retrieved within {self.fetch_timeout:g} s") from None
        except httpx.HTTPError as err:
            raise LdContextNotAvailable(
                f"@context {url} not retrieved: {type(err).__name__}: {err}") from None
        try:
            return json.loads(data)
        except ValueError:
            raise LdContextNotAvailable(f"@context {url} is not a JSON document") from None

    async def _download(self, url: str) -> bytes:
        async with httpx.AsyncClient(timeout=self.fetch_timeout, follow_redirects=True,
                                     max_redirects=5) as client, \
                client.stream("GET", url, headers={"Accept": ACCEPT}) as response:
            if not response.is_success:
                raise LdContextNotAvailable(
                    f"@context {url} not retrieved: HTTP {response.status_code}")
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > self.max_bytes:
                    raise LdContextNotAvailable(
                        f"@context {url} is larger than {self.max_bytes} bytes")
            return bytes(data)

    # ---- seeding ----

    def preload(self, url: str, body: Any) -> None:
        """Seed the copy of a remote context, used instead of fetching it the first time."""
        context_of(body, url)
        self._seeded[url] = body

    def preload_bundled(self) -> int:
        """Seed the bundled Smart Data Models contexts under their published URLs."""
        folder = resources.files("urbis.data.contexts.preload")
        count = 0
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            urls = _bundled_urls(item.name)
            if urls:
                body = json.loads(item.read_text("utf-8"))
                for url in urls:
                    self.preload(url, body)
                    count += 1
        return count

    # ---- management (5.13) ----

    @requires(CONTEXTS_WRITE)
    async def add_hosted(self, actor: Actor, body: Any) -> StoredContext:
        """Add @context (5.13.2): store the body's @context as a new Hosted context."""
        return await self._add(body, HOSTED)

    @internal
    async def add_implicit(self, context: Any) -> StoredContext:
        """Store an @context created by the broker itself (e.g. for a subscription)."""
        return await self._add({"@context": context}, IMPLICIT)

    async def _add(self, body: Any, kind: str) -> StoredContext:
        if not isinstance(body, dict) or "@context" not in body:
            raise InvalidRequest("the payload must be a JSON object with an @context member")
        context = body["@context"]
        validate_context(context)
        context_id = uuid.uuid4().hex
        stored = StoredContext(id=context_id, url=self.hosted_url(context_id), kind=kind,
                               body={"@context": context}, created_at=now_iso())
        await self.store.put_context(stored)
        return stored

    @requires(CONTEXTS_READ)
    async def list(self, actor: Actor, kind: str | None = None, details: bool = False
                   ) -> list[Any]:
        """List @contexts (5.13.3): URLs, or metadata objects when `details`."""
        wanted = parse_kind(kind)
        found = [] if wanted not in (None, CACHED) else [self._core()]
        found += await self.store.list_contexts(wanted)
        return [self.metadata(c) if details else c.url for c in found]

    @internal
    async def get(self, context_id: str) -> StoredContext:
        """A context by local id or URL (the core context included); ResourceNotFound."""
        found = await self._find(context_id)
        if found is None:
            raise ResourceNotFound(f"no @context {context_id}")
        return found

    @requires(NONE)  # anyone dereferences a hosted @context URL (clients, receivers, brokers)
    async def serve(self, actor: Actor, context_id: str, details: bool = False) -> Any:
        """Serve @context (5.13.4): its content, or its metadata when `details`."""
        ctx = await self.get(context_id)
        if details:
            return self.metadata(ctx)
        if ctx.kind == CACHED:
            raise OperationNotSupported(
                f"@context {ctx.url} is a Cached copy, which the broker does not serve")
        return ctx.body

    @requires(CONTEXTS_WRITE)
    async def delete(self, actor: Actor, context_id: str, reload: bool = False) -> None:
        """Delete and Reload @context (5.13.5)."""
        ctx = await self._find(context_id)
        if reload:
            await self._reload(ctx, context_id)
            return
        if ctx is None:
            raise ResourceNotFound(f"no @context {context_id}")
        if ctx.url in CORE_URLS:
            raise BadRequestData("the core @context cannot be deleted")
        async with self._writing:
            self._usage.pop(ctx.id, None)
            if not await self.store.delete_context(ctx.id):
                raise ResourceNotFound(f"no @context {context_id}")
        self._forget(ctx.url)

    async def _reload(self, ctx: StoredContext | None, context_id: str) -> None:
        if ctx is None or ctx.kind != CACHED:
            raise BadRequestData(f"only a Cached @context can be reloaded, not {context_id}")
        if ctx.url in CORE_URLS:
            return  # built in: the broker's own copy is authoritative, never fetched
        body = await self.fetch(ctx.url)
        context_of(body, ctx.url)
        async with self._writing:
            current = await self.store.get_context(ctx.id) or ctx
            current.body, current.created_at = body, now_iso()
            await self.store.put_context(current)
        self._forget(ctx.url)

    def metadata(self, ctx: StoredContext) -> dict[str, Any]:
        """The metadata object of a context (5.13.3.5)."""
        pending, last = self._usage.get(ctx.id, (0, ctx.last_used_at))
        meta: dict[str, Any] = {"URL": ctx.url, "localId": ctx.id, "kind": KIND_NAMES[ctx.kind],
                                "createdAt": ctx.created_at, "numberOfHits": ctx.hits + pending}
        if last:
            meta["lastUsage"] = last
        return meta

    async def _find(self, context_id: str) -> StoredContext | None:
        if context_id in CORE_URLS:
            return self._core(context_id)
        found = await self.store.get_context(context_id)
        return found if found is not None else await self.store.find_context_by_url(context_id)

    def _core(self, url: str = CORE_CONTEXT_URL) -> StoredContext:
        body = core_context_document(CORE_URLS[url])
        return StoredContext(id=url, url=url, kind=CACHED, body=body, created_at=self._started)

    def _forget(self, url: str | None) -> None:
        """Drop what was derived from a context that changed (compiled maps, memo)."""
        self._generation += 1
        if url is None:
            self._docs.clear()
        else:
            self._docs.pop(url, None)
        self._maps.clear()

    def invalidate(self, topic: str, key: str | None) -> None:
        """A stored context changed in some worker (key: its URL; None: any of them)."""
        if topic in (TOPIC_ALL, TOPIC_CONTEXTS):
            self._forget(None if topic == TOPIC_ALL else key)

    # ---- usage counters ----

    def _record_use(self, ids: Iterable[str]) -> None:
        now: str | None = None
        for context_id in ids:
            now = now or now_iso()
            hits, _ = self._usage.get(context_id, (0, now))
            self._usage[context_id] = (hits + 1, now)
        if now and self._flush_task is None and \
                time.monotonic() - self._flushed_at > FLUSH_SECONDS:
            self._flush_task = asyncio.create_task(self._background_flush())

    async def _background_flush(self) -> None:
        try:
            await self.flush_usage()
        except Exception:
            log.exception("could not store @context usage counters")
        finally:
            self._flush_task = None

    @internal
    async def flush_usage(self) -> None:
        """Add the hits counted in memory to the stored contexts."""
        async with self._writing:
            usage, self._usage = self._usage, {}
            self._flushed_at = time.monotonic()
            for context_id, (hits, last) in usage.items():
                await self.store.record_usage(context_id, hits, last)

    @internal
    async def close(self) -> None:
        """Store the pending usage counters."""
        if self._flush_task is not None:
            await self._flush_task
        await self.flush_usage()


def context_of(body: Any, url: str) -> Any:
    """The @context value of a JSON-LD document; LdContextNotAvailable if it has none."""
    if not isinstance(body, dict) or "@context" not in body:
        raise LdContextNotAvailable(f"{url} is not a JSON-LD context document (no @context)")
    context = body["@context"]
    if not isinstance(context, dict | list | str):
        raise LdContextNotAvailable(f"{url} has an invalid @context: {context!r:.80}")
    return context


def validate_context(context: Any) -> None:
    """Reject an @context that is not valid JSON-LD (BadRequestData); URLs are not fetched."""
    items = context if isinstance(context, list) else [context]
    for item in items:
        if isinstance(item, str):
            if not is_absolute_iri(item):
                raise BadRequestData(f"@context URL {item!r:.100} is not absolute")
        elif not (item is None or isinstance(item, dict)):
            raise BadRequestData(f"invalid @context member: {item!r:.80}")
    local = [i for i in items if i is None or (isinstance(i, dict) and "@import" not in i)]
    TermMap.compile(local, core=CORE_DEFAULT_VERSION)


def parse_kind(kind: str | None) -> str | None:
    """A `kind` query value (Hosted, Cached, ImplicitlyCreated) as stored; BadRequestData."""
    if kind is None:
        return None
    value = kind.lower()
    if value not in KIND_NAMES:
        raise BadRequestData(f"kind must be Hosted, Cached or ImplicitlyCreated, not {kind!r:.40}")
    return value


def _bundled_urls(name: str) -> tuple[str, ...]:
    if name in _LEGACY_SDM:
        return (_LEGACY_SDM[name],)
    if name.startswith("dataModel.") and name.endswith(".context.jsonld"):
        model = name.removesuffix(".context.jsonld")
        return tuple(pattern.format(model) for pattern in _SDM_URLS)
    return ()


def _absolute(url: str, base: str | None) -> str:
    if base is not None and not is_absolute_iri(url):
        url = urljoin(base, url)
    if not is_absolute_iri(url):
        raise BadRequestData(f"@context URL {url!r:.100} is not absolute")
    return url


def _canonical(raw: Any) -> str:
    try:
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        raise BadRequestData("the @context is not JSON") from None
