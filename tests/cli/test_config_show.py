"""Settings from a TOML file, the environment and flags; `urbis config show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from urbis.cli.main import main
from urbis.settings import SettingsError, load_settings


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "urbis.toml"
    path.write_text(text)
    return str(path)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = write(tmp_path, 'port = 2000\nlog_format = "text"\nmax_limit = 50\n'
                             'context_fetch_timeout = 2\n')
    s = load_settings(env={"URBIS_CONFIG": config, "URBIS_MAX_LIMIT": "60"})
    assert (s.port, s.log_format, s.max_limit, s.context_fetch_timeout) == (2000, "text", 60, 2.0)
    assert load_settings(env={"URBIS_CONFIG": config}, port=3000).port == 3000


@pytest.mark.parametrize(("text", "message"), [
    ("port = 'x'\n", "port must be a int"),
    ("nonsense = 1\n", "unknown setting 'nonsense'"),
    ("port = \n", "config file"),
    ("workers = true\n", "workers must be a int"),
    ("log_format = 'xml'\n", "log_format must be one of json, text"),
])
def test_bad_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env={"URBIS_CONFIG": write(tmp_path, text)})


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"config file .*nope\.toml"):
        load_settings(env={"URBIS_CONFIG": str(tmp_path / "nope.toml")})


def test_tls_files_go_together(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="go together"):
        load_settings(env={}, tls_certfile=str(cert))
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(env={}, tls_certfile=str(cert), tls_keyfile=str(tmp_path / "k.pem"))


def test_config_show_masks_secrets_and_names_sources(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path, 'store = "postgresql://urbis:hunter2@db.example:5432/urbis"\n')
    monkeypatch.setenv("URBIS_PORT", "1999")
    assert main(["--config", config, "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "postgresql://urbis:***@db.example:5432/urbis" in out
    assert f"({config})" in out and "(URBIS_PORT)" in out and "(default)" in out
    assert main(["--config", config, "config", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["port"] == 1999 and "hunter2" not in json.dumps(shown)


def test_secret_settings_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    assert main(["config", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tls_keyfile"] == ""
    config = write(tmp_path, f'tls_certfile = "{cert}"\ntls_keyfile = "{key}"\n')
    assert main(["--config", config, "config", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tls_keyfile"] == "***"
