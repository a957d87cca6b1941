"""The core of distributed operations: which sources to ask, and asking them safely.

`sources` is what every entity operation asks first: the live registrations serving it
(`RegistrationService.matching`, answered from a per-tenant cache without I/O when there are
none), minus those whose source the request has been through already (the `Via` chain,
clause 6.3.18); a request that has been through this broker, or that says `local=true`, is
answered locally. `ask` sends one request to a source: with the registration's @context
(`contextSourceInfo` `jsonldContext` first), its tenant, its `contextSourceInfo` pairs as
headers and `Via` with this broker's alias; within its timeout (`management.timeout` ms,
else the broker's setting); never while the source cools down after a failure. A source that
cannot be reached, answers an error or something unusable becomes a `SourceWarning`, never
an exception: the operation goes on with the others. Outcomes are counted (SourceHealth).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson

from urbis.broker.contexts import ContextService
from urbis.broker.federation_client import (
    SourceAnswer,
    SourceClients,
    SourceRequest,
    SourceUnreachable,
)
from urbis.broker.federation_tally import SourceHealth
from urbis.broker.registrations import RegistrationService
from urbis.context.actor import current_call
from urbis.context.errors import NgsiError
from urbis.context.federation import PERSISTENT, TRANSIENT, Hop, SourceWarning, source_names
from urbis.context.jsonld import TermMap
from urbis.context.registration import Registration
from urbis.security.policy import internal

API_ROOT = "/ngsi-ld/v1"
JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
CONTEXT_KEY = "jsonldContext"  # a contextSourceInfo key: the @context to use with the source
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_OWN_HEADERS = frozenset({"via", "link", "ngsild-tenant", "content-type", "accept",
                          "content-length", "host"})


class MalformedAnswer(ValueError):
    """A source answered 2xx with something that is not what the operation expects."""


@dataclass(frozen=True, slots=True)
class SourceCall:
    """A request to make at a source: method, path under /ngsi-ld/v1, parameters, body."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # JSON-serialisable
    context: tuple[str, TermMap] | None = None  # another @context (URL, term map) to use


@dataclass(slots=True)
class Reply:
    """One source's contribution: the decoded answer, or why there is none."""

    reg: Registration
    value: Any = None
    status: int | None = None  # None: the source was not reached
    warning: SourceWarning | None = None
    problem: dict[str, Any] | None = None  # the problem details the source answered

    @property
    def ok(self) -> bool:
        """Whether the source answered usefully (a 404 where allowed counts)."""
        return self.warning is None


T = TypeVar("T")


@dataclass(slots=True)
class Federated(Generic[T]):
    """An answer put together from this broker and its sources, and who did not answer."""

    value: T
    warnings: list[SourceWarning] = field(default_factory=list)


Builder = Callable[[TermMap], SourceCall]
Decoder = Callable[[SourceAnswer, TermMap], Any]


def endpoint_url(endpoint: str, path: str) -> str:
    """The URL of an API path at a source whose endpoint may or may not end in /ngsi-ld/v1."""
    base = endpoint.rstrip("/")
    if not base.endswith(API_ROOT):
        base += API_ROOT
    return base + path


def entity_path(entity_id: str, *rest: str) -> str:
    """/entities/{id}[/...] with the id (and the rest) percent-encoded."""
    parts = [quote(entity_id, safe=":"), *(quote(r, safe=":") for r in rest)]
    return "/entities/" + "/".join(parts)


