"""Settings: declared once, validated, documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from urbis.cli.main import main
from urbis.settings import SettingsError, describe, load_settings, settings_env

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_defaults() -> None:
    s = load_settings(env={})
    assert s.port == 1026 and s.store == "sqlite:///./urbis-data/urbis.db"
    assert s.public_url == "http://127.0.0.1:1026"


def test_environment_and_overrides() -> None:
    s = load_settings(env={"URBIS_PORT": "2000", "URBIS_STORE": "sqlite:///x.db"}, port=3000)
    assert s.port == 3000 and s.store == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"URBIS_PORT": "http"}, "URBIS_PORT must be a int"),
        ({"URBIS_PORT": "0"}, "port must be"),
        ({"URBIS_STORE": "mongodb://x"}, "store must be"),
        ({"URBIS_LOG_LEVEL": "loud"}, "log_level must be one of"),
        ({"URBIS_DEFAULT_LIMIT": "5000"}, "default_limit must not exceed"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_cli_rejects_bad_configuration(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBIS_PORT", "nope")
    assert main(["serve"]) == 2
    assert "bad configuration" in capsys.readouterr().err


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [d["env"] for d in describe() if d["env"] not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"URBIS_WORKERS": "0"}, "workers must be at least 1"),
        ({"URBIS_PG_POOL_MAX": "0"}, "pg_pool_max must be at least 1"),
        ({"URBIS_PG_POOL_MIN": "-1"}, "pg_pool_min at least 0"),
        ({"URBIS_PG_POOL_MIN": "5", "URBIS_PG_POOL_MAX": "4"}, "must not exceed pg_pool_max"),
    ],
)
def test_bad_process_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_settings_travel_to_worker_processes_through_the_environment() -> None:
    s = load_settings(env={}, port=2000, store="postgresql://u@h:5/db", workers=3,
                      context_fetch_timeout=2.5, pg_pool_min=0)
    assert load_settings(env=settings_env(s)) == s
