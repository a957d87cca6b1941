"""The temporal evolution of entities (ETSI GS CIM 009 clauses 4.5.7, 4.5.19, 5.7.3, 6.18-6.22).

Pure pieces shared by the services and the stores: times as integer microseconds since the
epoch (UTC), ISO 8601 durations, the temporal query parameters (`timerel`, `timeAt`,
`endTimeAt`, `timeproperty`, `lastN`, `aggrMethods`, `aggrPeriodDuration`) and the history
retention setting. `temporal_records` says which instances a change adds to a history,
`temporal_agg` cuts instance lists and computes aggregates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from urbis.context.errors import BadRequestData
from urbis.context.query.q import datetime_key

TIMERELS = ("before", "after", "between")
TIME_PROPERTIES = ("observedAt", "createdAt", "modifiedAt")
AGGR_METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
NULL = "urn:ngsi-ld:null"
INSTANCE_PREFIX = "urn:ngsi-ld:Instance:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_DURATION = re.compile(
    r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:[.,]\d{1,6})?)S)?)?")
_UNITS = (0, 0, 7 * 86_400_000_000, 86_400_000_000, 3_600_000_000, 60_000_000)
# A year and a month where a fixed length is needed (retention): 365 and 30 days.
YEAR_MICROS, MONTH_MICROS = 365 * 86_400_000_000, 30 * 86_400_000_000


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration: calendar years and months, and a fixed number of microseconds."""

    years: int
    months: int
    micros: int

    @property
    def calendar(self) -> bool:
        """Whether it has years or months (whose lengths vary)."""
        return bool(self.years or self.months)

    def approx_micros(self) -> int:
        """Its length with a year of 365 days and a month of 30."""
        return self.years * YEAR_MICROS + self.months * MONTH_MICROS + self.micros


def parse_duration(text: Any, what: str = "duration") -> Duration:
    """`P[n]Y[n]M[n]DT[n]H[n]M[n]S` or `P[n]W` (seconds may have a fraction); BadRequestData."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if m is None or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestData(f"{what} must be an ISO 8601 duration such as P1D or PT15M, "
                             f"got {text!r:.80}")
    parts = m.groups()
    micros = sum(int(p) * unit for p, unit in zip(parts[2:6], _UNITS[2:], strict=True) if p)
    if parts[6]:
        whole, _, frac = parts[6].replace(",", ".").partition(".")
        micros += int(whole) * 1_000_000 + int(frac.ljust(6, "0") or 0)
    return Duration(int(parts[0] or 0), int(parts[1] or 0), micros)


def to_micros(text: str, what: str = "DateTime") -> int:
    """An NGSI-LD DateTime as microseconds since the epoch (UTC); BadRequestData if not one."""
    key = datetime_key(text) if isinstance(text, str) else None
    if key is None:
        raise BadRequestData(f"{what} must be an ISO 8601 DateTime, got {text!r:.80}")
    moment = datetime.fromisoformat(key[:-1]).replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def trusted_micros(text: str) -> int:
    """`to_micros` of a DateTime already checked (observedAt, modifiedAt): the fast path."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return to_micros(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICRO


def from_micros(micros: int) -> str:
    """Microseconds since the epoch as a DateTime (`...Z`, fraction only when there is one)."""
    moment = _EPOCH + timedelta(microseconds=micros)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def instance_id(key: int) -> str:
    """The instanceId (a URI) of a stored instance."""
    return f"{INSTANCE_PREFIX}{key}"


def instance_key(value: str) -> int | None:
    """The store key of an instanceId, or None if it is not one of ours."""
    if not value.startswith(INSTANCE_PREFIX):
        return None
    digits = value[len(INSTANCE_PREFIX):]
    return int(digits) if digits.isdigit() and len(digits) < 19 else None


@dataclass(frozen=True, slots=True)
class TimeFilter:
    """Which instances a temporal query selects, and how many per attribute."""

    timerel: str | None = None
    time_at: int | None = None
    end_time_at: int | None = None
    timeproperty: str = "observedAt"
    last_n: int | None = None

    def bounds(self) -> tuple[int | None, int | None]:
        """[low, high) in microseconds (None: open); `after` is strict, hence low = timeAt + 1."""
        if self.timerel == "before":
            return None, self.time_at
        if self.timerel == "after":
            assert self.time_at is not None
            return self.time_at + 1, None
        if self.timerel == "between":
            return self.time_at, self.end_time_at
        return None, None


