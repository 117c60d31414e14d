"""Config precedence (init > env > file) and error messages that name the key."""

from pathlib import Path

import pytest

from app.config import load_settings
from app.errors import ConfigError


def test_file_then_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "desk.toml"
    cfg.write_text('venue = "sim"\n[sim]\nseed = 11\nspeed = 5.0\n[venues.deribit]\nexchange = "deribit"\napi_key = "k-123"\n')
    s = load_settings(cfg)
    assert s.sim.seed == 11 and s.sim.speed == 5.0
    monkeypatch.setenv("DESK_SIM__SEED", "99")
    s = load_settings(cfg)
    assert s.sim.seed == 99 and s.sim.speed == 5.0
    assert s.venues["deribit"].api_key is not None
    assert "k-123" not in repr(s) and "k-123" not in str(s.model_dump())
    assert s.venues["deribit"].api_key.get_secret_value() == "k-123"
    assert load_settings(cfg, venue="replay").venue == "replay"


def test_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "desk.toml"
    cfg.write_text("[sim]\nspeed = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert "sim.speed" in str(info.value) and info.value.details["key"] == "sim.speed"
    cfg.write_text("[sim]\nsede = 1\n")
    with pytest.raises(ConfigError, match="sim.sede"):
        load_settings(cfg)
    cfg.write_text("[sim\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError):
        load_settings()
    monkeypatch.delenv("DESK_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_settings().venue == "sim"
