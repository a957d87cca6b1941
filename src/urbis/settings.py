"""Settings, declared once: each has a type, a default, an environment variable and a doc line."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, cast
from urllib.parse import urlparse


class SettingsError(ValueError):
    """A setting has a value urbis cannot use."""


def _setting(default: Any, doc: str, *, secret: bool = False, choices: tuple[str, ...] = ()
             ) -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret, "choices": choices})


@dataclass(frozen=True)
class Settings:
    """The effective configuration of an urbis process."""

    host: str = _setting("127.0.0.1", "Address the HTTP API listens on.")
    port: int = _setting(1026, "Port of the NGSI-LD API.")
    store: str = _setting("sqlite:///./urbis-data/urbis.db",
                          "Store URL: sqlite:///PATH (embedded default) or postgresql://...")
    base_url: str = _setting("", "Public base URL of this broker (default http://HOST:PORT); "
                                 "used in hosted @context URLs and Link headers.")
    log_level: str = _setting("info", "Log level.",
                              choices=("debug", "info", "warning", "error"))
    log_format: str = _setting("json", "Log lines as JSON objects (json) or readable text (text).",
                               choices=("json", "text"))
    config: str = _setting("", "A TOML file of settings (names as in this table), read before "
                               "the environment and the command line.")
    cors_origins: str = _setting("", "Origins allowed to call the API from a browser (CORS), "
                                     "comma-separated, or * for any; empty: none.")
    tls_certfile: str = _setting("", "PEM certificate (chain) file: serve HTTPS (with "
                                     "tls_keyfile).")
    tls_keyfile: str = _setting("", "PEM private key file of tls_certfile.", secret=True)
    auth: bool = _setting(True, "Require credentials (API keys, OIDC tokens); `urbis serve "
                                "--no-auth` turns it off for development.")
    admin_key: str = _setting("", "An admin API key to register at start (else the first "
                                  "start creates one and prints it once).", secret=True)
    oidc_issuer: str = _setting("", "OIDC issuer whose bearer tokens are accepted (its `iss`).")
    oidc_audience: str = _setting("urbis", "The `aud` tokens must carry.")
    oidc_jwks_url: str = _setting("", "JWKS URL of the issuer's signing keys (default: from "
                                      "its discovery document).")
    oidc_algorithms: str = _setting("RS256,ES256", "Token signature algorithms accepted.")
    oidc_leeway: float = _setting(30.0, "Clock skew allowed on exp / nbf / iat, in seconds.")
    oidc_roles_claim: str = _setting("roles", "Claim (dotted path, e.g. realm_access.roles) "
                                              "holding the caller's roles.")
    oidc_tenants_claim: str = _setting("tenants", "Claim holding the tenants a caller may "
                                                  "use (absent: the default tenant; *: all).")
    oidc_role_map: str = _setting("", "Identity-provider roles to urbis roles, e.g. "
                                      "city-admins=admin,traffic=analyst.")
    public_types: str = _setting("", "Entity types anonymous callers may read (short names "
                                     "or IRIs, comma-separated).")
    sensitive_attributes: str = _setting("", "Attributes (short names or IRIs, "
                                             "comma-separated) only sensitive_roles see; "
                                             "their reads are audited.")
    sensitive_roles: str = _setting("admin,operator", "Roles that see sensitive_attributes.")
    rate_limit: float = _setting(0.0, "Requests per second allowed per principal (0: no "
                                      "limit); over it: 429 with Retry-After.")
    metrics_public: bool = _setting(False, "Serve /metrics without credentials (a scraper on a "
                                           "trusted network); else operator or admin only.")
    rate_burst: int = _setting(100, "Requests a principal may send at once above rate_limit.")
    default_limit: int = _setting(20, "Entities per page when a query gives no limit.")
    max_limit: int = _setting(1000, "Largest page a query may ask for (else TooManyResults).")
    context_fetch_timeout: float = _setting(5.0, "Seconds to wait for a remote JSON-LD @context.")
    context_max_bytes: int = _setting(2_000_000, "Largest remote @context accepted, in bytes.")
    context_cache_size: int = _setting(512, "Compiled @contexts kept in memory.")
    sqlite_synchronous: str = _setting(
        "full", "SQLite synchronous mode: full (every commit fsynced) or normal.",
        choices=("full", "normal"))
    sqlite_readers: int = _setting(2, "SQLite reader threads for queries.")
    max_body_bytes: int = _setting(8_000_000, "Largest request body accepted, in bytes.")
    workers: int = _setting(1, "Worker processes of `urbis serve`; more than 1 needs a "
                               "postgresql:// store.")
    pg_pool_min: int = _setting(2, "PostgreSQL connections each worker keeps open.")
    pg_pool_max: int = _setting(10, "Most PostgreSQL connections each worker opens at once "
                                    "(plus one for cache invalidations).")
    notify_timeout: float = _setting(10.0, "Seconds to wait for a notification endpoint to "
                                           "answer (an endpoint's own `timeout` wins).")
    notify_max_attempts: int = _setting(
        8, "Attempts of a notification before it is given up and its subscription shows "
           "status failed.")
    notify_retry_first: float = _setting(1.0, "Seconds before the first retry of a failed "
                                              "notification; doubled at each attempt.")
    notify_retry_max: float = _setting(300.0, "Longest wait between two attempts, in seconds.")
    notify_endpoint_concurrency: int = _setting(
        32, "Notifications sent at once to one endpoint (scheme, host, port); more wait in "
           "the outbox.")
    notify_batch: int = _setting(256, "Outbox rows a notifier claims at once.")
    notify_poll_interval: float = _setting(
        0.5, "Seconds between looks at the outbox when nothing woke the notifier (changes "
             "of other workers, retries due).")
    notify_lease: float = _setting(
        60.0, "Seconds an outbox row stays claimed by a worker; one that dies has its rows "
              "taken over after this.")
    history: bool = _setting(True, "Record every entity change as attribute instances (the "
                                   "temporal API); off records nothing.")
    history_retention: str = _setting(
        "P30D", "How long attribute instances are kept (by observedAt): an ISO 8601 duration, "
                "or per entity type as Type=P7D,*=P365D (* is every other type; a month "
                "counts 30 days).")
    history_purge_interval: float = _setting(3600.0, "Seconds between two purges of instances "
                                                     "older than history_retention.")
    temporal_instance_limit: int = _setting(
        1000, "Most instances per attribute in one temporal response; more are paginated "
              "(206 with Content-Range).")
    audit: bool = _setting(True, "Record every change (and every refusal) in the audit log, "
                                 "one record per write batch; off records nothing new.")
    audit_retention: str = _setting("P365D", "How long audit records are kept: an ISO 8601 "
                                              "duration (a month counts 30 days); empty: "
                                              "for ever.")
    iota_port: int = _setting(4041, "Port of the IoT agent provisioning API (/iot/services, "
                                     "/iot/devices: the FIWARE IoT Agent API); 0: not served.")
    iota_http_port: int = _setting(7896, "Port of the HTTP southbound where devices send "
                                         "measures (/iot/json, /iot/d); 0: not served.")
    iota_batch_size: int = _setting(1000, "Most device measures written in one store "
                                          "transaction.")
    iota_batch_delay: float = _setting(0.005, "Seconds a device measure waits for others to "
                                              "share its store transaction (0: none).")
    iota_queue_size: int = _setting(50_000, "Device measures waiting to be written at most; "
                                            "beyond, devices are told to retry (503).")
    iota_dead_letters: int = _setting(10_000, "Rejected device measures kept in the "
                                              "dead-letter log (newest first).")
    iota_mqtt_url: str = _setting("", "MQTT broker the IoT agent subscribes to for device "
                                      "measures and sends commands through "
                                      "(mqtt://[user:password@]host:1883); empty: no MQTT.",
                                  secret=True)
    iota_mqtt_client_id: str = _setting("urbis-iota", "MQTT client id of the IoT agent (its "
                                                      "persistent session on the broker).")
    iota_mqtt_qos: int = _setting(1, "QoS of the IoT agent's MQTT subscriptions (0 or 1).")
    iota_health_interval: float = _setting(30.0, "Seconds between two checks for silent "
                                                 "devices (those past their "
                                                 "expectedInterval become offline); 0: off.")
    feeds_dir: str = _setting("", "Folder of feed definitions (*.toml, *.json) that `urbis "
                                  "serve` imports on their schedule; empty: no scheduled "
                                  "imports.")

    federation_timeout: float = _setting(3.0, "Seconds to wait for a context source in a "
                                              "distributed operation (a registration's "
                                              "management.timeout wins).")
    federation_cooldown: float = _setting(5.0, "Seconds a context source that failed is not "
                                               "asked again (a registration's "
                                               "management.cooldown wins).")
    source_alias: str = _setting("", "This broker's name in Via headers of distributed "
                                     "operations (loop detection); default: the host:port "
                                     "of base_url.")

    @property
    def source_name(self) -> str:
        """The alias of this broker in Via chains (source_alias, else base_url's host:port)."""
        return self.source_alias or urlparse(self.public_url).netloc

    @property
    def public_url(self) -> str:
        """The base URL clients reach this broker at."""
        scheme = "https" if self.tls_certfile else "http"
        return (self.base_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    def validate(self) -> Settings:
        """Check every value; raise SettingsError with a clear message."""
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise SettingsError(f"{f.name} must be one of {', '.join(choices)}, "
                                    f"got {getattr(self, f.name)!r}")
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be 1..65535, got {self.port}")
        scheme = urlparse(self.store).scheme
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise SettingsError(
                f"store must be a sqlite:/// or postgresql:// URL, got {self.store!r}")
        for name in ("default_limit", "max_limit", "context_cache_size", "sqlite_readers",
                     "context_max_bytes", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        if self.default_limit > self.max_limit:
            raise SettingsError("default_limit must not exceed max_limit")
        if self.context_fetch_timeout <= 0:
            raise SettingsError("context_fetch_timeout must be positive")
        if self.federation_timeout <= 0 or self.federation_cooldown < 0:
            raise SettingsError("federation_timeout must be positive and federation_cooldown "
                                "not negative")
        if any(c in self.source_alias for c in " ,;\r\n\t"):
            raise SettingsError("source_alias may not contain spaces, commas or semicolons")
        self._validate_processes()
        self._validate_iota()
        self._validate_history()
        self._validate_audit()
        self._validate_notify()
        self._validate_auth()
        if bool(self.tls_certfile) != bool(self.tls_keyfile):
            raise SettingsError("tls_certfile and tls_keyfile go together")
        for name in ("tls_certfile", "tls_keyfile"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise SettingsError(f"{name}: no such file {path!r}")
        if self.feeds_dir and not os.path.isdir(self.feeds_dir):
            raise SettingsError(f"feeds_dir: no such folder {self.feeds_dir!r}")
        return self

    def _validate_notify(self) -> None:
        if self.notify_max_attempts < 1 or self.notify_endpoint_concurrency < 1 or \
                self.notify_batch < 1:
            raise SettingsError("notify_max_attempts, notify_endpoint_concurrency and "
                                "notify_batch must be at least 1")
        for name in ("notify_timeout", "notify_retry_first", "notify_retry_max",
                     "notify_poll_interval", "notify_lease"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.notify_lease <= self.notify_timeout:
            raise SettingsError("notify_lease must be longer than notify_timeout")

    def _validate_history(self) -> None:
        from urbis.context.errors import NgsiError
        from urbis.context.temporal import parse_retention

        try:
            parse_retention(self.history_retention)
        except NgsiError as exc:
            raise SettingsError(f"history_retention: {exc}") from None
        if self.history_purge_interval <= 0 or self.temporal_instance_limit < 1:
            raise SettingsError("history_purge_interval must be positive and "
                                "temporal_instance_limit at least 1")

    def _validate_audit(self) -> None:
        from urbis.context.errors import NgsiError
        from urbis.context.temporal import parse_duration

        if self.audit_retention.strip():
            try:
                parse_duration(self.audit_retention.strip(), "audit_retention")
            except NgsiError as exc:
                raise SettingsError(str(exc)) from None

    def _validate_auth(self) -> None:
        if self.oidc_issuer and not urlparse(self.oidc_issuer).scheme.startswith("http"):
            raise SettingsError(f"oidc_issuer must be an http(s) URL, got {self.oidc_issuer!r}")
        bad = [a for a in self.oidc_algorithms.split(",") if a.strip() not in _ALGORITHMS]
        if bad:
            raise SettingsError(f"oidc_algorithms: {bad} not among {', '.join(_ALGORITHMS)}")
        for pair in filter(None, (p.strip() for p in self.oidc_role_map.split(","))):
            if "=" not in pair:
                raise SettingsError(f"oidc_role_map: {pair!r} is not IDP_ROLE=ROLE")
        if self.rate_limit < 0 or self.rate_burst < 1:
            raise SettingsError("rate_limit must be >= 0 and rate_burst >= 1")

    def _validate_iota(self) -> None:
        ports = [p for p in (self.port, self.iota_port, self.iota_http_port) if p]
        if not all(0 <= p < 65536 for p in (self.iota_port, self.iota_http_port)):
            raise SettingsError("iota_port and iota_http_port must be 0..65535 (0: off)")
        if len(set(ports)) != len(ports):
            raise SettingsError("port, iota_port and iota_http_port must differ")
        if self.iota_batch_size < 1 or self.iota_dead_letters < 1 or \
                self.iota_queue_size < self.iota_batch_size:
            raise SettingsError("iota_batch_size and iota_dead_letters must be at least 1 and "
                                "iota_queue_size at least iota_batch_size")
        if not 0 <= self.iota_batch_delay <= 1:
            raise SettingsError("iota_batch_delay must be 0..1 seconds")
        if self.iota_mqtt_qos not in (0, 1) or self.iota_health_interval < 0:
            raise SettingsError("iota_mqtt_qos must be 0 or 1, iota_health_interval >= 0")
        if self.iota_mqtt_url and not self.iota_mqtt_url.startswith(("mqtt://", "mqtts://")):
            raise SettingsError("iota_mqtt_url must be mqtt://host[:port] or mqtts://...")

    def _validate_processes(self) -> None:
        if self.workers < 1:
            raise SettingsError("workers must be at least 1")
        if self.pg_pool_max < 1 or self.pg_pool_min < 0:
            raise SettingsError("pg_pool_max must be at least 1 and pg_pool_min at least 0")
        if self.pg_pool_min > self.pg_pool_max:
            raise SettingsError("pg_pool_min must not exceed pg_pool_max")


_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA")


def env_name(name: str) -> str:
    """The environment variable of a setting."""
    return f"URBIS_{name.upper()}"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, then a config file, the environment, explicit overrides."""
    return replace(Settings(), **{k: v for k, (v, _) in sources(env, **overrides).items()}
                   ).validate()


def sources(env: Mapping[str, str] | None = None, **overrides: Any
            ) -> dict[str, tuple[Any, str]]:
    """Each setting given somewhere: name -> (value, where: file path, variable or flag)."""
    env = os.environ if env is None else env
    given: dict[str, tuple[Any, str]] = {}
    config = overrides.get("config") or env.get(env_name("config"))
    if config:
        given.update(_from_file(str(config)))
        given["config"] = (str(config), "flag" if overrides.get("config") else env_name("config"))
    for f in fields(Settings):
        raw = env.get(env_name(f.name))
        if raw is not None:
            given[f.name] = (_convert(f.name, f.type, raw), env_name(f.name))
    given.update({k: (v, "flag") for k, v in overrides.items() if v is not None})
    return given


def _from_file(path: str) -> dict[str, tuple[Any, str]]:
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from None
    known = {f.name: f for f in fields(Settings)}
    given: dict[str, tuple[Any, str]] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known or name == "config":
            raise SettingsError(f"config file {path}: unknown setting {key!r}")
        given[name] = (_from_toml(name, known[name].type, value, path), path)
    return given


def _from_toml(name: str, type_name: Any, value: Any, path: str) -> Any:
    kinds: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float),
                                          "bool": (bool,), "str": (str,)}
    wanted = kinds[str(type_name)]
    if (isinstance(value, bool) and str(type_name) != "bool") or not isinstance(value, wanted):
        raise SettingsError(f"config file {path}: {name} must be a {type_name}, "
                            f"got {value!r}")
    return float(cast(float, value)) if str(type_name) == "float" else value


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that load `settings` again (e.g. in a worker process)."""
    return {env_name(f.name): str(getattr(settings, f.name)) for f in fields(settings)}


def _convert(name: str, type_name: Any, raw: str) -> Any:
    kinds: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _bool}
    kind = kinds.get(str(type_name), str)
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{env_name(name)} must be a {type_name}, got {raw!r}") from None


def _bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def masked(settings: Settings) -> dict[str, Any]:
    """Every effective value, secrets masked (for `urbis config show` and logs)."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.metadata["secret"] and value:
            value = "***"
        elif isinstance(value, str):
            value = _mask_url_password(value)
        out[f.name] = value
    return out


def _mask_url_password(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme and parsed.password:
        return value.replace(f":{parsed.password}@", ":***@", 1)
    return value


def describe() -> list[dict[str, Any]]:
    """Every setting with its variable, default and doc (for docs and `config show`)."""
    return [
        {"name": f.name, "env": env_name(f.name), "default": f.default, "doc": f.metadata["doc"],
         "secret": f.metadata["secret"]}
        for f in fields(Settings)
    ]
