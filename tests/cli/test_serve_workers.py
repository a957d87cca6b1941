"""`urbis serve --workers N`: refused on SQLite, and a start that cannot work is exit code 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from urbis.cli.main import main


def test_several_workers_on_sqlite_are_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2", "--store", f"sqlite:///{tmp_path}/u.db"]) == 2
    assert "need a postgresql:// store" in capsys.readouterr().err
    assert not (tmp_path / "u.db").exists()


def test_workers_that_cannot_reach_the_database_do_not_start(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2", "--store",
                 "postgresql://postgres@127.0.0.1:1/none"]) == 3
    assert "cannot start: the database is unavailable" in capsys.readouterr().err
