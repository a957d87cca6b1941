"""Feed definitions: what a scheduled import reads, how it converts it and how often.

A definition is a TOML or JSON file (keys in docs/devices.md): a name, the tenant written to,
the source (a local path, relative to the definition's folder, or an http(s) URL), its format
(csv, json, geojson, gtfs), the EntityMapping of csv/json/geojson records, the interval
(`every = "5m"`) and the @context the mapping's names are expanded with.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from urbis.connectors.mapping import EntityMapping, MappingError
from urbis.context.errors import BadRequestData

FORMATS = ("csv", "json", "geojson", "gtfs")
MODES = ("update", "replace")
ORDERS = ("file", "observedAt")
SUFFIXES = (".toml", ".json")
DEFAULT_BATCH = 500
MAX_BATCH = 10_000
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 100_000_000
MIN_INTERVAL = 1.0
MAX_INTERVAL = 366 * 86400.0

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TENANT = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")  # as the NGSILD-Tenant header
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
_KEYS = frozenset({
    "name", "tenant", "source", "format", "every", "@context", "context", "mapping", "mode",
    "batch", "timeout", "max_bytes", "headers", "delimiter", "encoding", "records", "prefix",
    "stop_times", "enabled", "order",
})  # fmt: skip
_BY_SUFFIX = {".csv": "csv", ".gz": "csv", ".json": "json", ".geojson": "geojson",
              ".zip": "gtfs"}


class FeedDefinitionError(BadRequestData):
    """A feed definition that is not valid."""


@dataclass(frozen=True, slots=True)
class FeedDefinition:
    """One feed: where its records come from and how they become entities."""

    name: str
    source: str
    format: str
    tenant: str = ""
    every: float | None = None  # seconds between runs; None: on request only
    context: Any = None  # the @context (URL, object or list); None: the core context
    mapping: EntityMapping | None = None  # csv, json, geojson
    mode: str = "update"  # update: merge attributes into existing entities; replace
    order: str = "file"  # observedAt: write the records oldest first (read whole, then sorted)
    batch: int = DEFAULT_BATCH
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    headers: Mapping[str, str] = field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8"
    records: str | None = None  # dotted path to the list of records in a JSON document
    prefix: str | None = None  # GTFS: the id prefix (urn:ngsi-ld:GtfsStop:<prefix>:<id>)
    stop_times: bool = False  # GTFS: also import stop_times.txt
    enabled: bool = True
    origin: str | None = None  # the file the definition was read from

    @property
    def is_url(self) -> bool:
        """Whether the source is fetched over HTTP(S)."""
        return urlparse(self.source).scheme in ("http", "https")

    @property
    def shown_source(self) -> str:
        """The source as status and messages show it: a URL without password or query."""
        parsed = urlparse(self.source)
        if parsed.scheme not in ("http", "https"):
            return self.source
        netloc = (parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")
        query = "..." if parsed.query else ""
        return parsed._replace(netloc=netloc, query=query, fragment="").geturl()

    @classmethod
    def from_dict(cls, spec: Any, base: Path | None = None, origin: str | None = None,
                  default_name: str | None = None) -> FeedDefinition:
        """Read a definition from its dict form; relative paths are taken from `base`."""
        try:
            return _parse(spec, base, origin, default_name)
        except MappingError as exc:
            raise FeedDefinitionError(_where(origin, f"mapping: {exc.detail}")) from None
        except FeedDefinitionError as exc:
            raise FeedDefinitionError(_where(origin, exc.detail)) from None

    @classmethod
    def from_file(cls, path: str | Path) -> FeedDefinition:
        """Read a definition from a .toml or .json file."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise FeedDefinitionError(f"{path}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
            spec = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FeedDefinitionError(f"{path}: not valid {path.suffix[1:].upper() or 'TOML'}:"
                                      f" {exc}") from None
        return cls.from_dict(spec, path.absolute().parent, str(path), path.stem)


def load_folder(folder: str | Path) -> tuple[list[FeedDefinition], dict[str, str]]:
    """Every definition of a folder (*.toml, *.json), and the files refused with the reason."""
    root = Path(folder)
    if not root.is_dir():
        return [], {str(root): "not a folder"}
    good: list[FeedDefinition] = []
    bad: dict[str, str] = {}
    names: set[str] = set()
    for path in sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        try:
            definition = FeedDefinition.from_file(path)
        except FeedDefinitionError as exc:
            bad[str(path)] = exc.detail
            continue
        if definition.name in names:
            bad[str(path)] = f"{path}: another definition is already named {definition.name!r}"
            continue
        names.add(definition.name)
        good.append(definition)
    return good, bad


