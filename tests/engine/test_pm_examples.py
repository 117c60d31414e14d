"""Portfolio margin reproduces Deribit's two ``private/pme/simulate`` responses (deribit.md §2.2-2.4) to 1e-8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.engine.margin_params import DEFAULT_PM, PMParams
from app.engine.margin_pm import simulate_pm

FIX = Path(__file__).parents[1] / "fixtures" / "margin"
TOL = 1e-8


def _load(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def _simulate(doc: dict, **kw: float) -> dict:
    return simulate_pm(
        doc["portfolio"]["position"],
        doc["ticker"],
        doc["index_price"],
        doc["model_params"],
        **kw,
    )


CASES = [
    ("pme_simulate_btc_2024.json", "btc", "btc_btc", {"mmp_margin": 0.06, "open_orders_margin": 0.000018212}),
    ("pme_simulate_eth_2026.json", "eth", "eth_eth", {}),
]


@pytest.mark.parametrize(("fixture", "ccy", "agg_key", "extra"), CASES)
def test_initial_risk_vectors_match(fixture: str, ccy: str, agg_key: str, extra: dict) -> None:
    doc = _load(fixture)
    out = _simulate(doc, **extra)
    assert set(out["initial_risk_vectors"]) == set(doc["initial_risk_vectors"])
    for name, vec in doc["initial_risk_vectors"].items():
        got = out["initial_risk_vectors"][name]
        np.testing.assert_allclose(got["standard"], vec["standard"], rtol=0, atol=TOL, err_msg=name)
        np.testing.assert_allclose(got["extended"], vec["extended"], rtol=0, atol=TOL, err_msg=name)


@pytest.mark.parametrize(("fixture", "ccy", "agg_key", "extra"), CASES)
def test_aggregated_vectors_match(fixture: str, ccy: str, agg_key: str, extra: dict) -> None:
    doc = _load(fixture)
    out = _simulate(doc, **extra)
    want = doc["aggregated_risk_vectors"][agg_key]
    got = out["aggregated_risk_vectors"][agg_key]
    assert len(got["standard"]) == 27 and len(got["extended"]) == 8
    np.testing.assert_allclose(got["standard"], want["standard"], rtol=0, atol=TOL)
    np.testing.assert_allclose(got["extended"], want["extended"], rtol=0, atol=TOL)
    if "pre_aggregated_risk_vectors" in doc:
        pre = doc["pre_aggregated_risk_vectors"][agg_key]
        np.testing.assert_allclose(out["pre_aggregated_risk_vectors"][agg_key]["standard"], pre["standard"], atol=TOL)
        np.testing.assert_allclose(out["pre_aggregated_risk_vectors"][agg_key]["extended"], pre["extended"], atol=TOL)


@pytest.mark.parametrize(("fixture", "ccy", "agg_key", "extra"), CASES)
def test_margins_match(fixture: str, ccy: str, agg_key: str, extra: dict) -> None:
    doc = _load(fixture)
    out = _simulate(doc, **extra)
    want = doc["margins"][ccy]
    got = out["margins"][ccy]
    wd = want["initial_margin_details"]
    gd = got["initial_margin_details"]
    for key in ("worst_case", "roll_shock", "delta_shock", "correlation_contingency"):
        assert gd["risk_matrix_margin_details"][key] == pytest.approx(wd["risk_matrix_margin_details"][key], abs=TOL), key
    assert gd["risk_matrix_margin_details"]["worst_case_bucket"] == wd["risk_matrix_margin_details"]["worst_case_bucket"]
    for key in ("risk_matrix_margin", "spot_margin", "mmp_margin", "open_orders_margin"):
        assert gd[key] == pytest.approx(wd[key], abs=TOL), key
    assert got["initial_margin"] == pytest.approx(want["initial_margin"], abs=TOL)
    assert got["maintenance_margin"] == pytest.approx(want["maintenance_margin"], abs=TOL)


def test_model_params_round_trip() -> None:
    doc = _load("pme_simulate_eth_2026.json")
    params = PMParams.from_model_params(doc["model_params"])
    assert params.pair("eth_usd").price_range == 0.18
    assert params.ccy("eth").pnl_offset == 0.6
    back = params.to_model_params()
    for name, values in doc["model_params"]["currency"].items():
        for key, value in values.items():
            assert back["currency"][name][key] == value


def test_defaults_are_the_published_parameters() -> None:
    btc = _load("pme_simulate_btc_2024.json")
    out_default = simulate_pm(btc["portfolio"]["position"], btc["ticker"], btc["index_price"], None, now_ms=1718619740501)
    out_given = _simulate(btc)
    assert out_default["margins"]["btc"]["maintenance_margin"] == out_given["margins"]["btc"]["maintenance_margin"]
    assert DEFAULT_PM.general.mm_factor == 0.8
