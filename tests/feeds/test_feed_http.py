"""Sources served over loopback HTTP by a real aiohttp server: conditional requests, gzip,
GeoJSON and GTFS zips, errors (status, unreachable, timeout, too large)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import socket
import zipfile
from typing import Any

import httpx
from aiohttp import web
from feedkit import DATA, MOBILITY, PARKING, Served, count, example, read

from urbis.agents.feed_definition import FeedDefinition
from urbis.agents.feed_fetch import Validators
from urbis.agents.feed_schedule import FeedService
from urbis.context.actor import Actor

ADMIN = Actor(principal="test")
BATH = (DATA / "bath_carparks_sample.csv").read_bytes()
TAG = '"' + hashlib.sha256(BATH).hexdigest()[:16] + '"'


async def _bath(request: web.Request) -> web.Response:
    if request.headers.get("If-None-Match") == TAG:
        return web.Response(status=304, headers={"ETag": TAG})
    return web.Response(body=BATH, content_type="text/csv",
                        headers={"ETag": TAG, "Last-Modified": "Sat, 01 Oct 2016 00:00:00 GMT"})


async def test_csv_over_http_with_etag(feeds: FeedService, server: Served,
                                       client: httpx.AsyncClient) -> None:
    server.routes["/parking.csv"] = _bath
    definition = example("bath-parking", source=server.at("/parking.csv"))
    first = await feeds.run_definition(ADMIN, definition)
    assert (first.outcome, first.written, first.bytes) == ("ok", 21, len(BATH))
    assert first.validators == Validators(hashlib.sha256(BATH).hexdigest(), TAG,
                                          "Sat, 01 Oct 2016 00:00:00 GMT")
    assert await count(client, "OffStreetParking", PARKING) == 7
    from urbis.agents.feeds import run_feed

    tm = await feeds.contexts.term_map(definition.context)
    again = await run_feed(definition, feeds.batch, ADMIN, tm, first.validators)
    assert (again.outcome, again.written) == ("unchanged", 0)
    sent = server.requests[-1].headers
    assert sent["If-None-Match"] == TAG
    assert sent["If-Modified-Since"] == "Sat, 01 Oct 2016 00:00:00 GMT"
    assert sent["User-Agent"] == "urbis-feeds"


async def test_same_bytes_without_validators_are_unchanged(feeds: FeedService,
                                                           server: Served) -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(body=BATH, content_type="text/csv")

    server.routes["/plain.csv"] = plain
    definition = example("bath-parking", source=server.at("/plain.csv"))
    tm = await feeds.contexts.term_map(definition.context)
    from urbis.agents.feeds import run_feed

    first = await run_feed(definition, feeds.batch, ADMIN, tm)
    again = await run_feed(definition, feeds.batch, ADMIN, tm, first.validators)
    assert (first.outcome, again.outcome) == ("ok", "unchanged")


async def test_gzip_file_and_gzip_encoding(feeds: FeedService, server: Served) -> None:
    async def gz_file(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(BATH), content_type="application/gzip")

    async def gz_encoded(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(BATH), content_type="text/csv",
                            headers={"Content-Encoding": "gzip"})

    server.routes["/parking.csv.gz"] = gz_file
    server.routes["/encoded.csv"] = gz_encoded
    for path in ("/parking.csv.gz", "/encoded.csv"):
        report = await feeds.run_definition(ADMIN, example("bath-parking",
                                                           source=server.at(path)))
        assert (report.outcome, report.written) == ("ok", 21), report.to_json()


async def test_geojson_over_http(feeds: FeedService, server: Served,
                                 client: httpx.AsyncClient) -> None:
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "b1", "properties": {"name": "Bench 1", "seats": "4"},
         "geometry": {"type": "Point", "coordinates": [-2.36, 51.38]}},
        {"type": "Feature", "id": "b2", "properties": {"name": "Bench 2", "seats": "many"},
         "geometry": {"type": "Point", "coordinates": [-2.37, 51.39]}},
        {"type": "Feature", "id": "b3", "properties": {"name": "Bench 3"},
         "geometry": {"type": "Point", "coordinates": [500, 51.39]}},
    ]}

    async def geo(request: web.Request) -> web.Response:
        return web.json_response(collection)

    server.routes["/benches.geojson"] = geo
    definition = FeedDefinition.from_dict({
        "name": "benches", "source": server.at("/benches.geojson"), "tenant": "parks",
        "mapping": {"type": "Bench", "id": "urn:ngsi-ld:Bench:{id}", "location": "geometry",
                    "attributes": {"name": "name", "seats": {"source": "seats",
                                                             "type": "integer"}}}})
    report = await feeds.run_definition(ADMIN, definition)
    assert (report.outcome, report.written, report.rejected) == ("partial", 1, 2)
    assert [r.record for r in report.rejections] == [2, 3]
    bench = await read(client, "urn:ngsi-ld:Bench:b1", PARKING, tenant="parks")
    assert bench["location"]["value"]["coordinates"] == [-2.36, 51.38]


async def test_gtfs_zip_over_http(feeds: FeedService, server: Served,
                                  client: httpx.AsyncClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in (DATA / "gtfs-caltrain-sample").iterdir():
            archive.write(file, file.name)

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=buffer.getvalue(), content_type="application/zip")

    server.routes["/gtfs.zip"] = feed
    report = await feeds.run_definition(ADMIN, example("caltrain-gtfs",
                                                       source=server.at("/gtfs.zip")))
    assert (report.outcome, report.written) == ("ok", 34)
    agency = await read(client, "urn:ngsi-ld:GtfsAgency:caltrain:CT", MOBILITY)
    assert agency["source"]["value"] == server.at("/gtfs.zip")


async def test_http_errors(feeds: FeedService, server: Served) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=BATH)

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the cap applies while reading
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 10_000)
        return response

    server.routes.update({"/broken.csv": broken, "/slow.csv": slow, "/huge.csv": huge})
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/broken.csv", {}, "HTTP 503"), ("/missing.csv", {}, "HTTP 404"),
        ("/slow.csv", {"timeout": 0.3}, "no complete answer within 0.3 s"),
        ("/huge.csv", {"max_bytes": 50_000}, "more than max_bytes (50000)")]
    for path, changes, message in cases:
        definition = example("bath-parking", source=server.at(path), **changes)
        report = await feeds.run_definition(ADMIN, definition)
        assert report.outcome == "failed" and message in (report.error or ""), report.error
        assert report.written == 0


async def test_unreachable_url(feeds: FeedService) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    definition = example("bath-parking", source=f"http://127.0.0.1:{port}/parking.csv")
    report = await feeds.run_definition(ADMIN, definition)
    assert report.outcome == "failed"
    assert f"cannot reach http://127.0.0.1:{port}/parking.csv" in (report.error or "")
    nowhere = example("bath-parking", source="http://urbis-no-such-host.invalid/p.csv",
                      timeout=5.0)
    failed = await feeds.run_definition(ADMIN, nowhere)
    assert failed.outcome == "failed" and "cannot reach" in (failed.error or "")
