"""Backtests through the real Desk (simulated venue, matching and margin engines) and historical replay."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.backtest_desk import build_paths, check_ohlc_csv, make_desk
from app.cli import app
from app.errors import ConfigError, InvalidInput
from strategies.backtest import METRIC_KEYS, BookSpec, PathSpec, aggregate, attribute_interval, run_backtest, run_sweep
from strategies.reports import write_report

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CRASH_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "backtest" / "btc_usdt_binance_spot_1h_20200304_20200312.csv"
HAS_BROWSER = Path("/usr/bin/chromium").exists() or any(shutil.which(b) for b in ("chromium", "google-chrome", "chrome"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NO_HEDGE = {"active": True, "band": {"upper": 1e9, "lower": 1e9}}  # a band no book leaves: the hedger only watches
SHORT = PathSpec(kind="sim", seed=5, days=0.05, step_ms=60_000)


@pytest.fixture(scope="module")
def result():
    return run_backtest({"active": True, "check_interval_s": 60, "band": {"upper": 0.02, "lower": 0.02}}, SHORT,
                       desk_factory=make_desk, sample_ms=600_000)


def test_default_book_is_a_short_atm_straddle_of_the_nearest_monthly(result) -> None:
    legs = result["book"]["legs"]
    assert len(legs) == 2 and {leg["instrument"][-1] for leg in legs} == {"C", "P"}
    assert len({leg["instrument"].rsplit("-", 2)[0] for leg in legs}) == 1  # same expiry and strike
    assert all(leg["side"] == "sell" and leg["amount"] == 1.0 for leg in legs)
    assert result["book"]["premium_coin"] > 0


def test_metrics_are_complete_and_consistent(result) -> None:
    m = result["metrics"]
    for k in METRIC_KEYS:
        assert k in m
    assert m["hedges"] >= 1 and m["fills"] >= 1  # a tight band on a short straddle needs hedging
    assert set(m["pnl_attribution"]) == {"delta", "gamma", "theta", "vega", "fees", "residual"}
    assert sum(m["pnl_attribution"].values()) == pytest.approx(m["pnl"], abs=1e-6)
    assert 0 <= m["time_outside_band"] <= 1 and m["max_margin_usage"] > 0 and m["liquidations"] == 0
    assert m["hedging_error_worst"] <= m["pnl"] + 1e-9
    s = result["series"]
    assert len(s["ts"]) == len(s["delta"]) == len(s["pnl"]) >= 2
    json.dumps(result)


def test_same_seed_same_result(result) -> None:
    again = run_backtest({"active": True, "check_interval_s": 60, "band": {"upper": 0.02, "lower": 0.02}}, SHORT,
                         desk_factory=make_desk, sample_ms=600_000)
    a = {k: v for k, v in result["metrics"].items() if k not in ("wall_s", "days_per_s")}
    b = {k: v for k, v in again["metrics"].items() if k not in ("wall_s", "days_per_s")}
    assert a == b


def test_report_plots_are_written(result, tmp_path) -> None:
    files = write_report(result, tmp_path, frontier=[{"rule": "fixed", "label": "0.1", "cost": 1.0, "error": 2.0}], png=False)
    assert {p.name for p in files} == {"delta.html", "pnl.html", "frontier.html"}
    assert "band upper" in (tmp_path / "delta.html").read_text()


@pytest.mark.skipif(not HAS_BROWSER, reason="no Chrome or Chromium for kaleido")
def test_report_pngs_are_drawn_by_the_browser(result, tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="strategies.reports"):
        files = write_report(result, tmp_path, frontier=[{"rule": "fixed", "label": "0.1", "cost": 1.0, "error": 2.0}])
    pngs = [p for p in files if p.suffix == ".png"]
    assert sorted(p.name for p in pngs) == ["delta.png", "frontier.png", "pnl.png"], caplog.text
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000  # a drawn chart, not an empty canvas


def test_report_without_a_browser_keeps_the_html_and_says_why(result, tmp_path, monkeypatch, caplog) -> None:
    import kaleido

    calls = []

    def no_browser(specs: list[dict[str, object]], **_k: object) -> None:
        calls.append(len(specs))
        raise RuntimeError("Kaleido requires Google Chrome to be installed.")

    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", no_browser)
    with caplog.at_level(logging.WARNING, logger="strategies.reports"):
        files = write_report(result, tmp_path)
    assert {p.name for p in files} == {"delta.html", "pnl.html"}
    assert not list(tmp_path.glob("*.png")) and calls == [2, 2]  # tried twice, both figures each time
    assert "without PNG: RuntimeError: Kaleido requires Google Chrome" in caplog.text


def test_a_figure_the_browser_failed_to_draw_is_drawn_again(result, tmp_path, monkeypatch, caplog) -> None:
    import kaleido

    calls: list[list[str]] = []

    def flaky(specs: list[dict[str, object]], **kw: object) -> tuple[Exception, ...]:
        # kaleido hands back (does not raise) what failed when cancel_on_error is False: here the first delta.png
        assert kw.get("cancel_on_error") is False
        calls.append([Path(str(s["path"])).name for s in specs])
        for s in specs:
            if len(calls) > 1 or Path(str(s["path"])).name != "delta.png":
                Path(str(s["path"])).write_bytes(PNG_MAGIC)
        return () if len(calls) > 1 else (TimeoutError("render timed out"),)

    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", flaky)
    files = write_report(result, tmp_path)
    assert calls == [["delta.png", "pnl.png"], ["delta.png"]]  # only the missing one again
    assert sorted(p.name for p in files if p.suffix == ".png") == ["delta.png", "pnl.png"]


def test_sweep_and_aggregate() -> None:
    paths = [PathSpec(kind="sim", seed=s, days=0.02, step_ms=60_000) for s in (1, 2)]
    res = run_sweep([{"active": True}, {"active": True, "band": {"rule": "whalley_wilmott"}}], paths, desk_factory=make_desk,
                    sample_ms=600_000, workers=1)
    assert len(res) == 2 and all(len(r) == 2 for r in res)
    agg = aggregate(res[0])
    assert agg["paths"] == 2 and math.isfinite(agg["hedging_error_std"])
    assert res[1][0]["config"]["band"]["rule"] == "whalley_wilmott"


def test_long_book_option() -> None:
    r = run_backtest({"active": True}, PathSpec(kind="sim", seed=9, days=0.01, step_ms=60_000), desk_factory=make_desk,
                     book=BookSpec(structure="call", side="buy", size=0.5), sample_ms=300_000)
    assert [leg["side"] for leg in r["book"]["legs"]] == ["buy"] and r["book"]["legs"][0]["amount"] == 0.5


def test_path_and_csv_validation(tmp_path) -> None:
    with pytest.raises(InvalidInput):
        PathSpec(kind="sim", days=0)
    with pytest.raises(InvalidInput):
        PathSpec(kind="replay")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,close\n2020-01-01T00:00:00Z,1\n")
    with pytest.raises(ConfigError, match="missing column"):
        check_ohlc_csv(bad)
    daily = tmp_path / "d.csv"
    daily.write_text("timestamp,open,high,low,close\n2020-01-01T00:00:00Z,1,1,1,1\n2020-01-02T00:00:00Z,1,1,1,1\n")
    with pytest.raises(InvalidInput, match="hourly or 5-minute"):
        check_ohlc_csv(daily)
    with pytest.raises(ConfigError, match="--from"):
        build_paths(data=daily, start=None, end=None, day=None, paths=1, seed=1, days=1, step_ms=1000)
    assert len(build_paths(data=None, start=None, end=None, day=None, paths=3, seed=4, days=1, step_ms=1000)) == 3


def test_cli_backtest_json(tmp_path) -> None:
    r = CliRunner().invoke(app, ["backtest", "--days", "0.01", "--step", "60", "--db", str(tmp_path / "d.db"), "--out",
                                 str(tmp_path / "rep"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    for k in METRIC_KEYS:
        assert k in out
    assert out["backtest_id"] and (tmp_path / "rep" / "delta.html").exists()
    if HAS_BROWSER:  # the command draws PNGs by default
        assert (tmp_path / "rep" / "delta.png").read_bytes()[:8] == PNG_MAGIC
        assert str(tmp_path / "rep" / "pnl.png") in out["report_files"]
    from storage.store import SqlStore

    s = SqlStore(tmp_path / "d.db")
    assert s.get_backtest(out["backtest_id"])["metrics"]["hedges"] == out["hedges"]
    s.close()


@pytest.mark.skipif(not (DATA / "btc_usdt_binance_spot_1h.csv").exists(), reason="shared data absent")
def test_user_csv_replay(tmp_path) -> None:
    src = DATA / "btc_usdt_binance_spot_1h.csv"
    lines = src.read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if "2021-05-0" in ln or "2021-05-1" in ln]
    f = tmp_path / "mine.csv"
    f.write_text("\n".join(keep) + "\n")
    r = CliRunner().invoke(app, ["backtest", "--data", str(f), "--from", "2021-05-19T00:00:00Z", "--to", "2021-05-19T02:00:00Z",
                                 "--step", "60", "--db", str(tmp_path / "d.db"), "--out", str(tmp_path / "rep"), "--json", "--no-png"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["sim_days"] == pytest.approx(2 / 24) and "mine.csv" in out["paths"][0]


@pytest.mark.skipif(not (DATA / "btc_usdt_binance_spot_1h.csv").exists(), reason="shared data absent")
def test_black_thursday_window() -> None:
    r = run_backtest(None, PathSpec(kind="replay", start="2020-03-12T10:00:00Z", end="2020-03-12T13:00:00Z", step_ms=60_000),
                     desk_factory=make_desk, sample_ms=600_000)
    s = r["series"]["spot"]
    assert min(s) < 7_000 < max(s) and r["metrics"]["hedges"] >= 1


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "btc_usdt_binance_spot_1h.csv").exists(), reason="shared data absent")
@pytest.mark.parametrize("day", ["2020-03-12", "2021-05-19", "2022-11-09", "2024-08-05"])
def test_stress_days_default_config(day, tmp_path) -> None:
    r = run_backtest(None, PathSpec(kind="replay", day=day), desk_factory=make_desk)
    assert r["metrics"]["sim_days"] == pytest.approx(1.0)
    assert write_report(r, tmp_path, png=False)


@pytest.mark.slow
def test_long_accelerated_session_keeps_delta_in_band() -> None:
    cfg = {"active": True, "check_interval_s": 30, "band": {"upper": 0.03, "lower": 0.03},
           "limits": {"max_hedges_per_hour": 30, "max_order_size": 0.5}}
    r = run_backtest(cfg, PathSpec(kind="sim", seed=21, days=1.0, step_ms=30_000), desk_factory=make_desk, sample_ms=300_000)
    m = r["metrics"]
    assert m["hedges"] >= 3
    assert m["time_outside_band"] < 0.15  # outside only while a maker hedge is being worked
    assert m["max_abs_delta"] < 0.03 + 0.5  # never beyond the band plus one maximum order
    assert m["hedges"] <= 30 * 24 and m["liquidations"] == 0


def test_ray_missing_is_a_clear_error() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ray is installed")
    from app.errors import DeskError

    with pytest.raises(DeskError, match="pip install") as e:
        run_sweep([{"active": True}], [SHORT], desk_factory=make_desk, ray_address="127.0.0.1:6379")
    assert e.value.code == "backtest.ray_missing"


def test_cli_backtest_bad_config_names_the_key(tmp_path) -> None:
    f = tmp_path / "desk.toml"
    f.write_text('[strategies.h1]\nhedge_ratio = 2.0\n')
    r = CliRunner().invoke(app, ["backtest", "--config", str(f), "--db", str(tmp_path / "d.db")])
    assert r.exit_code == 2 and "strategies.h1.hedge_ratio" in r.output


def test_expand_sweep() -> None:
    from strategies.backtest import expand_sweep

    grid = expand_sweep(None, ["band.upper=0.05,0.1", "band.rule=fixed,whalley_wilmott"])
    assert len(grid) == 4 and grid[3][0] == {"band.upper": 0.1, "band.rule": "whalley_wilmott"}
    assert grid[3][1].band.rule == "whalley_wilmott" and grid[3][1].band.upper == 0.1
    with pytest.raises(ConfigError) as e:
        expand_sweep(None, ["band.upper=-1"])
    assert e.value.details["key"] == "band.upper"
    with pytest.raises(InvalidInput):
        expand_sweep(None, ["band.upper"])
    with pytest.raises(InvalidInput):
        expand_sweep(None, ["hedge_ratio.x=1"])


def test_cli_sweep_writes_a_frontier(tmp_path) -> None:
    r = CliRunner().invoke(app, ["backtest", "--days", "0.01", "--step", "60", "--sweep", "band.upper=0.02,0.2", "--workers", "1",
                                 "--db", str(tmp_path / "d.db"), "--out", str(tmp_path / "rep"), "--json", "--no-png"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert [s["settings"] for s in out["sweep"]] == [{"band.upper": 0.02}, {"band.upper": 0.2}]
    assert (tmp_path / "rep" / "frontier.html").exists()


def test_attribution_terms_sum_to_the_pnl_within_a_small_residual(result) -> None:
    a = result["metrics"]["pnl_attribution"]
    explained = a["delta"] + a["gamma"] + a["theta"] + a["vega"] + a["fees"]
    assert explained + a["residual"] == pytest.approx(result["metrics"]["pnl"], abs=1e-6)
    gross = abs(a["delta"]) + abs(a["gamma"]) + abs(a["theta"]) + abs(a["vega"]) + abs(a["fees"])
    assert gross > 0 and abs(a["residual"]) < 0.25 * gross  # the greeks explain the book, not the residual


def test_attribute_interval_of_an_inverse_perpetual_is_nearly_all_delta() -> None:
    # long 100,000 USD of the inverse perpetual, 30,000 -> 30,300 in five minutes: coin PnL N(1/F0 - 1/F1)
    held = {"BTC-PERPETUAL": 100_000.0}
    terms = attribute_interval(held, {"BTC-PERPETUAL": (30_000.0, 0.0)}, {"BTC-PERPETUAL": (30_300.0, 0.0)}, 0, 300_000)
    pnl = 100_000.0 * (1 / 30_000.0 - 1 / 30_300.0)
    assert terms["delta"] == pytest.approx(pnl, rel=0.02)
    # the 1/F convexity is the gamma term: what is left is third order, (dF/F)^2 of the PnL
    assert abs(terms["gamma"] + terms["delta"] - pnl) < 1.5 * 0.01**2 * abs(pnl) < abs(terms["gamma"])
    assert terms["theta"] == terms["vega"] == 0.0
    # an option that expired inside the interval, or has no mark at its end, is no Taylor term
    gone = attribute_interval({"BTC-27MAR20-7500-C": -1.0}, {"BTC-27MAR20-7500-C": (7_000.0, 0.9)},
                              {"BTC-27MAR20-7500-C": (6_000.0, 1.2)}, 1_585_296_000_000 - 60_000, 1_585_296_000_000 + 60_000)
    assert gone == dict.fromkeys(("delta", "gamma", "theta", "vega"), 0.0)
    assert attribute_interval(held, {"BTC-PERPETUAL": (30_000.0, 0.0)}, {}, 0, 300_000)["delta"] == 0.0


def test_pure_perpetual_book_pnl_is_delta() -> None:
    r = run_backtest(NO_HEDGE, PathSpec(kind="sim", seed=3, days=0.02, step_ms=60_000), desk_factory=make_desk,
                     book=BookSpec(structure="none", perpetual=200_000.0), sample_ms=300_000)
    m = r["metrics"]
    a = m["pnl_attribution"]
    assert m["hedges"] == 0 and abs(m["pnl"]) > 100  # the path moved the position
    assert a["theta"] == a["vega"] == 0.0
    # an inverse perpetual's coin value -N/F is convex: the small rest is its gamma, funding is in the residual
    assert a["delta"] == pytest.approx(m["pnl"] - a["fees"], rel=0.02)
    assert abs(a["gamma"]) < 0.02 * abs(m["pnl"]) and abs(a["residual"]) < 0.01 * abs(m["pnl"])


def test_over_levered_book_is_liquidated_in_the_black_thursday_crash(tmp_path) -> None:
    # 10 BTC of collateral (~74,000 USD) behind a short call and 800,000 USD long of the perpetual: the crash of
    # 2020-03-12 10:00-13:00 (a week of Binance hours before it, tests/fixtures/backtest) wipes the margin out
    path = PathSpec(kind="replay", data=str(CRASH_CSV), start="2020-03-12T10:00:00Z", end="2020-03-12T13:00:00Z", step_ms=60_000)
    r = run_backtest(NO_HEDGE, path, desk_factory=make_desk, book=BookSpec(structure="call", size=1.0, perpetual=800_000.0),
                     sample_ms=600_000)
    m = r["metrics"]
    assert min(r["series"]["spot"]) < 0.9 * r["series"]["spot"][0]
    assert m["liquidations"] == len(r["liquidation_events"]) >= 1 and m["max_margin_usage"] >= 1.0
    first = r["liquidation_events"][0]
    assert r["start_ms"] < first["ts"] <= r["end_ms"] and first["maintenance_margin"] >= first["margin_balance"]
    assert m["hedges"] == 0  # the hedger only watched: the venue's liquidator, not the hedger, cut the perpetual
    write_report(r, tmp_path, png=False)
    assert "liquidation started" in (tmp_path / "pnl.html").read_text()


def test_calm_path_reports_no_liquidation(result) -> None:
    assert result["metrics"]["liquidations"] == 0 and result["liquidation_events"] == [] and result["metrics"]["max_margin_usage"] < 0.5
