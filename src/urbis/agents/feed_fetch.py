"""Fetch a feed's source: a local file (or GTFS folder) or an http(s) URL.

Downloads are bounded (timeout, size cap, also on gzip-compressed files) and conditional: the
ETag and Last-Modified of the last successful import are sent back, and a source whose bytes
hash as before counts as unchanged too, so a feed that did not change is not written again.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import httpx

from urbis.agents.feed_definition import FeedDefinition

GZIP_MAGIC = b"\x1f\x8b"


class FetchError(Exception):
    """The source could not be read: unreachable, an HTTP error, too large, unreadable."""


@dataclass(frozen=True, slots=True)
class Validators:
    """What tells a source unchanged since the last successful import."""

    digest: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """A source's bytes (or, for a local GTFS folder, its path) and their validators."""

    data: bytes | None
    validators: Validators
    path: Path | None = None  # a local file or folder the converter may read directly

    @property
    def size(self) -> int:
        """Bytes read (0 for a folder)."""
        return len(self.data) if self.data is not None else 0


async def fetch(definition: FeedDefinition, previous: Validators | None = None
                ) -> Payload | None:
    """The source's content, or None when it is unchanged since `previous`."""
    if definition.is_url:
        payload = await _download(definition, previous)
    else:
        payload = await asyncio.to_thread(_read_local, definition)
    if payload is None:
        return None
    if previous is not None and previous.digest and payload.validators.digest == previous.digest:
        return None
    return payload


def _read_local(definition: FeedDefinition) -> Payload:
    path = Path(definition.source)
    if path.is_dir():
        if definition.format != "gtfs":
            raise FetchError(f"{path} is a folder; only a gtfs feed may be one")
        return Payload(None, Validators(digest=_folder_digest(path)), path)
    try:
        size = path.stat().st_size
        if size > definition.max_bytes:
            raise FetchError(f"{path} holds {size} bytes, more than max_bytes "
                             f"({definition.max_bytes})")
        data = path.read_bytes()
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    return Payload(_inflate(data, definition.max_bytes), Validators(digest=digest), path)


def _folder_digest(path: Path) -> str:
    """Names, sizes and modification times of a folder's files (not their bytes)."""
    h = hashlib.sha256()
    for item in sorted(path.iterdir()):
        if item.is_file():
            stat = item.stat()
            h.update(f"{item.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


async def _download(definition: FeedDefinition, previous: Validators | None) -> Payload | None:
    headers = {"User-Agent": "urbis-feeds", **definition.headers}
    if previous is not None and previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous is not None and previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    url, shown = definition.source, definition.shown_source
    try:
        async with asyncio.timeout(definition.timeout), httpx.AsyncClient(
                timeout=definition.timeout, follow_redirects=True, max_redirects=5) as client:
            return await _get(client, url, shown, headers, definition.max_bytes)
    except TimeoutError:
        raise FetchError(f"{shown}: no complete answer within {definition.timeout:g} s"
                         ) from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{shown}: too many redirects") from None
    except httpx.HTTPError as exc:
        reason = str(exc).replace(url, shown) or type(exc).__name__
        raise FetchError(f"cannot reach {shown}: {reason}") from None


async def _get(client: httpx.AsyncClient, url: str, shown: str, headers: dict[str, str],
               max_bytes: int) -> Payload | None:
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 304:
            return None
        if response.status_code >= 400:
            raise FetchError(f"{shown}: HTTP {response.status_code} {response.reason_phrase}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"{shown}: {declared} bytes, more than max_bytes ({max_bytes})")
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > max_bytes:
                raise FetchError(f"{shown}: more than max_bytes ({max_bytes}) bytes")
            chunks.append(chunk)
    data = b"".join(chunks)
    validators = Validators(hashlib.sha256(data).hexdigest(), response.headers.get("etag"),
                            response.headers.get("last-modified"))
    return Payload(await asyncio.to_thread(_inflate, data, max_bytes), validators)


def _inflate(data: bytes, max_bytes: int) -> bytes:
    """Gzip-compressed bytes uncompressed (at most max_bytes); others as they are."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise FetchError(f"a gzip file that does not uncompress: {exc}") from None
    if len(out) > max_bytes:
        raise FetchError(f"more than max_bytes ({max_bytes}) bytes once uncompressed")
    return out
