"""LoRaWAN network server uplinks: The Things Stack v3 webhooks and ChirpStack v4 events."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from urbis.decoders import cayenne, lorawan
from urbis.decoders.base import DecodeError, Measurement

FRAME = bytes.fromhex("03670110056700FF")

TTS_UPLINK: dict[str, Any] = {  # shape of The Things Stack v3 `uplink_message` webhook bodies
    "end_device_ids": {
        "device_id": "eui-0004a30b001c0530",
        "application_ids": {"application_id": "city-sensors"},
        "dev_eui": "0004A30B001C0530",
        "join_eui": "800000000000000C",
        "dev_addr": "00BCB929",
    },
    "correlation_ids": ["as:up:01E0WKXD2A3Q5RXYRXB13EHDF4"],
    "received_at": "2020-02-12T15:15:45.787Z",
    "uplink_message": {
        "session_key_id": "AXA50...",
        "f_port": 2,
        "f_cnt": 2,
        "frm_payload": base64.b64encode(FRAME).decode(),
        "decoded_payload": {"temperature_3": 27.2, "temperature_5": 25.5},
        "rx_metadata": [{"gateway_ids": {"gateway_id": "gw1"}, "rssi": -35, "snr": 5.2}],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}},
        "received_at": "2020-02-12T15:15:45.787314592Z",
        "consumed_airtime": "0.056576s",
    },
}

CHIRPSTACK_UPLINK: dict[str, Any] = {  # shape of ChirpStack v4 `up` integration events
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2022-07-18T09:34:15.775023242+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Test device-profile",
        "deviceName": "Test device",
        "devEui": "0101010101010101",
        "tags": {"key": "value"},
    },
    "devAddr": "00189440",
    "dr": 1,
    "fPort": 1,
    "fCnt": 10,
    "data": base64.b64encode(FRAME).decode(),
    "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -57, "snr": 10}],
    "txInfo": {"frequency": 867100000, "modulation": {"lora": {"bandwidth": 125000}}},
}


def test_tts_uplink() -> None:
    up = lorawan.parse_uplink(orjson.dumps(TTS_UPLINK))
    assert up == lorawan.Uplink(
        network="ttn",
        device_id="eui-0004a30b001c0530",
        dev_eui="0004A30B001C0530",
        application_id="city-sensors",
        received_at="2020-02-12T15:15:45.787314Z",
        f_port=2,
        f_cnt=2,
        payload=FRAME,
        decoded={"temperature_3": 27.2, "temperature_5": 25.5},
    )


def test_chirpstack_uplink() -> None:
    up = lorawan.parse_uplink(CHIRPSTACK_UPLINK)
    assert up.network == "chirpstack" and up.device_id == "0101010101010101"
    assert up.device_name == "Test device" and up.f_port == 1 and up.f_cnt == 10
    assert up.received_at == "2022-07-18T09:34:15.775023Z"
    assert up.payload == FRAME and up.decoded is None


def test_measurements_with_decoder_are_stamped() -> None:
    up = lorawan.parse_chirpstack(CHIRPSTACK_UPLINK)
    out = lorawan.measurements(up, cayenne.decode)
    assert out[0] == Measurement(
        "temperature_3", 27.2, unit="CEL", channel=3, observed_at="2022-07-18T09:34:15.775023Z"
    )


def test_measurements_from_server_decoded_payload() -> None:
    up = lorawan.parse_tts(TTS_UPLINK)
    out = lorawan.measurements(up)
    assert [(m.name, m.value, m.observed_at) for m in out] == [
        ("temperature_3", 27.2, "2020-02-12T15:15:45.787314Z"),
        ("temperature_5", 25.5, "2020-02-12T15:15:45.787314Z"),
    ]


def test_no_decoder_no_decoded_payload() -> None:
    body = {**CHIRPSTACK_UPLINK}
    with pytest.raises(DecodeError) as info:
        lorawan.measurements(lorawan.parse_uplink(body))
    assert info.value.reason == "unsupported"


def test_empty_frm_payload_and_port_zero_omitted() -> None:
    message = {
        k: v for k, v in TTS_UPLINK["uplink_message"].items() if k not in ("f_port", "frm_payload")
    }
    up = lorawan.parse_tts({**TTS_UPLINK, "uplink_message": message})
    assert up.payload == b"" and up.f_port is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("end_device_ids"),
        lambda b: b["end_device_ids"].pop("device_id"),
        lambda b: b["uplink_message"].update(frm_payload="not base64!"),
        lambda b: b["uplink_message"].update(f_port="2"),
        lambda b: b["uplink_message"].update(f_cnt=-1),
        lambda b: b["uplink_message"].update(decoded_payload=[1]),
        lambda b: b["uplink_message"].update(received_at="soon"),
        lambda b: b.update(uplink_message="x"),
    ],
)
def test_malformed_tts(mutate: Any) -> None:
    body = orjson.loads(orjson.dumps(TTS_UPLINK))
    mutate(body)
    with pytest.raises(DecodeError):
        lorawan.parse_uplink(body)


@pytest.mark.parametrize(
    "body", [b"[]", b"{}", b"nope", b'{"deviceInfo": {}}', b'{"deviceInfo": 1}']
)
def test_malformed_any(body: bytes) -> None:
    with pytest.raises(DecodeError):
        lorawan.parse_uplink(body)
