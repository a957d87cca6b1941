"""Provisioning bodies and helpers shared by the IoT agent tests."""

from __future__ import annotations

from typing import Any

import httpx

CITY = {"fiware-service": "city", "fiware-servicepath": "/"}

THERMOMETERS = {
    "apikey": "k1", "resource": "/iot/d", "entity_type": "Thermometer", "cbroker": "http://x",
    "attributes": [
        {"object_id": "t", "name": "temperature", "type": "Number",
         "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}},
        {"object_id": "s", "name": "status", "type": "Text"},
    ],
    "static_attributes": [
        {"name": "category", "type": "Text", "value": "sensor"},
        {"name": "location", "type": "geo:json",
         "value": {"type": "Point", "coordinates": [-3.7, 40.4]}},
    ],
}


async def provision(iota: httpx.AsyncClient, groups: list[dict[str, Any]] | None = None,
                    devices: list[dict[str, Any]] | None = None,
                    headers: dict[str, str] | None = None) -> None:
    """Create groups and devices, failing the test unless both answer 201."""
    headers = headers or CITY
    if groups:
        r = await iota.post("/iot/services", json={"services": groups}, headers=headers)
        assert r.status_code == 201, r.text
    if devices:
        r = await iota.post("/iot/devices", json={"devices": devices}, headers=headers)
        assert r.status_code == 201, r.text
