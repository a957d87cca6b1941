"""Property tests: any input gives measurements or DecodeError from every decoder."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbis.decoders import json_measures, lorawan, senml, ultralight
from urbis.decoders.base import DecodeError, Measurement
from urbis.decoders.registry import decoder_names, get_decoder, register_decoder

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
SENML_KEYS = st.sampled_from(
    ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut", "x_"]
)
SENML_RECORD = st.dictionaries(
    SENML_KEYS, st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
)


def _only_decode_error(decode: Any, payload: Any) -> None:
    try:
        out = decode(payload)
    except DecodeError as exc:
        assert exc.reason and str(exc)
        return
    assert isinstance(out, list) and all(isinstance(m, Measurement) for m in out)


@pytest.mark.parametrize("name", decoder_names())
@given(payload=st.binary(max_size=64) | st.text(max_size=64))
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_registered_decoders_raise_decode_error_only(name: str, payload: bytes | str) -> None:
    _only_decode_error(get_decoder(name), payload)


@given(st.text(alphabet="ab|#@=T:-0123456789Z \n", max_size=40))
def test_ultralight_grammar_soup(text: str) -> None:
    _only_decode_error(ultralight.decode, text)
    for parse in (ultralight.parse_command, ultralight.parse_command_result):
        try:
            parse(text)
        except DecodeError:
            pass


@given(JSON)
def test_json_measures_any_json(value: Any) -> None:
    _only_decode_error(json_measures.decode, json.dumps(value))


@given(st.lists(SENML_RECORD, max_size=5))
def test_senml_any_records(records: list[dict[str, Any]]) -> None:
    payload = json.dumps(records)
    _only_decode_error(lambda p: senml.decode(p, now=1e9), payload)


@given(JSON)
def test_lorawan_any_json(value: Any) -> None:
    for wrap in (value, {"end_device_ids": value, "uplink_message": value}, {"deviceInfo": value}):
        try:
            lorawan.parse_uplink(json.dumps(wrap))
        except DecodeError:
            pass


def test_registry() -> None:
    assert get_decoder("UL") is ultralight.decode
    assert get_decoder("cayenne") is get_decoder("cayennelpp")
    with pytest.raises(KeyError, match="known"):
        get_decoder("nope")
    with pytest.raises(ValueError):
        register_decoder("json", json_measures.decode)
