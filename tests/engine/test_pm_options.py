"""Portfolio margin with options and linear instruments: revaluation on the documented grid, aggregation rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.domain import MS_PER_YEAR, Instrument
from app.engine.margin_params import DEFAULT_PM
from app.engine.margin_pm import price_moves, simulate_pm, vol_shocks
from app.errors import InvalidInput
from app.pricing import black76

NOW = 1_718_000_000_000
CALL = "BTC-28JUN24-70000-C"
F = 65_400.0
IV = 0.55


def _marks(iv_pct: float = 55.0) -> dict:
    inst = Instrument.parse(CALL)
    t = inst.years_to_expiry(NOW)
    mark = float(black76(F, 70_000.0, t, iv_pct / 100, True).price) / F
    return {CALL: {"mark_price": mark, "mark_iv": iv_pct, "underlying_price": F}}


def test_option_vector_is_a_full_black76_revaluation() -> None:
    out = simulate_pm({CALL: -2.0}, _marks(), {"btc_usd": 65_000.0}, None, now_ms=NOW)
    vec = np.array(out["initial_risk_vectors"][CALL]["standard"])
    inst = Instrument.parse(CALL)
    t = inst.years_to_expiry(NOW)
    pair = DEFAULT_PM.pair("btc_usd")
    up, down = vol_shocks(np.array([t * 365.0]), pair, DEFAULT_PM.choices)
    vols = {"up": IV + max(IV, 0.5) * up[0], "same": IV, "down": IV * (1 - down[0])}
    base = float(black76(F, 70_000.0, t, IV, True).price) / F
    j = 0
    for m in price_moves(pair, 4):
        for v in DEFAULT_PM.choices.vol_order:
            f = F * (1 + m)
            want = -2.0 * (float(black76(f, 70_000.0, t, vols[v], True).price) / f - base)
            assert vec[j] == pytest.approx(want, abs=1e-12)
            j += 1
    # Short-dated (< 30 days): the short-term vega power applies.
    assert up[0] == pytest.approx(0.5 * (30 / (t * 365)) ** 0.3)
    # The extended table uses vol up only, at the KB's moves.
    ext = out["initial_risk_vectors"][CALL]["extended"]
    f5 = F * 6.0
    assert ext[-1] == pytest.approx(-2.0 * (float(black76(f5, 70_000.0, t, vols["up"], True).price) / f5 - base), abs=1e-12)


def test_short_option_worst_case_and_mm_factor() -> None:
    out = simulate_pm({CALL: -2.0, "BTC-PERPETUAL": 0.5}, {**_marks(), "BTC-PERPETUAL": {"mark_price": 65_100.0}},
                      {"btc_usd": 65_000.0}, None, now_ms=NOW)
    m = out["margins"]["btc"]
    d = m["initial_margin_details"]
    agg = out["aggregated_risk_vectors"]["btc_btc"]
    worst = -min(min(agg["standard"]), min(agg["extended"]))
    assert d["risk_matrix_margin_details"]["worst_case"] == pytest.approx(max(worst, 0.0))
    assert m["maintenance_margin"] == pytest.approx(0.8 * d["risk_matrix_margin"])
    assert all(x <= 0 for x in agg["standard"])  # BTC pnl_offset 0: no gain offsets a loss
    # Roll shock: perpetual 0.01 x |size|; the option's delta in its expiry bucket at max(exp(0.075 T) - 1, 0.01).
    inst = Instrument.parse(CALL)
    t = (inst.expiry_ms - NOW) / MS_PER_YEAR
    opt_delta = -2.0 * float(black76(F, 70_000.0, t, IV, True).delta)
    want_roll = 0.01 * 0.5 + abs(opt_delta) * max(math.expm1(0.075 * t), 0.01)
    assert d["risk_matrix_margin_details"]["roll_shock"] == pytest.approx(want_roll, rel=1e-12)


def test_linear_usdc_perpetual_in_usd() -> None:
    out = simulate_pm({"BTC_USDC-PERPETUAL": 2.0}, {"BTC_USDC-PERPETUAL": {"mark_price": 65_000.0}},
                      {"btc_usdc": 65_000.0}, None, now_ms=NOW)
    vec = out["initial_risk_vectors"]["BTC_USDC-PERPETUAL"]["standard"]
    assert vec[0] == pytest.approx(2.0 * 65_000.0 * -0.16)
    agg = out["aggregated_risk_vectors"]["btc_usdc"]["standard"]
    assert agg[-1] == pytest.approx(min(2.0 * 65_000.0 * 0.16 * 0.4, 1_000_000))  # usd pnl_offset 0.4 on gains
    m = out["margins"]["usdc"]
    assert m["initial_margin_details"]["risk_matrix_margin_details"]["roll_shock"] == pytest.approx(0.01 * 2.0 * 65_000.0)


def test_missing_or_bad_marks_are_typed() -> None:
    with pytest.raises(InvalidInput) as exc:
        simulate_pm({CALL: -1.0}, {CALL: {"mark_price": 0.01}}, {"btc_usd": 65_000.0}, None, now_ms=NOW)
    assert exc.value.code == "margin.missing_mark"
    with pytest.raises(InvalidInput) as exc:
        simulate_pm({CALL: -1.0}, _marks(), {}, None, now_ms=NOW)
    assert exc.value.code == "margin.missing_index"
    with pytest.raises(InvalidInput) as exc:
        simulate_pm({CALL: float("nan")}, _marks(), {"btc_usd": 65_000.0}, None, now_ms=NOW)
    assert exc.value.code == "input.nan"
    with pytest.raises(InvalidInput):
        simulate_pm({CALL: -1.0}, _marks(), {"btc_usd": 65_000.0}, None)  # no timestamp
