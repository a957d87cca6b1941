"""IoT device provisioning: service groups, devices and dead letters (the FIWARE IoT Agent model).

A service group (FIWARE "config group") is the template of the devices that share an apikey:
entity type, attribute mappings, static attributes, commands. A device maps one physical device
(`device_id`) onto one entity (`entity_name`, `entity_type`) and may refine the template. Both
live in a tenant (the `fiware-service` header; absent: the default tenant) and a service path
(`fiware-servicepath`, default `/`). `body` keeps the provisioned document as FIWARE tools sent
it (validated by `urbis.context.device_parse`), so what is read back is what was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from urbis.context.errors import AlreadyExists, BadRequestData, NgsiError, ResourceNotFound

DEFAULT_SERVICE_PATH = "/"
DEFAULT_ENTITY_TYPE = "Thing"  # the FIWARE agents' type for devices provisioned without one
DEFAULT_RESOURCE = ""
MAX_DEAD_LETTER_PAYLOAD = 512  # characters of a rejected payload kept with its dead letter

# Why a measure was rejected (a dead letter); the decoders' reasons (DecodeError.reason) too.
UNKNOWN_APIKEY = "unknown_apikey"
UNKNOWN_DEVICE = "unknown_device"
INVALID_VALUE = "invalid_value"
EXPRESSION = "expression"
STORE = "store_error"  # the store refused or failed the write
OVERLOADED = "overloaded"  # the ingestion queue was full (fire-and-forget measures only)


@dataclass(frozen=True, slots=True)
class ServiceGroup:
    """A service group: the template of every device using its apikey (and resource)."""

    tenant: str
    service_path: str
    apikey: str
    resource: str
    entity_type: str
    body: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


@dataclass(frozen=True, slots=True)
class Device:
    """A provisioned device and the entity its measures update."""

    tenant: str
    service_path: str
    device_id: str
    apikey: str  # "" when it has none (it then cannot send measures)
    entity_name: str
    entity_type: str
    body: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    last_seen: str | None = None  # when a measure of it was last written (coarse, see agents)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A measure that was not written, and why (the operators' dead-letter log)."""

    at: str
    tenant: str | None  # None when the apikey names no tenant
    apikey: str
    device_id: str
    transport: str
    reason: str
    detail: str
    payload: str = ""
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        """The entry as GET /iot/deadletter shows it."""
        return {"seq": self.seq, "at": self.at, "service": self.tenant, "apikey": self.apikey,
                "device_id": self.device_id, "transport": self.transport,
                "reason": self.reason, "detail": self.detail, "payload": self.payload}


# --- errors with the FIWARE IoT Agent names ---------------------------------------------------


def fiware(error: type[NgsiError], name: str, message: str) -> NgsiError:
    """An NgsiError carrying the FIWARE error `name` the /iot API answers with."""
    return error(message, fiware=name)


def wrong_syntax(message: str) -> NgsiError:
    """400 WRONG_SYNTAX: a provisioning body that is not a valid group or device."""
    return fiware(BadRequestData, "WRONG_SYNTAX", message)


def device_not_found(device_id: str) -> NgsiError:
    """404 DEVICE_NOT_FOUND."""
    return fiware(ResourceNotFound, "DEVICE_NOT_FOUND",
                  f"No device was found with id:{device_id}")


def group_not_found(apikey: str, resource: str | None) -> NgsiError:
    """404 DEVICE_GROUP_NOT_FOUND."""
    where = f"apikey {apikey!r}" + (f" and resource {resource!r}" if resource is not None else "")
    return fiware(ResourceNotFound, "DEVICE_GROUP_NOT_FOUND",
                  f"Couldn't find device group for {where}")


def duplicate_device(device_id: str) -> NgsiError:
    """409 DUPLICATE_DEVICE_ID."""
    return fiware(AlreadyExists, "DUPLICATE_DEVICE_ID",
                  f"A device with the same pair (Service, DeviceId) was found: {device_id}")


def duplicate_group(apikey: str, resource: str) -> NgsiError:
    """409 DUPLICATE_GROUP."""
    return fiware(AlreadyExists, "DUPLICATE_GROUP",
                  f"A device configuration already exists for resource {resource!r} and "
                  f"apikey {apikey!r}")


def fiware_name(error: NgsiError) -> str:
    """The FIWARE error name of an NgsiError (its own, else one for its status)."""
    name = error.extra.get("fiware")
    if isinstance(name, str):
        return name
    return _BY_STATUS.get(error.status, "INTERNAL_ERROR")


_BY_STATUS = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
              405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "REQUEST_TOO_LARGE",
              415: "UNSUPPORTED_CONTENT_TYPE", 422: "UNPROCESSABLE", 429: "TOO_MANY_REQUESTS",
              503: "SERVICE_UNAVAILABLE"}