class Federation:
    """Finds the sources of an operation and asks them (see the module)."""

    def __init__(self, registrations: RegistrationService | None, contexts: ContextService,
                 *, alias: str, timeout: float, cooldown: float,
                 clients: SourceClients | None = None) -> None:
        self.registrations = registrations
        self.contexts = contexts
        self.alias = alias
        self.timeout = timeout
        self.clients = clients or SourceClients()
        record = registrations.record_outcomes if registrations is not None else None
        self.health = SourceHealth(record, cooldown)

    def idle(self, tenant: str, hop: Hop) -> bool:
        """True when no source can take part (local=true, a loop, or a tenant known to have no
        registration): the caller may run the plain local operation (the hot paths do)."""
        return (self.registrations is None or hop.local or hop.seen((self.alias,))
                or self.registrations.index.known_empty(tenant))

    @internal
    async def sources(self, tenant: str, entity_id: str | None, types: Sequence[str] | None,
                      attrs: Sequence[str] | None, operation: str, hop: Hop
                      ) -> list[Registration]:
        """Registrations to involve in `operation` (none for a local or looping request)."""
        if self.idle(tenant, hop):
            return []
        assert self.registrations is not None
        regs = await self.registrations.matching(tenant, entity_id, types, attrs, operation)
        if regs and hop.chain:
            regs = [r for r in regs if not hop.seen(source_names(r))]
        return regs

    @internal
    async def ask(self, tenant: str, reg: Registration, hop: Hop, build: Builder,
                  decode: Decoder, *, missing_ok: bool = False) -> Reply:
        """Send one request to a source and decode its answer (see the module)."""
        if self.health.cooling(tenant, reg):
            return Reply(reg, warning=SourceWarning(
                TRANSIENT, reg.id, "not asked: it failed less than its cooldown ago"))
        context = context_of(reg)
        try:
            tm = await self.contexts.term_map(context)
        except NgsiError as err:
            return Reply(reg, warning=SourceWarning(
                PERSISTENT, reg.id, f"its @context {context} is unavailable: {err.detail}"))
        call = build(tm)
        if call.context is not None:
            context, tm = call.context
        try:
            answer = await self._send(reg, call, context, hop)
        except SourceUnreachable as exc:
            self.health.add(tenant, reg.id, False, cools=True)
            return Reply(reg, warning=SourceWarning(TRANSIENT, reg.id, f"unreachable: {exc}"))
        return self._decode(tenant, reg, answer, tm, decode, missing_ok)

    @internal
    async def ask_all(self, tenant: str, regs: Sequence[Registration], hop: Hop,
                      build: Callable[[Registration, TermMap], SourceCall], decode: Decoder,
                      *, missing_ok: bool = False) -> list[Reply]:
        """`ask` every registration concurrently; replies in the order of `regs`."""
        return list(await asyncio.gather(*(
            self.ask(tenant, reg, hop, _bind(build, reg), decode, missing_ok=missing_ok)
            for reg in regs)))

    def _decode(self, tenant: str, reg: Registration, answer: SourceAnswer, tm: TermMap,
                decode: Decoder, missing_ok: bool) -> Reply:
        if answer.status == 404 and missing_ok:
            self.health.add(tenant, reg.id, True)
            return Reply(reg, None, 404)
        if answer.status >= 400:
            self.health.add(tenant, reg.id, False, cools=answer.status >= 500)
            problem = _problem(answer)
            detail = str(problem.get("detail") or problem.get("title") or "") if problem else ""
            return Reply(reg, None, answer.status, SourceWarning(
                PERSISTENT, reg.id, f"answered {answer.status} {detail}".strip()), problem)
        try:
            value = decode(answer, tm)
        except (ValueError, TypeError, KeyError, NgsiError) as exc:
            self.health.add(tenant, reg.id, False, cools=True)
            detail = exc.detail if isinstance(exc, NgsiError) else str(exc)
            return Reply(reg, None, answer.status, SourceWarning(
                PERSISTENT, reg.id, f"unusable answer: {detail}"[:300]))
        self.health.add(tenant, reg.id, True)
        return Reply(reg, value, answer.status)

    async def _send(self, reg: Registration, call: SourceCall, context: str, hop: Hop
                    ) -> SourceAnswer:
        url = endpoint_url(reg.endpoint, call.path)
        body = None if call.body is None else orjson.dumps(call.body)
        request = SourceRequest(call.method, url, call.params,
                                self._headers(reg, context, hop, body is not None), body)
        timeout = self.timeout_of(reg)
        try:
            async with asyncio.timeout(timeout + 0.5):  # whatever the client does
                return await self.clients.for_url(url).send(request, timeout)
        except TimeoutError:
            raise SourceUnreachable(f"no answer within {timeout:g} s") from None

    def timeout_of(self, reg: Registration) -> float:
        """Seconds to wait for the source: management.timeout (ms), else the setting."""
        management = reg.management
        if management is not None and management.timeout is not None:
            return max(management.timeout / 1000, 0.001)
        return self.timeout

    def _headers(self, reg: Registration, context: str, hop: Hop, has_body: bool
                 ) -> dict[str, str]:
        headers: dict[str, str] = {}
        for pair in reg.context_source_info or ():
            key, value = str(pair.get("key", "")), str(pair.get("value", ""))
            if (key != CONTEXT_KEY and _HEADER_NAME.match(key) and key.lower() not in
                    _OWN_HEADERS and "\n" not in value and "\r" not in value):
                headers[key] = value
        headers["Accept"] = "application/json"
        headers["Link"] = f'<{context}>; rel="{JSONLD_REL}"; type="application/ld+json"'
        headers["Via"] = hop.via(self.alias)
        if reg.tenant:
            headers["NGSILD-Tenant"] = reg.tenant
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    @internal
    async def close(self) -> None:
        """Write the last counters and close the clients."""
        await self.health.close()
        await self.clients.close()


async def own_call(job: Callable[[], Awaitable[T]]) -> T:
    """Run a local service operation under its own name (EntityService.create, ...) in the
    audit trail, not under the name of the distributed operation that called it."""
    token = current_call.set(None)
    try:
        return await job()
    finally:
        current_call.reset(token)


def context_of(reg: Registration) -> str:
    """The @context to speak to the source with (contextSourceInfo jsonldContext first)."""
    for pair in reg.context_source_info or ():
        value = pair.get("value")
        if pair.get("key") == CONTEXT_KEY and isinstance(value, str) and value:
            return value
    return reg.context


def json_of(answer: SourceAnswer) -> Any:
    """The JSON body of an answer; MalformedAnswer when it is not JSON."""
    try:
        return orjson.loads(answer.body) if answer.body else None
    except orjson.JSONDecodeError as err:
        raise MalformedAnswer(f"not JSON: {err}") from None


def _problem(answer: SourceAnswer) -> dict[str, Any] | None:
    try:
        body = orjson.loads(answer.body) if answer.body else None
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _bind(build: Callable[[Registration, TermMap], SourceCall], reg: Registration) -> Builder:
    return lambda tm: build(reg, tm)
