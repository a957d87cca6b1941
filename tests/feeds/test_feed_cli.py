"""`urbis feed check` and `urbis feed run`: dry runs, one-off imports, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from feedkit import DATA, EXAMPLES

from urbis.cli.main import main


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh SQLite store URL."""
    return f"sqlite:///{tmp_path}/urbis.db"


def test_check_prints_entities_and_writes_nothing(store: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feed", "check", str(EXAMPLES / "bath-parking.toml"), "--store", store,
                 "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "feed bath-parking: csv from" in out and "every 300 s" in out
    assert "21 records -> 21 entities, 0 rejected" in out
    assert '"id": "urn:ngsi-ld:OffStreetParking:bath:Podium-CP"' in out
    assert main(["export", "--store", store]) == 0
    assert capsys.readouterr().out == ""  # nothing was written


def test_check_reports_rejected_rows_as_json(store: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rows = (DATA / "bath_carparks_sample.csv").read_text().splitlines()
    rows.insert(2, "Podium CP,never,2016-10-01T00:05:01,85,521,Static,0.1")
    (tmp_path / "parks.csv").write_text("\n".join(rows) + "\n")
    definition = (EXAMPLES / "bath-parking.toml").read_text().replace(
        "../../tests/fixtures/datasets/bath_carparks_sample.csv", str(tmp_path / "parks.csv"))
    (tmp_path / "parks.toml").write_text(definition)
    assert main(["feed", "check", str(tmp_path / "parks.toml"), "--store", store,
                 "--json", "--limit", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["records"], result["entities"], result["rejected"]) == (22, 21, 1)
    assert len(result["sample"]) == 2
    [rejection] = result["rejections"]
    assert rejection["record"] == 2 and "ISO 8601" in rejection["reason"]


def test_run_imports_with_a_summary(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feed", "run", str(EXAMPLES / "caltrain-gtfs.toml"), "--store", store,
                 "--tenant", "transit"]) == 0
    err = capsys.readouterr().err
    assert "urbis: imported 34 entities in" in err and "0 records rejected" in err
    assert main(["export", "--store", store, "--tenant", "transit", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 34
    assert any("urn:ngsi-ld:GtfsStop:caltrain:70011" in line for line in lines)


def test_run_failures_and_rejections_exit_1(store: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    definition = (EXAMPLES / "bath-parking.toml").read_text()
    (tmp_path / "gone.toml").write_text(definition.replace(
        "../../tests/fixtures/datasets/bath_carparks_sample.csv", str(tmp_path / "gone.csv")))
    assert main(["feed", "run", str(tmp_path / "gone.toml"), "--store", store]) == 1
    assert "feed bath-parking failed: cannot read" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("Name,LastUpdate,DateUploaded,Occupancy,Capacity,Status,"
                                      "Proportion\nA,2016-10-01T00:00:00,x,1,2,Static,0.5\n"
                                      "B,2016-10-01T00:00:00,x,many,2,Static,0.5\n")
    (tmp_path / "bad.toml").write_text(definition.replace(
        "../../tests/fixtures/datasets/bath_carparks_sample.csv", str(tmp_path / "bad.csv")))
    assert main(["feed", "run", str(tmp_path / "bad.toml"), "--store", store]) == 1
    err = capsys.readouterr().err
    assert "rejected record 2: attribute 'occupiedSpotNumber'" in err
    assert "imported 1 entities" in err and "1 records rejected" in err


def test_malformed_definitions_exit_2(store: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.toml").write_text('name = "x"\nsource = "a.csv"\n[mapping]\ntype = "T"\n')
    for command in ("check", "run"):
        assert main(["feed", command, str(tmp_path / "bad.toml"), "--store", store]) == 2
        err = capsys.readouterr().err
        assert f"urbis: bad feed definition: {tmp_path / 'bad.toml'}: mapping: `id`" in err
    assert main(["feed", "check", str(tmp_path / "none.toml"), "--store", store]) == 2
    assert "No such file" in capsys.readouterr().err
    assert main(["feed", "run", str(EXAMPLES / "bath-parking.toml"), "--store", store,
                 "--tenant", "bad tenant"]) == 2
    assert "invalid tenant" in capsys.readouterr().err


def test_check_of_an_unreadable_source_exits_1(store: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    definition = (EXAMPLES / "caltrain-gtfs.toml").read_text()
    (tmp_path / "x.toml").write_text(definition.replace(
        "../../tests/fixtures/datasets/gtfs-caltrain-sample", str(tmp_path / "nothing.zip")))
    assert main(["feed", "check", str(tmp_path / "x.toml"), "--store", store]) == 1
    assert "the source cannot be imported: cannot read" in capsys.readouterr().err
