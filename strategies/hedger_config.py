"""The delta hedger's configuration: one validated section of ``desk.toml`` or a TOML file per strategy.

Units. Delta thresholds (``band.upper``, ``band.lower``, ``band.inner_*``, ``band.min_width``,
``band.max_width``, ``target_delta``) are in the unit chosen by ``delta_unit``: coin (BTC) or USD of
underlying exposure. Sizes (``limits.max_order_size``, ``limits.max_position``, ``execution.twap_clip``) are
always in coin of delta, whatever ``delta_unit``. Times are seconds. ``hedge_ratio`` is a fraction (1.0 = 100 %, max 1.5).
Costs are fractions of notional (5e-4 = 5 bp); ``band.risk_aversion`` is the Whalley–Wilmott gamma in 1/USD.

    [strategies.hedger]
    underlying = "BTC"
    delta_unit = "coin"
    [strategies.hedger.band]
    rule = "whalley_wilmott"
    risk_aversion = 1e-4
    [strategies.hedger.instrument]
    mode = "perpetual"

Bad values raise :class:`app.errors.ConfigError` whose message and ``details['key']`` name the key, e.g.
``strategies.hedger.band.upper: must be >= 0``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.domain import Instrument, Kind
from app.errors import ConfigError, InvalidInstrument


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BandConfig(_Section):
    """When to hedge: the band rule and its parameters (delta units of ``delta_unit``)."""

    rule: Literal["fixed", "time", "whalley_wilmott"] = "fixed"
    upper: float = Field(0.1, ge=0, description="hedge when delta - target > upper")
    lower: float = Field(0.1, ge=0, description="hedge when target - delta > lower")
    inner_upper: float = Field(0.02, ge=0, description="time rule: hedge every interval if above target + inner_upper")
    inner_lower: float = Field(0.02, ge=0, description="time rule: hedge every interval if below target - inner_lower")
    interval_s: float = Field(3600.0, gt=0, description="time rule: seconds between scheduled hedges")
    risk_aversion: float = Field(1e-4, gt=0, description="Whalley-Wilmott gamma, 1/USD")
    cost: float | None = Field(None, ge=0, lt=0.1, description="one-way cost fraction; None: fee + half spread")
    min_width: float = Field(0.0, ge=0, description="Whalley-Wilmott: lower bound of the half width")
    max_width: float | None = Field(None, gt=0, description="Whalley-Wilmott: upper bound of the half width")
    rehedge_to: Literal["target", "edge"] | None = Field(
        None, description="trade back to the target or to the nearest band edge; None: edge for WW, target otherwise"
    )
    min_move_pct: float = Field(0.0, ge=0, lt=100, description="skip if the underlying moved less than this % since the last hedge")

    @model_validator(mode="after")
    def _inner_inside_outer(self) -> BandConfig:
        if self.rule == "time":
            if self.inner_upper > self.upper:
                raise ValueError("inner_upper must not exceed upper")
            if self.inner_lower > self.lower:
                raise ValueError("inner_lower must not exceed lower")
        if self.max_width is not None and self.max_width < self.min_width:
            raise ValueError("max_width must be >= min_width")
        return self


class InstrumentConfig(_Section):
    """What to hedge with and where."""

    mode: Literal["perpetual", "future", "cheapest_carry"] = "perpetual"
    name: str | None = Field(None, description="the future (mode=future) or perpetual to use; default <UL>-PERPETUAL")
    candidates: list[str] = Field(default_factory=list, description="cheapest_carry: instruments to choose from")
    min_days_to_expiry: float = Field(2.0, ge=0, description="futures closer to expiry are not used")
    venues: list[str] = Field(default_factory=lambda: ["sim"], min_length=1, description="venues to choose from")


class ExecutionConfig(_Section):
    """How a hedge is worked: maker first, pay up, clips, market as the last resort."""

    style: Literal["maker_first", "market"] = "maker_first"
    maker_timeout_s: float = Field(10.0, gt=0, description="seconds before a resting limit is repriced")
    payup_ticks: int = Field(2, ge=0, description="ticks added per repricing")
    max_payups: int = Field(3, ge=0, description="repricings before the market fallback")
    market_fallback: bool = True
    max_slippage_bps: float = Field(50.0, gt=0, description="never pay more than this beyond the decision mid")
    twap_clip: float | None = Field(None, gt=0, description="largest clip of one hedge, coin; None: max_order_size")
    twap_interval_s: float = Field(30.0, ge=0, description="seconds between clips")


class LimitsConfig(_Section):
    """Hard limits: order size, rate, notional, position."""

    max_order_size: float = Field(5.0, gt=0, description="largest single order, coin of delta")
    max_hedges_per_hour: int = Field(60, gt=0)
    max_notional_per_hour: float = Field(5_000_000.0, gt=0, description="USD traded per rolling hour")
    max_position: float = Field(50.0, gt=0, description="largest absolute position in the hedge instrument, coin of delta")


class SafetyConfig(_Section):
    """When the hedger pauses itself."""

    max_index_age_s: float = Field(30.0, gt=0, description="pause when the index is older than this")
    max_margin_usage: float = Field(0.8, gt=0, le=1.5, description="pause when maintenance-margin usage exceeds this")
    max_rejects: int = Field(3, gt=0, description="pause after this many consecutive rejects")
    reject_cooldown_s: float = Field(300.0, ge=0, description="resume this long after a reject pause")


class HedgerConfig(_Section):
    """A delta hedger's whole configuration."""

    name: str = Field("delta_hedger", min_length=1)
    underlying: str = Field("BTC", pattern=r"^[A-Z][A-Z0-9]{1,9}$")
    account: str = "main"
    # "all" and "underlying" both mean every position of the underlying in the account, whatever its book: the
    # hedge is that coin's perpetual or future, so no other coin's delta is ever added. "tag" is refused (below).
    scope: Literal["all", "underlying", "tag"] = Field(
        "underlying", description="all | underlying: every position of the underlying in the account"
    )
    tag: str | None = Field(None, description="not supported: positions carry no book tag")
    delta_unit: Literal["coin", "usd"] = "coin"
    delta_basis: Literal["premium_adjusted", "bs"] = Field(
        "premium_adjusted", description="Deribit delta_total (BS delta minus option price in coin) or plain BS"
    )
    target_delta: float = 0.0
    hedge_ratio: float = Field(
        1.0, ge=0, le=1.5,
        description="fraction of the deviation hedged (0-150 %); above 1 over-hedges past the target, and delta is "
        "not traded back while it stays between the target and the over-hedge's end point plus the band",
    )
    check_interval_s: float = Field(5.0, gt=0, description="seconds between decisions")
    active: bool = Field(False, description="send orders at once (else dry-run until `desk hedge activate`)")
    band: BandConfig = BandConfig()
    instrument: InstrumentConfig = InstrumentConfig()
    execution: ExecutionConfig = ExecutionConfig()
    limits: LimitsConfig = LimitsConfig()
    safety: SafetyConfig = SafetyConfig()

    @model_validator(mode="after")
    def _consistent(self) -> HedgerConfig:
        # Refused rather than accepted: no desk position carries a book tag (the venues net positions per
        # instrument and account), so a tag-scoped hedger would measure a delta of 0 and never hedge, silently.
        # ConfigError is no ValueError: pydantic lets it through as it is, and parse_hedger_config adds the prefix.
        if self.scope == "tag" or self.tag is not None:
            key = "scope" if self.scope == "tag" else "tag"
            raise ConfigError(
                f"{key}: book tags are not supported (positions carry no tag, a tag scope would always measure a delta "
                "of 0); use scope 'underlying' and a separate account per book",
                code="config.unsupported", key=key,
            )
        return self

    # -- derived ------------------------------------------------------------------------------------
    def hedge_candidates(self) -> list[str]:
        """Instrument names the hedger may trade, in preference order."""
        ic = self.instrument
        if ic.mode == "perpetual":
            return [ic.name or f"{self.underlying}-PERPETUAL"]
        if ic.mode == "future":
            return [ic.name] if ic.name else []
        return list(ic.candidates) or [f"{self.underlying}-PERPETUAL"]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (round-trips through :func:`parse_hedger_config`)."""
        return self.model_dump(mode="json")


def _key_of(loc: tuple[Any, ...], prefix: str) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    return ".".join([prefix, *parts]) if prefix else ".".join(parts)


def _fail(exc: ValidationError, prefix: str) -> ConfigError:
    msgs = []
    keys = []
    for err in exc.errors():
        key = _key_of(tuple(err["loc"]), prefix) or prefix or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            limit = next(iter(err.get("ctx", {}).values()), None)
            op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[err["type"]]
            msg = f"must be {op} {limit} (got {err.get('input')!r})"
        msgs.append(f"{key}: {msg}")
        keys.append(key)
    return ConfigError("invalid hedger configuration: " + "; ".join(msgs), code="config.invalid", key=keys[0], keys=",".join(keys))


def parse_hedger_config(
    data: Mapping[str, Any], *, prefix: str = "", known_instruments: Iterable[str] | None = None
) -> HedgerConfig:
    """Validate a mapping into a HedgerConfig; raise ConfigError naming the key (``prefix.band.upper``)."""
    try:
        cfg = HedgerConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise _fail(exc, prefix) from None
    except ConfigError as exc:
        if not prefix:
            raise
        key = f"{prefix}.{exc.details.get('key', '')}".rstrip(".")
        raise ConfigError(f"{prefix}.{exc.message}", code=exc.code, **dict(exc.details, key=key)) from None
    check_instruments(cfg, known_instruments, prefix=prefix)
    return cfg


def check_instruments(cfg: HedgerConfig, known: Iterable[str] | None = None, *, prefix: str = "") -> None:
    """Check every hedge instrument parses, is a perpetual/future of the underlying and (if given) is listed."""
    pre = f"{prefix}." if prefix else ""
    if cfg.instrument.mode == "future" and not cfg.instrument.name:
        raise ConfigError(f"{pre}instrument.name: mode 'future' needs the future's name", key=f"{pre}instrument.name")
    listed = None if known is None else set(known)
    ic = cfg.instrument
    named: list[tuple[str, str]] = []
    if ic.name:
        named.append((f"{pre}instrument.name", ic.name))
    named += [(f"{pre}instrument.candidates.{i}", n) for i, n in enumerate(ic.candidates)]
    if not named:
        named.append((f"{pre}instrument.name", f"{cfg.underlying}-PERPETUAL"))
    for key, name in named:
        try:
            inst = Instrument.parse(name)
        except InvalidInstrument as exc:
            raise ConfigError(f"{key}: {exc.message}", key=key) from None
        if inst.kind not in (Kind.PERPETUAL, Kind.FUTURE):
            raise ConfigError(f"{key}: {name} is not a perpetual or a future", key=key)
        if inst.base != cfg.underlying:
            raise ConfigError(f"{key}: {name} is not on the underlying {cfg.underlying}", key=key)
        if listed is not None and name not in listed:
            raise ConfigError(f"{key}: unknown instrument {name} (not listed on the venue)", key=key)


def load_hedger_config(path: Path, *, section: str | None = None, known_instruments: Iterable[str] | None = None) -> HedgerConfig:
    """Read a hedger config from a TOML file: the whole file, or ``[strategies.<section>]`` of a desk.toml."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", key="--config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})", key=str(path)) from None
    prefix = ""
    if section is None and "strategies" in data:
        sections = data["strategies"]
        if not isinstance(sections, dict) or not sections:
            raise ConfigError(f"{path}: [strategies] has no section", key="strategies")
        section = next(iter(sections))
    if section is not None:
        body = data.get("strategies", {}).get(section)
        if body is None:
            raise ConfigError(f"{path}: no [strategies.{section}] section", key=f"strategies.{section}")
        data = body
        prefix = f"strategies.{section}"
    return parse_hedger_config(data, prefix=prefix, known_instruments=known_instruments)
