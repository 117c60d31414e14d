"""Margin parameters: one table per settlement currency (standard margin) and per index (portfolio margin).

Every number the margin, liquidation and settlement code uses lives here, with the source it comes from
(`reference/deribit.md` sections). Rules marked UNCONFIRMED in the reference are the documented
most-likely form, exposed as a parameter so a different reading is a configuration change.

Portfolio-margin parameters use the exact field names and nesting of Deribit's ``private/pme/simulate``
``model_params`` (``currency_pair`` / ``currency`` / ``general``), so a simulator response's params can be
fed back in with :meth:`PMParams.from_model_params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any

from app.errors import InvalidInput

_D = Decimal


# ------------------------------------------------------------------------------------------------
# Standard margin (deribit.md §1.3-1.5) and liquidation (§3.2)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SMParams:
    """Standard-margin rates of one settlement currency (fractions of notional; sizes in base coin)."""

    # options (§1.3; secondary sources, UNCONFIRMED in Deribit's own text)
    option_im_base: float = 0.15
    option_im_floor: float = 0.10
    option_mm_call: float = 0.075
    option_mm_put: float = 0.075  # MM put = max(k, k * mark) + mark
    # futures and perpetuals (§1.5): rate = base + size_coin * increment
    future_im_base: float = 0.02
    future_mm_base: float = 0.01
    future_increment: float = 0.00005
    # §1.5 UNCONFIRMED: whether size_coin in the increment is per instrument (True, the KB's "each position
    # is margined separately") or summed over all futures of the currency (False).
    increment_per_instrument: bool = True


@dataclass(frozen=True, slots=True)
class LiquidationParams:
    """Liquidation fee rates and step sizes (§3.1-3.2)."""

    future_fee: float = 0.0075  # of the coin notional closed; BTC 0.75 %, ETH 0.9 % (KB 11 Jan 2022)
    option_fee_per_contract: float = 0.0019  # coin per contract of underlying (secondary copy)
    # Current step size is UNCONFIRMED; the older official text closed up to 200 x $10 futures contracts
    # and one option per step.
    future_step_usd: float = 2000.0
    option_step: float = 1.0
    max_rounds: int = 10_000


@dataclass(frozen=True, slots=True)
class CurrencyParams:
    """Everything margin-related of one settlement currency."""

    currency: str
    precision: int  # ledger unit = 10**-precision of the currency
    sm: SMParams = SMParams()
    liquidation: LiquidationParams = LiquidationParams()
    usd_per_unit_fixed: float | None = None  # 1.0 for USD stable coins; None: convert with the index
    # Cross margin: share of this currency's margin balance that counts as collateral for other currencies.
    # Deribit's haircut values are UNCONFIRMED (§1.6); 0 as in the simulator's model_params.
    haircut: float = 0.0


MARGIN_PARAMS: dict[str, CurrencyParams] = {
    "BTC": CurrencyParams("BTC", 10, SMParams(future_increment=0.00005), LiquidationParams(future_fee=0.0075)),
    "ETH": CurrencyParams(
        "ETH", 10, SMParams(future_increment=0.000004), LiquidationParams(future_fee=0.009, future_step_usd=2000.0)
    ),
    # Linear USDC instruments (§1.4-1.5). BTC_USDC perp uses BTC's 2 % / 1 % + 0.005 % per coin; option ratios for
    # linear options are UNCONFIRMED at Deribit (Aevo/bit.com use the BTC/ETH numbers in USD form).
    "USDC": CurrencyParams(
        "USDC", 6, SMParams(future_increment=0.00005), LiquidationParams(future_fee=0.0075), usd_per_unit_fixed=1.0
    ),
    "USDT": CurrencyParams(
        "USDT", 6, SMParams(future_increment=0.00005), LiquidationParams(future_fee=0.0075), usd_per_unit_fixed=1.0
    ),
}
"""Standard-margin, liquidation and ledger parameters per settlement currency."""

LINEAR_SM_BY_BASE: dict[str, SMParams] = {
    "BTC": SMParams(future_increment=0.00005),
    "ETH": SMParams(future_increment=0.000004),
    "SOL": SMParams(future_im_base=0.04, future_mm_base=0.02, future_increment=0.000005),
}
"""Linear (USDC) futures rates depend on the underlying, not the settlement coin (KB Linear Perpetual)."""


def currency_params(currency: str) -> CurrencyParams:
    """The parameter table of a settlement currency; raise InvalidInput when it has none."""
    try:
        return MARGIN_PARAMS[currency.upper()]
    except KeyError:
        raise InvalidInput(
            f"no margin parameters for currency {currency!r} (known: {', '.join(sorted(MARGIN_PARAMS))})",
            code="margin.unknown_currency",
        ) from None


# ------------------------------------------------------------------------------------------------
# Portfolio margin (deribit.md §2.2-2.5)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PMPairParams:
    """``model_params.currency_pair.<index>``: scenario grid of one underlying index."""

    price_range: float = 0.16
    volatility_range_up: float = 0.5
    volatility_range_down: float = 0.25
    min_volatility_for_shock_up: float = 0.5
    short_term_vega_power: float = 0.3
    long_term_vega_power: float = 0.13
    max_delta_shock: float = 0.1
    delta_total_liq_shock_threshold: float = 20_000_000.0
    m_inc: float = 0.00005  # meaning UNCONFIRMED; carried for round-trips, not used
    extended_table_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class PMCurrencyParams:
    """``model_params.currency.<ccy>``: aggregation and roll-shock parameters of one settlement currency."""

    min_annualised_move: float = 0.01
    annualised_move_risk: float = 0.075
    pnl_offset: float = 0.0
    max_offsetable_pnl: float = 0.0  # USD; caps each offset gain (0 = no gain may offset)
    extended_dampener: float = 100_000.0  # USD
    haircut: float = 0.0
    equity_side_impact: str = "both"
    correlation_set: bool = False


@dataclass(frozen=True, slots=True)
class PMGeneral:
    """``model_params.general``."""

    mm_factor: float = 0.8
    buckets_count: int = 4
    vol_scenarios_count: int = 3


@dataclass(frozen=True, slots=True)
class PMModelChoices:
    """Our readings of the rules deribit.md marks UNCONFIRMED (§2.3-2.5, §7 item 4); not Deribit fields."""

    # KB list of extended-table moves.
    extended_moves: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    # Order of the three vol scenarios inside a price bucket: the KB names them "Up, Same, and Down".
    vol_order: tuple[str, ...] = ("up", "same", "down")
    # Vol shock (Paradex form, which mirrors Deribit's parameters):
    #   shock = range * (30 / max(dte_floor, DTE)) ** power, power = short-term below `vega_power_cutoff_days`;
    #   IV_up = IV + max(IV, min_volatility_for_shock_up) * shock_up ; IV_down = IV * (1 - shock_down).
    dte_floor_days: float = 1.0
    vega_power_cutoff_days: float = 30.0
    min_vol: float = 0.01
    # Futures in the extended table are evaluated at the nearest edge of the standard range: exact on both
    # simulator examples (§2.3).
    extended_clamps_futures: bool = True
    # Extended losses: loss * extended_table_factor reduced by the dampener (USD), gains dropped. Dampener form
    # UNCONFIRMED; this form gives the all-zero extended aggregates of both examples.
    # Roll shock per expiry of net delta D, years T: |D| * max(exp(annualised_move_risk * T) - 1, min_move);
    # perpetual min_move * |D| (§2.5, exact on both examples for futures). Options' delta counted per expiry.
    roll_shock_includes_options: bool = True
    # Delta shock (§2.5 secondary, UNVERIFIED): min(max(|D|S - threshold, 0) * |D| * rate, max_delta_shock*S*|D|)/S.
    delta_shock_rate: float = 0.01
    # PM margin balance includes the options' mark value (the risk matrix only covers changes from it).
    margin_balance_includes_options: bool = True


@dataclass(frozen=True, slots=True)
class PMParams:
    """All portfolio-margin parameters: per index pair, per settlement currency, general, our choices."""

    currency_pair: dict[str, PMPairParams] = field(default_factory=dict)
    currency: dict[str, PMCurrencyParams] = field(default_factory=dict)
    general: PMGeneral = PMGeneral()
    choices: PMModelChoices = PMModelChoices()

    def pair(self, index: str) -> PMPairParams:
        """Parameters of an index pair such as ``btc_usd``; raise InvalidInput if unknown."""
        try:
            return self.currency_pair[index]
        except KeyError:
            raise InvalidInput(f"no portfolio-margin parameters for index {index!r}", code="margin.unknown_index") from None

    def ccy(self, currency: str) -> PMCurrencyParams:
        """Parameters of a settlement currency such as ``btc`` or ``usd`` (USDC/USDT map to ``usd``)."""
        key = currency.lower()
        if key in ("usdc", "usdt"):
            key = "usd"
        try:
            return self.currency[key]
        except KeyError:
            raise InvalidInput(f"no portfolio-margin parameters for currency {currency!r}", code="margin.unknown_currency") from None

    def with_overrides(self, model_params: dict[str, Any]) -> PMParams:
        """A copy with values replaced from a ``model_params``-shaped dict (partial dicts allowed)."""
        if not isinstance(model_params, dict):
            raise InvalidInput("model_params must be an object", code="input.model_params")
        pairs = dict(self.currency_pair)
        for name, values in (model_params.get("currency_pair") or {}).items():
            pairs[name] = _merge(pairs.get(name, PMPairParams()), values, f"currency_pair.{name}")
        ccys = dict(self.currency)
        for name, values in (model_params.get("currency") or {}).items():
            ccys[name.lower()] = _merge(ccys.get(name.lower(), PMCurrencyParams()), values, f"currency.{name}")
        general = _merge(self.general, model_params.get("general") or {}, "general")
        return PMParams(pairs, ccys, general, self.choices)

    @staticmethod
    def from_model_params(model_params: dict[str, Any]) -> PMParams:
        """Build from a simulator ``model_params`` dict (unknown keys such as ``timestamp`` are ignored)."""
        return PMParams().with_overrides(model_params)

    def to_model_params(self) -> dict[str, Any]:
        """The simulator-shaped ``model_params`` dict."""
        return {
            "currency_pair": {k: _asdict(v) for k, v in self.currency_pair.items()},
            "currency": {k: _asdict(v) for k, v in self.currency.items()},
            "general": _asdict(self.general),
        }


def _asdict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _merge(base: Any, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise InvalidInput(f"model_params.{where} must be an object", code="input.model_params")
    known = {f.name: f for f in fields(base)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            continue  # e.g. general.timestamp
        current = getattr(base, key)
        try:
            if isinstance(current, bool):
                changes[key] = bool(value)
            elif isinstance(current, int):
                changes[key] = int(value)
            elif isinstance(current, float):
                changes[key] = float(value)
            else:
                changes[key] = value
        except (TypeError, ValueError):
            raise InvalidInput(f"model_params.{where}.{key}: {value!r} is not a number", code="input.model_params") from None
    return replace(base, **changes)


# Defaults: BTC from the official pme/simulate example (2024-06-17), ETH from the live response (2026-02-15),
# deribit.md §2.2. USDC-settled pairs reuse the underlying's grid.
_BTC_PAIR = PMPairParams(price_range=0.16, volatility_range_up=0.5, m_inc=0.00005)
_ETH_PAIR = PMPairParams(price_range=0.18, volatility_range_up=0.4, m_inc=0.000004)

DEFAULT_PM = PMParams(
    currency_pair={"btc_usd": _BTC_PAIR, "eth_usd": _ETH_PAIR, "btc_usdc": _BTC_PAIR, "eth_usdc": _ETH_PAIR},
    currency={
        "btc": PMCurrencyParams(0.01, 0.075, 0.0, 0.0, 100_000.0, 0.0, "both", False),
        "eth": PMCurrencyParams(0.005, 0.05, 0.6, 20_000_000.0, 200_000.0, 0.0, "both", False),
        "usd": PMCurrencyParams(0.01, 0.1, 0.4, 1_000_000.0, 25_000.0, 0.0, "none", False),
    },
)
"""Default portfolio-margin parameters (Deribit's published simulator values)."""

ALERT_LEVELS: tuple[float, ...] = (0.5, 0.8, 1.0)
"""MM-usage levels at which a MarginAlert is published."""

ZERO = _D(0)
