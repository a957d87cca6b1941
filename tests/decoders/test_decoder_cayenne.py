"""CayenneLPP decoder: golden vectors from the CayenneLPP reference documentation examples."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbis.decoders import cayenne
from urbis.decoders.base import DecodeError, EncodeError, Measurement


def test_two_temperature_sensors() -> None:
    out = cayenne.decode(bytes.fromhex("03 67 01 10 05 67 00 FF"))
    assert out == [
        Measurement("temperature_3", 27.2, unit="CEL", channel=3),
        Measurement("temperature_5", 25.5, unit="CEL", channel=5),
    ]


def test_temperature_then_acceleration_frames() -> None:
    assert cayenne.decode(bytes.fromhex("01 67 FF D7")) == [
        Measurement("temperature_1", -4.1, unit="CEL", channel=1)
    ]
    (accel,) = cayenne.decode(bytes.fromhex("06 71 04 D2 FB 2E 00 00"))
    assert accel.name == "accelerometer_6" and accel.channel == 6
    assert accel.value == {"x": 1.234, "y": -1.234, "z": 0}


def test_gps() -> None:
    (gps,) = cayenne.decode(bytes.fromhex("01 88 06 76 5F F2 96 0A 00 03 E8"))
    assert gps.name == "gps_1"
    assert gps.value == {"type": "Point", "coordinates": [-87.9094, 42.3519, 10]}


def test_hex_text_payload() -> None:
    assert cayenne.decode("0367011005 6700FF") == cayenne.decode(bytes.fromhex("03670110056700FF"))


def test_every_standard_type() -> None:
    frame = bytes.fromhex(
        "0000 01"  # digital in
        "0101 00"  # digital out
        "0202 FF38"  # analog in -2.00
        "0303 0190"  # analog out 4.00
        "0465 0400"  # illuminance 1024 lux
        "0566 01"  # presence
        "0668 61"  # humidity 48.5 %
        "0773 279D"  # barometer 1014.1 hPa (the reference example value)
        "0886 0064 FF9C 0000"  # gyrometer 1, -1, 0 deg/s
    )
    values = {m.name: (m.value, m.unit) for m in cayenne.decode(frame)}
    assert values == {
        "digital_in_0": (1, None),
        "digital_out_1": (0, None),
        "analog_in_2": (-2.0, None),
        "analog_out_3": (4.0, None),
        "luminosity_4": (1024, "LUX"),
        "presence_5": (1, None),
        "relative_humidity_6": (48.5, "P1"),
        "barometric_pressure_7": (1014.1, "A97"),
        "gyrometer_8": ({"x": 1.0, "y": -1.0, "z": 0.0}, "E96"),
    }


@pytest.mark.parametrize(
    ("hexa", "reason"),
    [
        ("", "syntax"),
        ("03", "truncated"),
        ("0367", "truncated"),
        ("036701", "truncated"),
        ("03FF00", "unknown_type"),
        ("zz", "encoding"),
    ],
)
def test_malformed(hexa: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        cayenne.decode(bytes.fromhex(hexa) if hexa != "zz" else hexa)
    assert info.value.reason == reason


def _value(kind: cayenne.LppType) -> st.SearchStrategy[Any]:
    if kind.name == "gps":
        return st.tuples(
            st.integers(-1_800_000, 1_800_000),
            st.integers(-900_000, 900_000),
            st.integers(-(10**6), 10**6),
        ).map(
            lambda t: {"type": "Point", "coordinates": [t[0] / 10_000, t[1] / 10_000, t[2] / 100]}
        )
    bits = kind.size * 8 if kind.size != 6 else 16
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if kind.signed else (0, 2**bits - 1)
    raw = st.integers(low, high).map(lambda r: r if kind.scale == 1 else r / kind.scale)
    if kind.size == 6:
        return st.fixed_dictionaries({"x": raw, "y": raw, "z": raw})
    return raw


_ITEM = st.sampled_from(sorted(cayenne.TYPES.values(), key=lambda t: t.code)).flatmap(
    lambda kind: st.tuples(st.integers(0, 255), st.just(kind.name), _value(kind))
)


@given(st.lists(_ITEM, min_size=1, max_size=8))
def test_encode_decode_round_trip(items: list[tuple[int, str, Any]]) -> None:
    out = cayenne.decode(cayenne.encode(items))
    assert [(m.channel, m.name.rsplit("_", 1)[0], m.value) for m in out] == items


def test_encode_refuses_out_of_range() -> None:
    with pytest.raises(EncodeError):
        cayenne.encode([(1, "temperature", 4000)])
    with pytest.raises(EncodeError):
        cayenne.encode([(300, "temperature", 1)])
    with pytest.raises(EncodeError):
        cayenne.encode([(1, "voltage", 1)])