def parse_interval(value: Any) -> float:
    """Seconds from `"90s"`, `"5m"`, `"1h30m"`, `"1d"` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and (m := _DURATION.fullmatch(value.strip())):
        d, h, mins, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = d * 86400 + h * 3600 + mins * 60 + s
    else:
        raise FeedDefinitionError(f"`every` must be a duration like \"30s\", \"5m\", \"1h30m\" "
                                  f"or \"1d\", got {value!r:.40}")
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:  # NaN fails too
        raise FeedDefinitionError(f"`every` must be at least {MIN_INTERVAL:g} s and at most "
                                  f"{MAX_INTERVAL // 86400:g} days")
    return seconds


def _parse(spec: Any, base: Path | None, origin: str | None,
           default_name: str | None) -> FeedDefinition:
    if not isinstance(spec, Mapping):
        raise FeedDefinitionError("a feed definition is an object (a TOML table)")
    unknown = set(spec) - _KEYS
    if unknown:
        raise FeedDefinitionError(f"unknown keys: {', '.join(sorted(unknown))}")
    name = _name(spec.get("name", default_name))
    source = _source(spec.get("source"), base)
    fmt = _format(spec.get("format"), source)
    mapping = _mapping(spec.get("mapping"), fmt)
    prefix = _text(spec, "prefix", name if fmt == "gtfs" else None)
    if prefix is not None and not _NAME.fullmatch(prefix):
        raise FeedDefinitionError("`prefix` (of the GTFS entity ids) must be 1-64 of A-Z a-z "
                                  f"0-9 _ . -, got {prefix!r:.80}")
    return FeedDefinition(
        name=name, source=source, format=fmt, tenant=_tenant(spec.get("tenant", "")),
        every=parse_interval(spec["every"]) if spec.get("every") is not None else None,
        context=_context(spec), mapping=mapping, mode=_choice(spec, "mode", MODES, "update"),
        order=_choice(spec, "order", ORDERS, "file"),
        batch=_bounded(spec, "batch", DEFAULT_BATCH, 1, MAX_BATCH),
        timeout=float(_bounded(spec, "timeout", DEFAULT_TIMEOUT, 0.1, 3600.0)),
        max_bytes=_bounded(spec, "max_bytes", DEFAULT_MAX_BYTES, 1, 10**12),
        headers=_headers(spec.get("headers")), delimiter=_delimiter(spec),
        encoding=_encoding(spec), records=_text(spec, "records", None), prefix=prefix,
        stop_times=_flag(spec, "stop_times", False), enabled=_flag(spec, "enabled", True),
        origin=origin,
    )


def _where(origin: str | None, message: str) -> str:
    return f"{origin}: {message}" if origin and not message.startswith(origin) else message


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise FeedDefinitionError("`name` must be 1-64 of A-Z a-z 0-9 _ . - (starting with a "
                                  f"letter or digit), got {value!r:.80}")
    return value


def _tenant(value: Any) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not _TENANT.fullmatch(value):
        raise FeedDefinitionError(f"`tenant` must be 1-64 of A-Z a-z 0-9 _ - . :, "
                                  f"got {value!r:.80}")
    return value


def _source(value: Any, base: Path | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FeedDefinitionError("`source` (a file path or an http(s) URL) is required")
    value = value.strip()
    scheme = urlparse(value).scheme
    if scheme in ("http", "https"):
        if not urlparse(value).hostname:
            raise FeedDefinitionError(f"`source` URL {value!r:.200} has no host")
        return value
    if scheme == "file":
        value = urlparse(value).path
    elif scheme and len(scheme) > 1:  # one letter: a Windows drive
        raise FeedDefinitionError(f"`source` must be a path or an http(s) URL, got "
                                  f"{value!r:.200}")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return os.path.normpath(path)


def _format(value: Any, source: str) -> str:
    if value is None:
        suffix = Path(urlparse(source).path).suffix.lower()
        value = _BY_SUFFIX.get(suffix)
        if value is None:
            raise FeedDefinitionError(f"`format` ({', '.join(FORMATS)}) is required: it cannot "
                                      "be told from the source's name")
    if value not in FORMATS:
        raise FeedDefinitionError(f"`format` must be one of {', '.join(FORMATS)}, got "
                                  f"{value!r:.40}")
    return str(value)


def _mapping(spec: Any, fmt: str) -> EntityMapping | None:
    if fmt == "gtfs":
        if spec is not None:
            raise FeedDefinitionError("a gtfs feed has no `mapping` (its entities are the "
                                      "GTFS Smart Data Models)")
        return None
    if spec is None:
        raise FeedDefinitionError(f"a {fmt} feed needs a `mapping` table")
    return EntityMapping.from_dict(spec)


def _context(spec: Mapping[str, Any]) -> Any:
    if "@context" in spec and "context" in spec:
        raise FeedDefinitionError("give `@context` or `context`, not both")
    value = spec.get("@context", spec.get("context"))
    if value is None or isinstance(value, str | dict):
        return value
    if isinstance(value, list) and all(isinstance(v, str | dict) for v in value):
        return value
    raise FeedDefinitionError("`@context` must be a URL, an object or a list of them")


def _choice(spec: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = spec.get(key, default)
    if value not in choices:
        raise FeedDefinitionError(f"`{key}` must be one of {', '.join(choices)}, got "
                                  f"{value!r:.40}")
    return str(value)


def _bounded(spec: Mapping[str, Any], key: str, default: Any, low: float, high: float) -> Any:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FeedDefinitionError(f"`{key}` must be a number from {low:g} to {high:g}, got "
                                  f"{value!r:.40}")
    if isinstance(default, int) and not isinstance(value, int):
        raise FeedDefinitionError(f"`{key}` must be a whole number, got {value!r}")
    return value


def _flag(spec: Mapping[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise FeedDefinitionError(f"`{key}` must be true or false, got {value!r:.40}")
    return value


def _text(spec: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = spec.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise FeedDefinitionError(f"`{key}` must be a non-empty text")
    return value


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise FeedDefinitionError("`headers` must map header names to text values")
    return dict(value)


def _delimiter(spec: Mapping[str, Any]) -> str:
    value = spec.get("delimiter", ",")
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n\"":
        raise FeedDefinitionError("`delimiter` must be one character (not a quote or newline)")
    return value


def _encoding(spec: Mapping[str, Any]) -> str:
    import codecs

    value = spec.get("encoding", "utf-8")
    try:
        codecs.lookup(str(value))
    except LookupError:
        raise FeedDefinitionError(f"unknown `encoding` {value!r:.40}") from None
    return str(value)
