"""Temporal parameters, durations, times, history records and clipping (pure, property-based)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbis.context.errors import BadRequestData
from urbis.context.model import Entity
from urbis.context.temporal import (
    AGGR_METHODS,
    TIMERELS,
    TimeFilter,
    from_micros,
    instance_id,
    instance_key,
    parse_aggr_methods,
    parse_aggr_period,
    parse_duration,
    parse_retention,
    parse_time_filter,
    to_micros,
)
from urbis.context.temporal_agg import clip
from urbis.context.temporal_records import changes

S = 1_000_000
UNITS = {"W": 7 * 86400 * S, "D": 86400 * S, "H": 3600 * S, "M": 60 * S, "S": S}
small = st.integers(min_value=0, max_value=500)


@given(small, small, small, small, small, st.integers(0, 999_999))
def test_duration_components(w: int, d: int, h: int, m: int, s: int, us: int) -> None:
    text = f"P{w}W{d}DT{h}H{m}M{s}.{us:06d}S"
    expected = w * UNITS["W"] + d * UNITS["D"] + h * UNITS["H"] + m * UNITS["M"] + s * S + us
    assert parse_duration(text).micros == expected
    assert parse_aggr_period(f"P{d}D") == d * UNITS["D"]


@given(st.text(max_size=30))
def test_duration_never_crashes(text: str) -> None:
    try:
        parsed = parse_duration(text)
    except BadRequestData:
        return
    assert text.startswith("P") and parsed.micros >= 0


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "1D", "P1.5D", "PT1H1H", "P-1D",
                                  "p1d", "P1D ", "PT0.1234567S"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_duration(text)


def test_calendar_durations() -> None:
    assert parse_duration("P1Y2M").calendar
    assert parse_duration("P1Y2M").approx_micros() == (365 + 60) * UNITS["D"]
    with pytest.raises(BadRequestData):
        parse_aggr_period("P1M")
    assert parse_aggr_period(None) == 0


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31),
                    timezones=st.just(UTC)))
def test_times_round_trip(moment: datetime) -> None:
    micros = to_micros(moment.isoformat())
    assert to_micros(from_micros(micros)) == micros
    assert from_micros(micros).endswith("Z")


@pytest.mark.parametrize("text", ["", "yesterday", "2020-13-01T00:00:00Z", "2020-01-01",
                                  "2020-02-30T00:00:00Z"])
def test_bad_times(text: str) -> None:
    with pytest.raises(BadRequestData):
        to_micros(text)


PARAM = st.sampled_from([None, "2020-01-01T00:00:00Z", "2021-06-01T12:00:00+02:00", "x", ""])


@given(st.sampled_from([None, *TIMERELS, "during", ""]), PARAM, PARAM,
       st.sampled_from([None, "observedAt", "createdAt", "modifiedAt", "deletedAt"]),
       st.sampled_from([None, "1", "25", "0", "-1", "x"]))
def test_time_filter_accepts_only_consistent_parameters(
        timerel: Any, at: Any, end: Any, prop: Any, last_n: Any) -> None:
    params = {k: v for k, v in {"timerel": timerel, "timeAt": at, "endTimeAt": end,
                                "timeproperty": prop, "lastN": last_n}.items() if v is not None}
    try:
        parsed = parse_time_filter(params)
    except BadRequestData:
        return
    assert parsed.timerel in (None, *TIMERELS)
    assert (parsed.timerel is None) == (parsed.time_at is None)
    assert (parsed.timerel == "between") == (parsed.end_time_at is not None)
    low, high = parsed.bounds()
    if low is not None and high is not None:
        assert low < high
    assert parsed.last_n is None or parsed.last_n >= 1


@given(st.lists(st.sampled_from(AGGR_METHODS), min_size=1))
def test_aggr_methods(methods: list[str]) -> None:
    assert parse_aggr_methods(",".join(methods)) == list(dict.fromkeys(methods))
    assert parse_aggr_methods(methods) == list(dict.fromkeys(methods))


@given(st.lists(st.text(min_size=1, max_size=10), min_size=1))
def test_unknown_aggr_methods(methods: list[str]) -> None:
    try:
        parsed = parse_aggr_methods(",".join(methods))
    except BadRequestData:
        return
    assert set(parsed) <= set(AGGR_METHODS)


def test_retention() -> None:
    assert parse_retention("P7D") == (7 * UNITS["D"], {})
    assert parse_retention("Car=P1D, *=P1Y") == (365 * UNITS["D"], {"Car": UNITS["D"]})
    assert parse_retention("https://x.org/Bus=PT1H")[1] == {"https://x.org/Bus": UNITS["H"]}
    for bad in ("", "P0D", "Car=", "Car=1 day", "a b=P1D"):
        with pytest.raises(BadRequestData):
            parse_retention(bad)


def test_instance_ids() -> None:
    assert instance_key(instance_id(42)) == 42
    assert instance_key("urn:ngsi-ld:Instance:x") is None
    assert instance_key("urn:other:1") is None


def _entity(**attrs: Any) -> Entity:
    e = Entity("urn:ngsi-ld:Car:1", ["Car"], modified_at="2020-01-02T00:00:00Z")
    for name, value in attrs.items():
        e.attrs[name] = [{"type": "Property", "value": value}]
    return e


def test_changes_record_new_changed_and_deleted_instances() -> None:
    before = _entity(a=1, b=2, c=3)
    after = _entity(a=1, b=5, d=4)
    recs = changes(before, after, 0)
    assert [(r.attr, r.instance["value"], r.deleted) for r in recs] == [
        ("b", 5, False), ("d", 4, False), ("c", "urn:ngsi-ld:null", True)]
    assert recs[0].observed_at == to_micros("2020-01-02T00:00:00Z")
    assert [r.attr for r in changes(None, after, 0)] == ["a", "b", "d"]
    assert all(r.deleted for r in changes(before, None, 7))
    assert changes(before, before, 0) == []


times = st.lists(st.integers(0, 50), max_size=12).map(sorted)


@given(st.lists(times, min_size=1, max_size=4), st.integers(1, 5), st.booleans())
def test_clip_keeps_one_time_range(series: list[list[int]], limit: int, desc: bool) -> None:
    fetched = [[{"@t": t} for t in (s[::-1] if desc else s)][:limit + 1] for s in series]
    kept, truncated = clip(fetched, limit, desc)
    assert all(len(k) <= limit for k in kept)
    assert all([i["@t"] for i in k] == sorted(i["@t"] for i in k) for k in kept)
    if truncated is None:
        assert all(len(f) <= limit for f in fetched)
        return
    low, high = truncated
    assert all(low <= i["@t"] <= high for k in kept for i in k)
    assert any(len(k) == limit for k in kept)


def test_time_filter_bounds() -> None:
    assert TimeFilter("before", 10).bounds() == (None, 10)
    assert TimeFilter("after", 10).bounds() == (11, None)
    assert TimeFilter("between", 10, 20).bounds() == (10, 20)
    assert TimeFilter().bounds() == (None, None)
