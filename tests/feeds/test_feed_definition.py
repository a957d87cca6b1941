"""Feed definitions: the shipped examples, malformed definitions with clear messages, folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from feedkit import DATA, EXAMPLES
from hypothesis import given
from hypothesis import strategies as st

from urbis.agents.feed_definition import (
    FeedDefinition,
    FeedDefinitionError,
    load_folder,
    parse_interval,
)
from urbis.settings import SettingsError, load_settings

CSV_FEED: dict[str, Any] = {
    "name": "parking", "source": "cars.csv",
    "mapping": {"type": "OffStreetParking", "id": "urn:ngsi-ld:OffStreetParking:{Name}",
                "attributes": {"status": "Status"}},
}


def test_examples_parse() -> None:
    bath = FeedDefinition.from_file(EXAMPLES / "bath-parking.toml")
    assert (bath.name, bath.format, bath.every, bath.mode, bath.order) == (
        "bath-parking", "csv", 300.0, "update", "observedAt")
    assert Path(bath.source) == DATA / "bath_carparks_sample.csv"
    assert bath.mapping is not None and bath.mapping.entity_type == "OffStreetParking"
    gtfs = FeedDefinition.from_file(EXAMPLES / "caltrain-gtfs.toml")
    assert (gtfs.format, gtfs.prefix, gtfs.mapping, gtfs.every) == ("gtfs", "caltrain", None,
                                                                    86400.0)
    air = FeedDefinition.from_file(EXAMPLES / "openaq-air-quality.toml")
    assert air.context.endswith("dataModel.Environment/master/context.jsonld")
    definitions, invalid = load_folder(EXAMPLES)
    assert sorted(d.name for d in definitions) == ["bath-parking", "caltrain-gtfs",
                                                   "openaq-air-quality"]
    assert invalid == {}


def test_defaults_and_inference(tmp_path: Path) -> None:
    d = FeedDefinition.from_dict(CSV_FEED, tmp_path)
    assert d.format == "csv" and d.source == str(tmp_path / "cars.csv")
    assert (d.tenant, d.every, d.batch, d.context, d.enabled) == ("", None, 500, None, True)
    url = FeedDefinition.from_dict({**CSV_FEED, "source": "https://city.example/p.geojson?x=1",
                                    "tenant": "city", "every": "1h30m"})
    assert url.is_url and url.format == "geojson" and url.every == 5400
    assert url.shown_source == "https://city.example/p.geojson?..."
    secret = FeedDefinition.from_dict({**CSV_FEED, "source": "https://u:pw@h.example:8443/a.csv"})
    assert secret.shown_source == "https://h.example:8443/a.csv"
    gtfs = FeedDefinition.from_dict({"source": "/feeds/bus.zip"}, default_name="bus")
    assert (gtfs.format, gtfs.prefix, gtfs.name) == ("gtfs", "bus", "bus")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "bad name!"}, "`name` must be"),
        ({"source": ""}, "`source`"),
        ({"source": "ftp://host/file.csv"}, "a path or an http(s) URL"),
        ({"source": "https:///nohost.csv"}, "has no host"),
        ({"source": "data.xlsx"}, "`format`"),
        ({"format": "xml"}, "`format` must be one of"),
        ({"mapping": None}, "needs a `mapping`"),
        ({"mapping": {"type": "T", "id": "no-placeholder", "attributes": {"a": "A"}}},
         "mapping: `id` must be a template"),
        ({"mapping": {"type": "T", "id": "urn:x:{A}", "attributes": {"a": {"type": "date2"}}}},
         "mapping: attribute 'a'"),
        ({"every": "5 minutes"}, "`every` must be a duration"),
        ({"every": "0s"}, "at least 1 s"),
        ({"every": True}, "`every` must be a duration"),
        ({"tenant": "no spaces"}, "`tenant` must be"),
        ({"mode": "append"}, "`mode` must be one of update, replace"),
        ({"order": "time"}, "`order` must be one of"),
        ({"batch": 0}, "`batch` must be a number from 1 to 10000"),
        ({"batch": 2.5}, "whole number"),
        ({"timeout": -1}, "`timeout`"),
        ({"headers": {"X": 1}}, "`headers`"),
        ({"delimiter": "::"}, "`delimiter`"),
        ({"encoding": "klingon"}, "unknown `encoding`"),
        ({"enabled": "yes"}, "`enabled` must be true or false"),
        ({"@context": 3}, "`@context` must be"),
        ({"@context": "a", "context": "b"}, "not both"),
        ({"colour": "red"}, "unknown keys: colour"),
        ({"format": "gtfs"}, "a gtfs feed has no `mapping`"),
    ],
)
def test_malformed_definitions(change: dict[str, Any], message: str) -> None:
    spec = {**CSV_FEED, **change}
    with pytest.raises(FeedDefinitionError) as info:
        FeedDefinition.from_dict({k: v for k, v in spec.items() if v is not None},
                                 origin="feeds/parking.toml")
    assert message in info.value.detail
    assert info.value.detail.startswith("feeds/parking.toml: ")


def test_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('name = "x"\nsource = ')
    (tmp_path / "broken.json").write_text('{"name": ')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "a.toml").write_text('name = "same"\nsource = "/x.zip"\n')
    (tmp_path / "b.toml").write_text('name = "same"\nsource = "/y.zip"\n')
    (tmp_path / "notes.txt").write_text("not a definition")
    for name, message in [("broken.toml", "not valid TOML"), ("broken.json", "not valid JSON"),
                          ("list.json", "a feed definition is an object")]:
        with pytest.raises(FeedDefinitionError) as info:
            FeedDefinition.from_file(tmp_path / name)
        assert message in info.value.detail and name in info.value.detail
    with pytest.raises(FeedDefinitionError, match="No such file"):
        FeedDefinition.from_file(tmp_path / "missing.toml")
    good, bad = load_folder(tmp_path)
    assert [d.name for d in good] == ["same"]
    assert set(bad) == {str(tmp_path / n) for n in ("broken.toml", "broken.json", "list.json",
                                                     "b.toml")}
    assert "already named 'same'" in bad[str(tmp_path / "b.toml")]


@pytest.mark.parametrize(("text", "seconds"),
                         [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400),
                          ("2.5s", 2.5), (60, 60), ("1d2h3m4s", 93784)])
def test_intervals(text: Any, seconds: float) -> None:
    assert parse_interval(text) == seconds


@given(st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.floats(allow_nan=True)))
def test_any_interval_parses_or_is_refused(value: Any) -> None:
    try:
        seconds = parse_interval(value)
    except FeedDefinitionError as exc:
        assert "every" in exc.detail
    else:
        assert seconds >= 1


def test_feeds_dir_setting(tmp_path: Path) -> None:
    assert load_settings(env={}, feeds_dir=str(tmp_path)).feeds_dir == str(tmp_path)
    with pytest.raises(SettingsError, match="feeds_dir: no such folder"):
        load_settings(env={"URBIS_FEEDS_DIR": str(tmp_path / "nope")})
