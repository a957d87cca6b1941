"""UltraLight 2.0 decoder: golden vectors from the FIWARE iotagent-ul user manual."""

from __future__ import annotations

import pytest

from urbis.decoders import ultralight
from urbis.decoders.base import Command, CommandResult, DecodeError, EncodeError, Measurement


def test_measures_golden() -> None:
    assert ultralight.decode("t|15|k|abc") == [Measurement("t", "15"), Measurement("k", "abc")]


def test_measure_groups_are_numbered() -> None:
    assert ultralight.decode(b"gps|1.2/3.4#t|10") == [
        Measurement("gps", "1.2/3.4", group=0),
        Measurement("t", "10", group=1),
    ]


def test_timestamp_first_field() -> None:
    out = ultralight.decode("2016-06-13T00:35:30Z|lle|100")
    assert out == [Measurement("lle", "100", observed_at="2016-06-13T00:35:30Z")]


def test_timestamp_per_group_and_offset_normalised() -> None:
    out = ultralight.decode("2026-01-01T01:00:00+01:00|t|25#h|40\n")
    assert out[0].observed_at == "2026-01-01T00:00:00Z"
    assert out[1].observed_at is None and out[1].group == 1


def test_values_stay_text_and_keep_inner_characters() -> None:
    (m,) = ultralight.decode("msg|a=b@c d")
    assert m.value == "a=b@c d"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "syntax"),
        ("   ", "syntax"),
        ("t", "syntax"),
        ("t|1|h", "syntax"),
        ("|1", "syntax"),
        ("#", "syntax"),
        ("dev@cmd|ok", "syntax"),
        ("2016-13-45T00:00:00Z|t|1", "invalid_time"),
        (b"\xff\xfe", "encoding"),
        ("t|" + "x" * 300_000, "too_large"),
    ],
)
def test_malformed(payload: str | bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        ultralight.decode(payload)
    assert info.value.reason == reason


def test_command_golden() -> None:
    cmd = ultralight.parse_command("weatherStation167@ping|param1=1|param2=2")
    assert cmd == Command("weatherStation167", "ping", {"param1": "1", "param2": "2"})
    assert ultralight.parse_command("dev1@reset") == Command("dev1", "reset", None)
    assert ultralight.parse_command("dev1@on|fast") == Command("dev1", "on", "fast")


def test_command_result_golden() -> None:
    result = ultralight.parse_command_result("weatherStation167@ping|Ping ok")
    assert result == CommandResult("weatherStation167", "ping", "Ping ok")
    assert ultralight.is_command_result("weatherStation167@ping|Ping ok")
    assert not ultralight.is_command_result("t|1")


@pytest.mark.parametrize("bad", ["@ping|x", "dev@|x", "noat|x", ""])
def test_bad_command(bad: str) -> None:
    with pytest.raises(DecodeError):
        ultralight.parse_command_result(bad)


def test_format_command_round_trip() -> None:
    text = ultralight.format_command("weatherStation167", "ping", {"param1": 1, "param2": True})
    assert text == "weatherStation167@ping|param1=1|param2=true"
    assert ultralight.parse_command(text).params == {"param1": "1", "param2": "true"}
    assert ultralight.format_command("d", "on") == "d@on"
    assert ultralight.format_command("d", "set", 21.5) == "d@set|21.5"
    assert ultralight.format_command_result("d", "set", "OK") == "d@set|OK"


@pytest.mark.parametrize(
    ("device", "command", "params"),
    [("d|x", "c", None), ("d", "c#", None), ("d", "c", {"a|b": 1}), ("d", "c", [1]), ("", "c", 1)],
)
def test_format_command_refuses_reserved(device: str, command: str, params: object) -> None:
    with pytest.raises(EncodeError):
        ultralight.format_command(device, command, params)


def test_format_measures_round_trip() -> None:
    text = ultralight.format_measures({"t": 25.3, "on": False}, "2026-01-01T00:00:00Z")
    assert text == "2026-01-01T00:00:00Z|t|25.3|on|false"
    assert [m.value for m in ultralight.decode(text)] == ["25.3", "false"]


def test_single_measure_topic() -> None:
    assert ultralight.decode_single("t", b"25\n") == [Measurement("t", "25")]
