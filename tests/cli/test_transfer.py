"""`urbis export` / `urbis import`: SQLite to each backend, entity for entity, timestamps too."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from urbis.broker.container import build_broker
from urbis.broker.samples import load_samples
from urbis.cli import transfer
from urbis.cli.main import main
from urbis.context.actor import Actor
from urbis.context.model import Entity
from urbis.settings import Settings, load_settings
from urbis.storage.base import EntityQuery
from urbis.storage.registry import open_stores

EX = "https://example.org/city#"
CTX = {"Sensor": EX + "Sensor", "Building": EX + "Building", "Landmark": EX + "Landmark",
       "temperature": EX + "temperature", "accuracy": EX + "accuracy", "name": EX + "name",
       "category": EX + "category", "Outdoor": EX + "Outdoor", "Public": EX + "Public"}
T0 = "2026-03-01T08:00:00Z"


def sensor(n: int, city: str = "Madrid") -> dict[str, Any]:
    """An entity with every attribute type, a multi-attribute and sub-attributes."""
    return {
        "id": f"urn:ngsi-ld:Sensor:{n}", "type": "Sensor", "scope": [f"/{city}/Centro", "/S"],
        "temperature": [
            {"type": "Property", "value": 21.5 + n, "unitCode": "CEL", "observedAt": T0,
             "accuracy": {"type": "Property", "value": 0.1}},
            {"type": "Property", "value": 70.7, "unitCode": "FAH",
             "datasetId": "urn:ngsi-ld:Dataset:fahrenheit"},
        ],
        "name": {"type": "LanguageProperty", "languageMap": {"en": "Square", "es": "Plaza"}},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": [-3.70 + n / 100, 40.41]}},
        "category": {"type": "VocabProperty", "vocab": ["Outdoor", "Public"]},
        "config": {"type": "JsonProperty", "json": {"a": [1, {"b": None}], "c": "ü€"}},
        "readings": {"type": "ListProperty", "valueList": [1, 2.5, "x"]},
        "isPartOf": {"type": "Relationship", "object": "urn:ngsi-ld:Building:1",
                     "objectType": "Building"},
        "near": {"type": "ListRelationship",
                 "objectList": [{"object": "urn:ngsi-ld:Sensor:9"}]},
        "@context": CTX,
    }


def others() -> list[dict[str, Any]]:
    """Two types at once, a polygon, a collection, a unicode id, core-context names."""
    square = [[[-3.71, 40.41], [-3.70, 40.41], [-3.70, 40.42], [-3.71, 40.41]]]
    collection = {"type": "GeometryCollection", "geometries": [
        {"type": "Point", "coordinates": [2.17, 41.38]},
        {"type": "LineString", "coordinates": [[2.17, 41.38], [2.18, 41.39]]}]}
    return [
        {"id": "urn:ngsi-ld:Building:1", "type": ["Building", "Landmark"], "@context": CTX,
         "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": square}},
         "address": {"type": "Property", "value": {"streetAddress": "Gran Vía 1"}}},
        {"id": "urn:ngsi-ld:Straße:ü", "type": "Thing",
         "location": {"type": "GeoProperty", "value": collection}, "speed": 3},
    ]


async def seed(url: str) -> None:
    """Demo samples and the entities above in the default tenant; others in `waste`."""
    broker = await build_broker(load_settings(env={}, store=url, sqlite_synchronous="normal"))
    try:
        await load_samples(broker)
        await load_samples(broker, Actor(tenant="waste"))
        for actor, bodies in ((Actor(), [sensor(1), sensor(2), *others()]),
                              (Actor(tenant="waste"), [sensor(1, "Bilbao")])):
            for body in bodies:
                tm = await broker.contexts.term_map(body.get("@context"))
                await broker.entities.create(actor, body, tm)
        # A later change: modifiedAt differs from createdAt on the entity and one instance.
        tm = await broker.contexts.term_map(CTX)
        await broker.entities.update_attrs(Actor(), "urn:ngsi-ld:Sensor:1", {
            "temperature": {"type": "Property", "value": 30}}, tm)
    finally:
        await broker.close()


async def read_all(url: str, tenant: str) -> dict[str, Entity]:
    """Every entity of a tenant, straight from the store."""
    stores = await open_stores(url, synchronous="normal")
    try:
        out: dict[str, Entity] = {}
        after: str | None = None
        while page := await stores.entities.scan(tenant, EntityQuery(limit=100), after):
            out.update((e.id, e) for e in page)
            after = page[-1].id
        return out
    finally:
        await stores.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store with the seeded entities (built once: tests only read it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('source')}/urbis.db"
    asyncio.run(seed(url))
    return url


@pytest.fixture
def target(settings: Settings) -> str:
    """An empty store of each backend to import into."""
    return settings.store


def urbis(*argv: str) -> int:
    """Run the command in this process."""
    return main(list(argv))


def test_export_then_import_gives_equal_entities(source: str, target: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(transfer, "PAGE", 7)  # several pages, one partly filled
    for tenant in ("", "waste"):
        dump = tmp_path / f"dump-{tenant or 'default'}.ndjson"
        assert urbis("export", "--store", source, "--tenant", tenant, "-o", str(dump)) == 0
        assert urbis("import", "--store", target, "--tenant", tenant, "-i", str(dump),
                     "--batch", "5") == 0
        before, after = asyncio.run(read_all(source, tenant)), asyncio.run(read_all(target, tenant))
        assert len(before) > 30
        assert after == before  # every member, createdAt and modifiedAt included
    sensor1 = after["urn:ngsi-ld:Sensor:1"]
    assert sensor1.scopes == ["/Bilbao/Centro", "/S"]
    err = capsys.readouterr().err
    assert "urbis: exported 39 entities in" in err and "urbis: imported 39 entities in" in err
    assert "\r" not in err  # no progress bar when stderr is not a terminal


def test_timestamps_and_lines_are_kept(source: str, tmp_path: Path) -> None:
    dump = tmp_path / "d.ndjson"
    assert urbis("export", "--store", source, "-o", str(dump), "-q") == 0
    lines = [orjson.loads(line) for line in dump.read_bytes().splitlines()]
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    one = next(e for e in lines if e["id"] == "urn:ngsi-ld:Sensor:1")
    assert "@context" not in one and one["type"] == EX + "Sensor"
    assert one["createdAt"] < one["modifiedAt"]
    celsius = one[EX + "temperature"][0]
    assert celsius["value"] == 30 and celsius["createdAt"] < celsius["modifiedAt"]
    assert one[EX + "category"]["vocab"] == [EX + "Outdoor", EX + "Public"]
    assert one["https://uri.etsi.org/ngsi-ld/location"]["type"] == "GeoProperty"


def test_reimport_replaces_and_tenants_stay_apart(source: str, target: str,
                                                  tmp_path: Path) -> None:
    dump = tmp_path / "waste.ndjson"
    assert urbis("export", "--store", source, "--tenant", "waste", "-o", str(dump)) == 0
    assert urbis("import", "--store", target, "--tenant", "other", "-i", str(dump)) == 0
    assert urbis("import", "--store", target, "--tenant", "other", "-i", str(dump)) == 0
    moved = asyncio.run(read_all(target, "other"))
    assert moved == asyncio.run(read_all(source, "waste"))
    assert asyncio.run(read_all(target, "")) == {}
    assert asyncio.run(read_all(target, "waste")) == {}


def test_type_selection(source: str, tmp_path: Path) -> None:
    dump = tmp_path / "t.ndjson"
    assert urbis("export", "--store", source, "--type", EX + "Sensor", EX + "Building",
                 "-o", str(dump)) == 0
    ids = [orjson.loads(line)["id"] for line in dump.read_bytes().splitlines()]
    assert ids == ["urn:ngsi-ld:Building:1", "urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    waste = ("https://smart-data-models.github.io/dataModel.WasteManagement/context.jsonld")
    assert urbis("export", "--store", source, "--context", waste, "--type", "WasteContainer",
                 "--type", "Thing", "-o", str(dump)) == 0
    types = {orjson.loads(line)["type"] for line in dump.read_bytes().splitlines()}
    assert types == {"https://smartdatamodels.org/dataModel.WasteManagement/WasteContainer",
                     "https://uri.etsi.org/ngsi-ld/default-context/Thing"}


def test_bad_lines_are_reported_skipped_and_change_nothing(
        source: str, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"id": "urn:ngsi-ld:Thing:ok", "type": "Thing", "n": 1}
    existing = {"id": "urn:ngsi-ld:Thing:kept", "type": "Thing", "n": 1}
    lines = [
        orjson.dumps(existing),
        b'{"id": "urn:ngsi-ld:Thing:x", "type": ',  # 2: not JSON
        b"[1, 2]",  # 3: not an object
        b"",  # blank lines are skipped silently
        orjson.dumps({"type": "Thing"}),  # 5: no id
        orjson.dumps({**existing, "n": 2, "owner": {"type": "Relationship"}}),  # 6
        orjson.dumps({**good, "createdAt": "yesterday"}),  # 7: not a DateTime
        orjson.dumps(good),  # 8
        orjson.dumps({"id": "not a uri", "type": "Thing"}),  # 9
    ]
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert urbis("import", "--store", target, "-i", str(path)) == 1
    err = capsys.readouterr().err
    for number in (2, 3, 5, 6, 7, 9):
        assert f"urbis: line {number}: " in err
    assert "line 6: urn:ngsi-ld:Thing:kept: Relationship" in err
    assert "imported 2 entities" in err and "6 lines failed" in err
    stored = asyncio.run(read_all(target, ""))
    assert set(stored) == {"urn:ngsi-ld:Thing:kept", "urn:ngsi-ld:Thing:ok"}
    assert stored["urn:ngsi-ld:Thing:kept"].attrs[
        "https://uri.etsi.org/ngsi-ld/default-context/n"][0]["value"] == 1


def test_errors_exit_cleanly(source: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert urbis("export", "--store", source, "--tenant", "nobody") == 1
    assert "tenant nobody does not exist" in capsys.readouterr().err
    assert urbis("export", "--store", source, "--tenant", "bad tenant!") == 2
    assert urbis("import", "--store", source, "-i", str(tmp_path / "missing.ndjson")) == 1
    assert "cannot read" in capsys.readouterr().err
    dead = "postgresql://postgres:secret@127.0.0.1:1/urbis"
    assert urbis("export", "--store", dead) == 2
    err = capsys.readouterr().err
    assert "cannot open the store postgresql://postgres:***@127.0.0.1:1/urbis" in err
    assert "secret" not in err and "Traceback" not in err
    out = tmp_path / "never.ndjson"
    assert urbis("export", "--store", source, "--tenant", "nobody", "-o", str(out)) == 1
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_console_commands_in_a_pipe(source: str, target: str) -> None:
    bin_dir = Path(sys.executable).parent
    pipe = subprocess.run(
        f"'{bin_dir}/urbis' export --store '{source}' --tenant waste | "
        f"'{bin_dir}/urbis' import --store '{target}' --tenant waste --batch 10",
        shell=True, capture_output=True, text=True, timeout=120, check=False)
    assert pipe.returncode == 0, pipe.stderr
    assert "exported 39 entities" in pipe.stderr and "imported 39 entities" in pipe.stderr
    assert "Traceback" not in pipe.stderr
    assert asyncio.run(read_all(target, "waste")) == asyncio.run(read_all(source, "waste"))
