"""The provisioning API of the IoT agent, compatible with the FIWARE IoT Agent's.

    POST|GET|PUT|DELETE /iot/services      (PUT and DELETE select by ?apikey=&resource=)
    POST|GET /iot/devices, GET|PUT|DELETE /iot/devices/{device_id}
    GET /iot/deadletter                    (urbis: rejected measures; ?summary=true counts)
    GET /iot/about

`fiware-service` is the tenant and `fiware-servicepath` the service path (`/*` on reads: every
path). Creations answer 201, changes and deletions 204, errors {"name", "message"}.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis import __version__
from urbis.api.iota.common import (
    actor_of,
    agent,
    int_param,
    json_body,
    read_json,
    service_path,
)
from urbis.context.device_parse import device_json, group_json


async def create_services(request: Request) -> Response:
    """POST /iot/services."""
    body = await read_json(request)
    await agent(request).devices.create_groups(actor_of(request), body, service_path(request))
    return Response(status_code=201)


async def list_services(request: Request) -> Response:
    """GET /iot/services: {"count", "services"}."""
    q = request.query_params
    groups, count = await agent(request).devices.list_groups(
        actor_of(request), service_path(request), q.get("apikey"), q.get("resource"),
        int_param(request, "limit"), int_param(request, "offset") or 0)
    return json_body({"count": count, "services": [group_json(g) for g in groups]})


async def update_service(request: Request) -> Response:
    """PUT /iot/services?apikey=&resource=."""
    body = await read_json(request)
    q = request.query_params
    await agent(request).devices.update_group(actor_of(request), q.get("apikey"),
                                              q.get("resource"), body, service_path(request))
    return Response(status_code=204)


async def delete_service(request: Request) -> Response:
    """DELETE /iot/services?apikey=&resource=[&device=true]."""
    q = request.query_params
    await agent(request).devices.delete_group(
        actor_of(request), q.get("apikey"), q.get("resource"), service_path(request),
        devices=q.get("device", "").lower() == "true")
    return Response(status_code=204)


async def create_devices(request: Request) -> Response:
    """POST /iot/devices."""
    body = await read_json(request)
    await agent(request).devices.create_devices(actor_of(request), body, service_path(request))
    return Response(status_code=201)


async def list_devices(request: Request) -> Response:
    """GET /iot/devices: {"count", "devices"}."""
    devices, count = await agent(request).devices.list_devices(
        actor_of(request), service_path(request), int_param(request, "limit"),
        int_param(request, "offset") or 0)
    return json_body({"count": count, "devices": [device_json(d) for d in devices]})


async def get_device(request: Request) -> Response:
    """GET /iot/devices/{device_id}."""
    device = await agent(request).devices.get_device(
        actor_of(request), request.path_params["device_id"], service_path(request))
    return json_body(device_json(device))


async def update_device(request: Request) -> Response:
    """PUT /iot/devices/{device_id}."""
    body = await read_json(request)
    await agent(request).devices.update_device(
        actor_of(request), request.path_params["device_id"], body, service_path(request))
    return Response(status_code=204)


async def delete_device(request: Request) -> Response:
    """DELETE /iot/devices/{device_id}."""
    await agent(request).devices.delete_device(
        actor_of(request), request.path_params["device_id"], service_path(request))
    return Response(status_code=204)


async def dead_letters(request: Request) -> Response:
    """GET /iot/deadletter[?device_id=&reason=&limit=] or ?summary=true."""
    q = request.query_params
    log = agent(request).dead_letters
    if q.get("summary", "").lower() == "true":
        counts = await log.summary(actor_of(request))
        return json_body({"count": len(counts), "summary": counts})
    letters = await log.entries(actor_of(request), q.get("device_id"), q.get("reason"),
                                int_param(request, "limit") or 100)
    return json_body({"count": len(letters), "deadletters": [x.to_json() for x in letters]})


async def about(request: Request) -> Response:
    """GET /iot/about: what this agent is."""
    settings = request.app.state.settings
    return json_body({"libVersion": f"urbis {__version__}", "port": str(settings.iota_port),
                      "baseRoot": "/", "version": __version__})


routes = [
    Route("/iot/services", create_services, methods=["POST"]),
    Route("/iot/services", list_services, methods=["GET"]),
    Route("/iot/services", update_service, methods=["PUT"]),
    Route("/iot/services", delete_service, methods=["DELETE"]),
    Route("/iot/devices", create_devices, methods=["POST"]),
    Route("/iot/devices", list_devices, methods=["GET"]),
    Route("/iot/devices/{device_id}", get_device, methods=["GET"]),
    Route("/iot/devices/{device_id}", update_device, methods=["PUT"]),
    Route("/iot/devices/{device_id}", delete_device, methods=["DELETE"]),
    Route("/iot/deadletter", dead_letters, methods=["GET"]),
    Route("/iot/about", about, methods=["GET"]),
]