def parse_time_filter(params: dict[str, Any]) -> TimeFilter:
    """`timerel`, `timeAt`, `endTimeAt`, `timeproperty` and `lastN`; BadRequestData if wrong."""
    timerel = params.get("timerel")
    if timerel is not None and timerel not in TIMERELS:
        raise BadRequestData(f"timerel must be one of {', '.join(TIMERELS)}, got {timerel!r:.50}")
    raw_at, raw_end = params.get("timeAt"), params.get("endTimeAt")
    if timerel is None and (raw_at is not None or raw_end is not None):
        raise BadRequestData("timeAt and endTimeAt need timerel")
    if timerel is not None and raw_at is None:
        raise BadRequestData(f"timerel={timerel} needs timeAt")
    if (timerel == "between") != (raw_end is not None):
        raise BadRequestData("endTimeAt is needed with timerel=between, and only with it")
    time_at = to_micros(raw_at, "timeAt") if raw_at is not None else None
    end = to_micros(raw_end, "endTimeAt") if raw_end is not None else None
    if time_at is not None and end is not None and end <= time_at:
        raise BadRequestData("endTimeAt must be after timeAt")
    prop = params.get("timeproperty") or "observedAt"
    if prop not in TIME_PROPERTIES:
        raise BadRequestData(f"timeproperty must be one of {', '.join(TIME_PROPERTIES)}, "
                             f"got {prop!r:.50}")
    return TimeFilter(timerel, time_at, end, prop, parse_last_n(params.get("lastN")))


def parse_last_n(value: Any) -> int | None:
    """A positive integer lastN, or None."""
    if value is None:
        return None
    text = str(value)
    if not text.isdigit() or int(text) < 1:
        raise BadRequestData(f"lastN must be a positive integer, got {value!r:.50}")
    return int(text)


def parse_aggr_methods(value: Any) -> list[str]:
    """`aggrMethods` (comma-separated or an array) as a list without duplicates."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    methods = [str(i).strip() for i in items if str(i).strip()]
    if not methods:
        raise BadRequestData(f"aggrMethods must name at least one of {', '.join(AGGR_METHODS)}")
    unknown = [m for m in methods if m not in AGGR_METHODS]
    if unknown:
        raise BadRequestData(f"unknown aggrMethods {', '.join(unknown)[:200]}; "
                             f"use {', '.join(AGGR_METHODS)}")
    return list(dict.fromkeys(methods))


def parse_aggr_period(value: Any) -> int:
    """`aggrPeriodDuration` in microseconds (0: the whole time range); years/months refused."""
    if value is None:
        return 0
    duration = parse_duration(value, "aggrPeriodDuration")
    if duration.calendar:
        raise BadRequestData("aggrPeriodDuration with years or months is not supported; "
                             "use weeks, days, hours, minutes or seconds (e.g. P30D)")
    return duration.micros


DEFAULT_RETENTION = "P30D"


def parse_retention(text: str) -> tuple[int, dict[str, int]]:
    """`P30D` or `Type=P7D,OtherType=P1Y,*=P365D` as (default, {type: period}) in microseconds.

    A year counts 365 days and a month 30. `*` sets the default (P30D when not given).
    """
    default = parse_duration(DEFAULT_RETENTION).approx_micros()
    by_type: dict[str, int] = {}
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise BadRequestData("history retention is empty")
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep:
            name, value = "*", item
        period = parse_duration(value.strip(), f"retention of {name or '*'}").approx_micros()
        if period <= 0:
            raise BadRequestData(f"retention of {name} must be longer than 0")
        name = name.strip()
        if name == "*":
            default = period
        elif not name or any(c in name for c in " ,;=()|"):
            raise BadRequestData(f"invalid type name in retention: {name!r:.80}")
        else:
            by_type[name] = period
    return default, by_type
