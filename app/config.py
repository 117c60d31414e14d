"""Settings: ``desk.toml`` plus ``DESK_*`` environment variables (environment wins).

The file is found by ``--config PATH``, else ``$DESK_CONFIG``, else ``desk.toml`` in the user's config
directory. Nested keys map to the environment with a double underscore:
``DESK_SIM__SEED=7`` sets ``[sim] seed = 7``. Secrets are :class:`pydantic.SecretStr` and never printed.

    settings = load_settings(Path("desk.toml"))
    settings.sim.seed
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_config_dir, user_data_dir
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.errors import ConfigError

APP_NAME = "deltadesk"


def default_config_path() -> Path:
    """Where ``desk.toml`` lives when no path is given."""
    return Path(user_config_dir(APP_NAME)) / "desk.toml"


def default_db_path() -> Path:
    """Where the SQLite store lives when no ``--db`` is given."""
    return Path(user_data_dir(APP_NAME)) / "desk.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimSettings(_Section):
    """The embedded simulated market."""

    seed: int = 7
    speed: float = Field(1.0, gt=0, description="simulated seconds per wall second")
    underlyings: list[str] = ["BTC", "ETH"]
    start: str | None = Field(None, description="ISO start time of the simulation (UTC)")
    model: dict[str, dict[str, float]] = Field(
        {}, description="market-model parameters per underlying, e.g. [sim.model.BTC] theta = 0.5 (docs/calibration.md)"
    )


class VenueSettings(_Section):
    """One external venue reached through ccxt."""

    exchange: Literal["deribit", "okx", "bybit"] = "deribit"
    rest_url: str | None = None
    ws_url: str | None = None
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    testnet: bool = False


class ChainSettings(_Section):
    """An EVM chain read through web3."""

    rpc_url: str = "http://127.0.0.1:8545"
    feeds: dict[str, str] = {}
    wallets: list[str] = []
    tokens: dict[str, str] = {}
    confirmations: int = Field(2, ge=0)
    max_age_s: int = Field(3600, gt=0)
    private_key: SecretStr | None = None


class StoreSettings(_Section):
    """Where and how long things are stored."""

    url: str | None = Field(None, description="SQLAlchemy URL; SQLite file in the data dir when empty")
    snapshot_interval_s: float = Field(1.0, gt=0)
    snapshot_retention_days: int = Field(30, gt=0)
    market_data_retention_days: int = Field(7, gt=0)


class MarginSettings(_Section):
    """Margin model of the embedded venue's accounts."""

    model: Literal["sm", "pm"] = "sm"
    alert_levels: list[float] = [0.5, 0.8, 1.0]


class UiSettings(_Section):
    """Front-end preferences."""

    theme: str = "textual-dark"
    keymap: dict[str, str] = {}
    show_usd: bool = False
    chain_columns: list[str] = Field([], description="TUI chain columns per side; empty = compact set")
    dash_host: str = "127.0.0.1"
    dash_port: int = Field(8050, gt=0, lt=65536)


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None and path.exists():
            try:
                self._data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML ({exc})", key=str(path)) from None

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """All of the desk's configuration."""

    model_config = SettingsConfigDict(env_prefix="DESK_", env_nested_delimiter="__", extra="forbid")

    venue: str = Field("sim", description="sim, replay, or the name of a [venues.NAME] section")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    sim: SimSettings = SimSettings()
    venues: dict[str, VenueSettings] = {}
    chain: ChainSettings | None = None
    store: StoreSettings = StoreSettings()
    margin: MarginSettings = MarginSettings()
    ui: UiSettings = UiSettings()
    strategies: dict[str, dict[str, Any]] = {}

    _toml_path: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, _CURRENT_TOML[0]))


_CURRENT_TOML: list[Path | None] = [None]


def _format_validation(exc: ValidationError, origin: str) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        parts.append(f"{key}: {err['msg']}")
    return f"invalid configuration in {origin}: " + "; ".join(parts)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or the default places) and the environment; raise ConfigError."""
    if path is None and os.environ.get("DESK_CONFIG"):
        path = Path(os.environ["DESK_CONFIG"])
    if path is None:
        path = default_config_path()
    elif not path.exists():
        raise ConfigError(f"config file {path} does not exist", key="--config")
    _CURRENT_TOML[0] = path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise ConfigError(_format_validation(exc, str(path)), key=".".join(str(p) for p in first)) from None
    finally:
        _CURRENT_TOML[0] = None
