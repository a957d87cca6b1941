"""JSON measures decoder (FIWARE iotagent-json payloads)."""

from __future__ import annotations

import pytest

from urbis.decoders import json_measures
from urbis.decoders.base import Command, CommandResult, DecodeError, EncodeError, Measurement


def test_flat_object_golden() -> None:
    out = json_measures.decode(b'{"h": "45%", "t": "23", "l": "1570"}')
    assert out == [Measurement("h", "45%"), Measurement("t", "23"), Measurement("l", "1570")]


def test_types_are_kept_and_structured_values_allowed() -> None:
    out = json_measures.decode(
        '{"t": 23.5, "on": true, "pos": {"type": "Point", "coordinates": [1, 2]}}'
    )
    assert [m.value for m in out] == [23.5, True, {"type": "Point", "coordinates": [1, 2]}]


def test_multimeasure_array_and_time_instant() -> None:
    payload = '[{"t": 1, "TimeInstant": "2020-01-01T01:00:00+01:00"}, {"t": 2}]'
    assert json_measures.decode(payload) == [
        Measurement("t", 1, observed_at="2020-01-01T00:00:00Z", group=0),
        Measurement("t", 2, group=1),
    ]


def test_custom_timestamp_key() -> None:
    out = json_measures.decode('{"ts": "2020-01-01T00:00:00Z", "t": 1}', timestamp_key="ts")
    assert out == [Measurement("t", 1, observed_at="2020-01-01T00:00:00Z")]


def test_empty_object_is_no_measure() -> None:
    assert json_measures.decode("{}") == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "syntax"),
        ("{", "syntax"),
        ("42", "syntax"),
        ('"text"', "syntax"),
        ("[1, 2]", "syntax"),
        ('{"": 1}', "syntax"),
        ('{"t": NaN}', "syntax"),
        ('{"TimeInstant": 12}', "invalid_time"),
        ('{"TimeInstant": "yesterday"}', "invalid_time"),
        ("[" * 2000 + "]" * 2000, "syntax"),
        ("[" + ",".join(["{}"] * 1001) + "]", "too_large"),
    ],
)
def test_malformed(payload: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        json_measures.decode(payload)
    assert info.value.reason == reason


def test_commands() -> None:
    assert json_measures.format_command("ping", {"data": "22"}) == b'{"ping":{"data":"22"}}'
    assert json_measures.parse_command('{"ping": {"data": "22"}}', "dev1") == Command(
        "dev1", "ping", {"data": "22"}
    )
    assert json_measures.parse_command_results('{"ping": "1234567890"}', "dev1") == [
        CommandResult("dev1", "ping", "1234567890")
    ]
    with pytest.raises(DecodeError):
        json_measures.parse_command_results("[]")
    with pytest.raises(DecodeError):
        json_measures.parse_command('{"a": 1, "b": 2}')
    with pytest.raises(EncodeError):
        json_measures.format_command("x", object())


def test_single_value_topic() -> None:
    assert json_measures.decode_single("t", b"23.5") == [Measurement("t", 23.5)]
    assert json_measures.decode_single("s", b"on ") == [Measurement("s", "on")]
    with pytest.raises(DecodeError):
        json_measures.decode_single("s", b"\xff")
