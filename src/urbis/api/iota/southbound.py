"""The HTTP southbound of the IoT agent: devices send measures (FIWARE IoT Agent JSON and UL).

    POST /iot/json?k=<apikey>&i=<device_id>[&t=<time>]   JSON measures (iotagent-json)
    POST /iot/json/attrs/<name>?k=&i=                    one measure, its value as the body
    POST /iot/d?k=&i=[&t=]                               UltraLight 2.0 (iotagent-ul)
    GET  /iot/d?k=&i=&d=<payload>                        UltraLight in the query
    GET  /iot/d?k=&i=&getCmd=1                           pending commands (polling devices)
    POST /iot/d?k=&i=  `<device>@<cmd>|<result>`         a polling device's command answer

A device's provisioned `payload_decoder` (e.g. `senml`, `cayennelpp`) takes precedence over the
format of the path. 200 means the measures are durable; 404 DEVICE_GROUP_NOT_FOUND (unknown
apikey) or DEVICE_NOT_FOUND (unknown device, no autoprovision), 400 for a payload that does not
decode or a value that does not fit, 413 over 256 KiB, 503 when the agent is overloaded or the
store unavailable (retry). The apikey is the device's credential, as with FIWARE: no platform
authentication runs on this port.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.agents.ingest import Rejected, Uplink
from urbis.api.iota.common import agent, fiware_response
from urbis.context.devices import fiware
from urbis.context.errors import BadRequestData, NgsiError, ResourceNotFound, ServiceUnavailable
from urbis.context.model import now_iso
from urbis.decoders import ultralight
from urbis.decoders.base import DecodeError

_NAMES = {"unknown_apikey": (ResourceNotFound, "DEVICE_GROUP_NOT_FOUND"),
          "unknown_device": (ResourceNotFound, "DEVICE_NOT_FOUND"),
          "overloaded": (ServiceUnavailable, "SERVICE_UNAVAILABLE"),
          "store_error": (ServiceUnavailable, "SERVICE_UNAVAILABLE")}


def rejection(err: Rejected) -> NgsiError:
    """The HTTP error of a rejected message."""
    kind, name = _NAMES.get(err.reason, (BadRequestData, "BAD_REQUEST"))
    error = fiware(kind, name, err.detail)
    error.extra["reason"] = err.reason
    error.status = err.status
    return error


async def _ingest(request: Request, fmt: str, payload: bytes | str, attr: str | None = None
                  ) -> Response:
    q = request.query_params
    apikey, device_id = q.get("k"), q.get("i")
    if not apikey or not device_id:
        raise fiware(BadRequestData, "MANDATORY_PARAMS_NOT_FOUND",
                     "Some of the mandatory params weren't found in the request: k (apikey) "
                     "and i (device id)")
    resource = request.url.path.split("/attrs/")[0]
    uplink = Uplink(apikey, device_id, payload, format=fmt, attr=attr, timestamp=q.get("t"),
                    transport="http", resource=resource, received_at=now_iso())
    try:
        await agent(request).ingest.submit(uplink)
    except Rejected as err:
        return fiware_response(rejection(err), {"Retry-After": "1"} if err.status == 503 else None)
    return Response(status_code=200)


async def post_json(request: Request) -> Response:
    """POST /iot/json."""
    return await _ingest(request, "json", await request.body())


async def post_json_attr(request: Request) -> Response:
    """POST /iot/json/attrs/{attr}."""
    return await _ingest(request, "json", await request.body(), request.path_params["attr"])


async def post_ul(request: Request) -> Response:
    """POST /iot/d: measures, or a command answer (`<device>@<cmd>|<result>`)."""
    body = await request.body()
    if ultralight.is_command_result(body):
        return await _command_results(request, body)
    response = await _ingest(request, "ultralight", body)
    return await _with_commands(request, response)


async def get_ul(request: Request) -> Response:
    """GET /iot/d?d=<payload>, and/or getCmd=1: the device's pending commands."""
    payload = request.query_params.get("d")
    if payload is None and request.query_params.get("getCmd") == "1":
        _mandatory(request)
        return await _with_commands(request, Response(status_code=200))
    if payload is None:
        raise fiware(BadRequestData, "MANDATORY_PARAMS_NOT_FOUND",
                     "Some of the mandatory params weren't found in the request: d (payload)")
    return await _with_commands(request, await _ingest(request, "ultralight", payload))


def _mandatory(request: Request) -> tuple[str, str]:
    apikey, device_id = request.query_params.get("k"), request.query_params.get("i")
    if not apikey or not device_id:
        raise fiware(BadRequestData, "MANDATORY_PARAMS_NOT_FOUND",
                     "Some of the mandatory params weren't found in the request: k (apikey) "
                     "and i (device id)")
    return apikey, device_id


async def _with_commands(request: Request, response: Response) -> Response:
    """With getCmd=1, a 200 answer carries the device's pending commands (UltraLight)."""
    if request.query_params.get("getCmd") != "1" or response.status_code != 200:
        return response
    apikey, device_id = _mandatory(request)
    text = await agent(request).commands.poll(apikey, device_id)
    return Response(text, status_code=200, media_type="text/plain")


async def _command_results(request: Request, body: bytes) -> Response:
    apikey, device_id = _mandatory(request)
    try:
        known = await agent(request).commands.http_results(apikey, device_id, body)
    except DecodeError as err:
        raise fiware(BadRequestData, "BAD_REQUEST", err.message) from None
    if not known:
        raise fiware(ResourceNotFound, "DEVICE_NOT_FOUND",
                     f"No device was found with id:{device_id}")
    return Response(status_code=200)


routes = [
    Route("/iot/json", post_json, methods=["POST"]),
    Route("/iot/json/attrs/{attr}", post_json_attr, methods=["POST"]),
    Route("/iot/d", post_ul, methods=["POST"]),
    Route("/iot/d", get_ul, methods=["GET"]),
]
