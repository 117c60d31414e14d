"""PMPortfolio on many positions: shared call/put revaluation, forwards, typed input errors, hypothetical sizes."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain import Instrument
from app.engine.margin_params import DEFAULT_PM
from app.engine.margin_pm import MarkInput, PMPortfolio, price_moves, vol_shocks
from app.errors import InvalidInput
from app.pricing import black76

NOW = 1_718_000_000_000
INDEX = {"btc_usd": 65_000.0, "eth_usd": 3_500.0}
F = 65_400.0


def _mark(name: str, iv: float, fwd: float | None = F) -> MarkInput:
    inst = Instrument.parse(name)
    f = fwd if fwd is not None else F
    px = float(black76(f, float(inst.strike), inst.years_to_expiry(NOW), iv, inst.is_call).price) / f  # type: ignore[arg-type]
    return MarkInput(px, iv, fwd)


def _direct(name: str, size: float, iv: float, fwd: float) -> np.ndarray:
    """Standard then extended P&L of one inverse option, each scenario priced on its own with black76."""
    inst = Instrument.parse(name)
    k, t, call = float(inst.strike), max(inst.years_to_expiry(NOW), 1e-12), inst.is_call  # type: ignore[arg-type]
    pair = DEFAULT_PM.pair("btc_usd")
    up, down = vol_shocks(np.array([t * 365.0]), pair, DEFAULT_PM.choices)
    vols = {"up": iv + max(iv, pair.min_volatility_for_shock_up) * up[0], "same": iv, "down": max(iv * (1 - down[0]), 0.01)}
    base = float(black76(fwd, k, t, iv, call).price) / fwd
    scen = [(m, vols[v]) for m in price_moves(pair, 4) for v in DEFAULT_PM.choices.vol_order]
    scen += [(m, vols["up"]) for m in DEFAULT_PM.choices.extended_moves]
    return np.array([size * (float(black76(fwd * (1 + m), k, t, v, call).price) / (fwd * (1 + m)) - base) for m, v in scen])


# Deep in and out of the money, near the money, one day and one year: the tails are where a shared time value
# would lose accuracy if it came from subtracting intrinsic value from an in-the-money price.
STRIKES = (15_000, 40_000, 65_000, 66_000, 90_000, 250_000)
EXPIRIES = ("12JUN24", "27JUN25")


def test_call_and_put_of_one_strike_are_each_revalued_exactly() -> None:
    positions: dict[str, float] = {}
    marks: dict[str, MarkInput] = {}
    for e in EXPIRIES:
        for j, k in enumerate(STRIKES):
            for cp, size in (("C", 1.5 + j), ("P", -2.0 + j)):
                name = f"BTC-{e}-{k}-{cp}"
                positions[name] = size
                marks[name] = _mark(name, 0.6)
    # One pair whose put has its own vol: it must not borrow the call's time value.
    marks["BTC-27JUN25-90000-P"] = _mark("BTC-27JUN25-90000-P", 0.7)
    pf = PMPortfolio(positions, marks, INDEX, NOW)
    vectors = pf.initial_vectors()
    assert list(vectors) == list(positions)
    for name, size in positions.items():
        got = np.array(vectors[name]["standard"] + vectors[name]["extended"])
        want = _direct(name, size, marks[name].mark_iv, F)  # type: ignore[arg-type]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
        alone = PMPortfolio({name: size}, {name: marks[name]}, INDEX, NOW).initial_vectors()[name]
        np.testing.assert_allclose(got, alone["standard"] + alone["extended"], rtol=1e-13, atol=1e-300)


def test_option_forward_comes_from_its_future_then_the_index() -> None:
    call, put = "BTC-28JUN24-70000-C", "BTC-28JUN24-60000-P"
    no_fwd = {call: MarkInput(0.01, 0.55, None), put: MarkInput(0.01, 0.6, None)}
    pos = {call: 1.0, put: -1.0}
    with_future = PMPortfolio(pos, {**no_fwd, "BTC-28JUN24": MarkInput(66_000.0)}, INDEX, NOW).initial_vectors()
    explicit = PMPortfolio(pos, {call: MarkInput(0.01, 0.55, 66_000.0), put: MarkInput(0.01, 0.6, 66_000.0)}, INDEX, NOW)
    assert with_future == explicit.initial_vectors()
    from_index = PMPortfolio(pos, no_fwd, INDEX, NOW).initial_vectors()
    at_index = PMPortfolio(pos, {call: MarkInput(0.01, 0.55, 65_000.0), put: MarkInput(0.01, 0.6, 65_000.0)}, INDEX, NOW)
    assert from_index == at_index.initial_vectors()


@pytest.mark.parametrize(
    ("positions", "marks", "code"),
    [
        ({"BTC_USDC": 1.0}, {}, "margin.spot"),
        ({"BTC-28JUN24-70000-C": 1.0}, {}, "margin.missing_mark"),
        ({"BTC-28JUN24-70000-C": 1.0}, {"BTC-28JUN24-70000-C": MarkInput(0.01)}, "margin.missing_mark"),
        ({"BTC-28JUN24-70000-C": "1"}, {"BTC-28JUN24-70000-C": MarkInput(0.01, 0.5)}, "input.nan"),
        ({"BTC-28JUN24-70000-C": float("inf")}, {"BTC-28JUN24-70000-C": MarkInput(0.01, 0.5)}, "input.nan"),
        ({"BTC-28JUN24-70000-C": 1.0}, {"BTC-28JUN24-70000-C": MarkInput(0.01, float("nan"), F)}, "input.nan"),
        ({"BTC_USDC-PERPETUAL": 1.0}, {}, "margin.missing_mark"),
        ({"BTC-PERPETUAL": 1.0}, {"BTC-PERPETUAL": MarkInput(float("nan"))}, "input.nan"),
    ],
)
def test_bad_inputs_are_typed(positions: dict, marks: dict, code: str) -> None:
    index = {**INDEX, "btc_usdc": 65_000.0}
    many = {**positions, **{f"BTC-28JUN24-{k}-C": 0.1 for k in range(50_500, 80_000, 1_000)}}
    many_marks = {**marks, **{f"BTC-28JUN24-{k}-C": _mark(f"BTC-28JUN24-{k}-C", 0.5) for k in range(50_500, 80_000, 1_000)}}
    for pos, mk in ((positions, marks), (many, many_marks)):  # alone, and among many positions
        with pytest.raises(InvalidInput) as exc:
            PMPortfolio(pos, mk, index, NOW)
        assert exc.value.code == code


def test_extra_sizes_equal_a_portfolio_holding_them() -> None:
    names = [f"BTC-28JUN24-{k}-{cp}" for k in (60_000, 65_000, 70_000) for cp in "CP"] + ["BTC-PERPETUAL", "ETH-PERPETUAL"]
    marks = {n: (MarkInput(65_100.0) if "PERP" in n else _mark(n, 0.55)) for n in names}
    marks["ETH-PERPETUAL"] = MarkInput(3_510.0)
    pos = {n: 0.5 * (i - 3) for i, n in enumerate(names)}
    extra = {"BTC-28JUN24-65000-P": 2.0, "BTC-PERPETUAL": -1.0, "ETH-PERPETUAL": 7.0}
    got = PMPortfolio(pos, marks, INDEX, NOW).pair_risk("btc_usd", "BTC", extra)
    held = {n: pos[n] + extra.get(n, 0.0) for n in names}
    want = PMPortfolio(held, marks, INDEX, NOW).pair_risk("btc_usd", "BTC")
    np.testing.assert_allclose(got.standard, want.standard, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got.extended, want.extended, rtol=1e-14, atol=1e-15)
    assert got.delta_by_expiry == pytest.approx(want.delta_by_expiry, rel=1e-14)
    assert got.years_by_expiry == want.years_by_expiry
    pf = PMPortfolio(pos, marks, INDEX, NOW)
    assert pf.positions == pos
    assert {n: i.name for n, i in pf.instruments.items()} == {n: n for n in names}
    assert pf.pairs_of("BTC") == ["btc_usd"] and pf.pairs_of("ETH") == ["eth_usd"]


def test_thread_pool_gives_the_one_core_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.engine.margin_pm as margin_pm

    names = [f"BTC-{e}-{k}-{cp}" for e in EXPIRIES for k in range(40_000, 90_000, 2_500) for cp in "CP"]
    marks = {n: _mark(n, 0.5 + 0.001 * (i % 7)) for i, n in enumerate(names)}
    pos = {n: 1.0 - 0.05 * i for i, n in enumerate(names)}
    one = PMPortfolio(pos, marks, INDEX, NOW).initial_vectors()
    monkeypatch.setattr(margin_pm, "_PARALLEL_MIN", 10)  # every grid goes to the pool
    monkeypatch.setattr(margin_pm.os, "cpu_count", lambda: 4)
    monkeypatch.setenv("DESK_PM_THREADS", "3")
    assert margin_pm.revalue_threads() == 3
    pooled = PMPortfolio(pos, marks, INDEX, NOW).initial_vectors()
    assert list(pooled) == list(one)
    for name, vec in one.items():  # parts below the compiled kernel's size take numpy: agree to rounding
        np.testing.assert_allclose(pooled[name]["standard"] + pooled[name]["extended"], vec["standard"] + vec["extended"], rtol=1e-12, atol=1e-15)
    monkeypatch.setenv("DESK_PM_THREADS", "many")
    with pytest.raises(InvalidInput) as exc:
        PMPortfolio(pos, marks, INDEX, NOW)
    assert exc.value.code == "input.config"
