"""SenML decoder: golden vectors from RFC 8428 clause 5 and the resolution rules of clause 4.6."""

from __future__ import annotations

import pytest

from urbis.decoders import senml
from urbis.decoders.base import DecodeError, Measurement

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_single_datapoint() -> None:  # RFC 8428 clause 5.1.1
    out = senml.decode('[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]', now=NOW)
    assert out == [Measurement("urn:dev:ow:10e2073a01080063", 23.1, unit="CEL", source_unit="Cel")]


def test_multiple_datapoints() -> None:  # clause 5.1.2
    pack = """[
      {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
      {"n":"current","u":"A","v":1.2}]"""
    out = senml.decode(pack, now=NOW)
    assert [(m.name, m.value, m.unit) for m in out] == [
        ("urn:dev:ow:10e2073a01080063:voltage", 120.1, "VLT"),
        ("urn:dev:ow:10e2073a01080063:current", 1.2, "AMP"),
    ]
    short = senml.decode(pack, now=NOW, relative_names=True)
    assert [m.name for m in short] == ["voltage", "current"]


def test_multiple_measurements_resolved_times() -> None:  # clause 5.1.3 and its resolved form
    pack = """[
      {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
       "bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},
      {"n":"current","t":-5,"v":1.2},
      {"n":"current","t":-4,"v":1.3},
      {"n":"current","t":-3,"v":1.4},
      {"n":"current","t":-2,"v":1.5},
      {"n":"current","t":-1,"v":1.6},
      {"n":"current","v":1.7}]"""
    out = senml.decode(pack, now=NOW)
    assert out[0] == Measurement(
        "urn:dev:ow:10e2073a0108006:voltage",
        120.1,
        unit="VLT",
        observed_at="2010-06-08T18:01:16.001Z",
        source_unit="V",
    )
    assert [m.observed_at for m in out[1:]] == [
        "2010-06-08T18:01:11.001Z",
        "2010-06-08T18:01:12.001Z",
        "2010-06-08T18:01:13.001Z",
        "2010-06-08T18:01:14.001Z",
        "2010-06-08T18:01:15.001Z",
        "2010-06-08T18:01:16.001Z",
    ]
    assert {m.unit for m in out[1:]} == {"AMP"}  # the base unit
    assert [m.value for m in out[1:]] == [1.2, 1.3, 1.4, 1.5, 1.6, 1.7]


def test_base_name_alone_and_non_cefact_units() -> None:  # clause 5.1.4 (first records)
    pack = """[
      {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,"bu":"%RH","v":20},
      {"u":"lon","v":24.30621},
      {"u":"lat","v":60.07965},
      {"t":60,"v":20.3}]"""
    out = senml.decode(pack, now=NOW)
    assert {m.name for m in out} == {"urn:dev:ow:10e2073a01080063"}
    assert [(m.value, m.unit, m.source_unit) for m in out] == [
        (20, "P1", "%RH"),
        (24.30621, None, "lon"),
        (60.07965, None, "lat"),
        (20.3, "P1", "%RH"),
    ]
    assert out[0].observed_at == "2011-10-31T13:24:24Z"
    assert out[3].observed_at == "2011-10-31T13:25:24Z"


def test_multiple_data_types() -> None:  # clause 5.1.6
    pack = """[
      {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
      {"n":"label","vs":"Machine Room"},
      {"n":"open","vb":false},
      {"n":"nfc-reader","vd":"aGkgCg"}]"""
    values = [m.value for m in senml.decode(pack, now=NOW)]
    assert values == [23.1, "Machine Room", False, "aGkgCg"]


def test_relative_time_uses_now() -> None:
    (m,) = senml.decode('[{"n":"t","v":1,"t":-10}]', now=NOW)
    assert m.observed_at == "2023-11-14T22:13:10Z"
    (m,) = senml.decode('[{"n":"t","v":1}]', now=NOW)
    assert m.observed_at is None  # no time at all: the receiver stamps it


def test_base_value_and_sum() -> None:
    out = senml.decode('[{"bn":"m:","bv":100,"bs":1000,"n":"e","u":"kWh","v":5,"s":7}]', now=NOW)
    assert [(m.name, m.value, m.unit) for m in out] == [
        ("m:e", 105, "KWH"),
        ("m:e_sum", 1007, "KWH"),
    ]


def test_base_only_record_is_skipped() -> None:
    out = senml.decode('[{"bn":"dev:","bu":"Cel"},{"n":"t","v":21}]', now=NOW)
    assert out == [Measurement("dev:t", 21, unit="CEL", group=1, source_unit="Cel")]


@pytest.mark.parametrize(
    ("pack", "reason"),
    [
        ('{"n":"a","v":1}', "syntax"),
        ("[1]", "syntax"),
        ('[{"n":"a"}]', "invalid_value"),
        ('[{"n":"a","v":1,"vs":"x"}]', "invalid_value"),
        ('[{"n":"a b","v":1}]', "invalid_value"),
        ('[{"n":"-a","v":1}]', "invalid_value"),
        ('[{"v":1}]', "invalid_value"),
        ('[{"n":"a","v":"1"}]', "invalid_value"),
        ('[{"n":"a","vb":1}]', "invalid_value"),
        ('[{"n":1,"v":1}]', "invalid_value"),
        ('[{"n":"a","v":1e308,"bv":1e308}]', "invalid_value"),
        ('[{"n":"a","v":1,"bver":11}]', "unsupported"),
        ('[{"n":"a","v":1,"bver":"5"}]', "invalid_value"),
        ('[{"n":"a","v":1,"new_":1}]', "unsupported"),
        ('[{"n":"a","vd":"***"}]', "encoding"),
        ('[{"n":"a","v":1,"t":1e300}]', "invalid_time"),
    ],
)
def test_malformed(pack: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        senml.decode(pack, now=NOW)
    assert info.value.reason == reason


def test_unit_table_is_cefact_shaped() -> None:
    assert senml.SENML_TO_CEFACT["Cel"] == "CEL"
    assert senml.SENML_TO_CEFACT["%RH"] == "P1"
    assert all(1 <= len(code) <= 3 for code in senml.SENML_TO_CEFACT.values())
