"""`urbis iot deadletters` reads the dead-letter log of a store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from urbis.cli.main import main
from urbis.context.devices import DeadLetter
from urbis.storage.registry import open_stores


async def _seed(url: str) -> None:
    stores = await open_stores(url, synchronous="normal")
    try:
        assert stores.devices is not None
        await stores.devices.add_dead_letters([
            DeadLetter("2026-01-01T00:00:00Z", "city", "k1", "t1", "http", "syntax", "bad", "t"),
            DeadLetter("2026-01-01T00:00:01Z", "city", "k1", "t1", "http", "syntax", "bad", "x"),
            DeadLetter("2026-01-01T00:00:02Z", None, "zz", "t9", "mqtt", "unknown_apikey", "?"),
        ], keep=100)
    finally:
        await stores.close()


def test_dead_letters_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    asyncio.run(_seed(url))
    assert main(["iot", "deadletters", "--store", url, "--tenant", "city"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["service"], r["payload"]) for r in rows] == [(None, ""), ("city", "x"),
                                                            ("city", "t")]
    assert main(["iot", "deadletters", "--store", url, "--tenant", "city", "--summary"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == {"service": "city", "apikey": "k1", "device_id": "t1",
                       "reason": "syntax", "count": 2}
    assert main(["iot", "deadletters", "--store", url, "--reason", "nothing"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["iot", "deadletters", "--store", url, "--tenant", "bad tenant!"]) == 2
