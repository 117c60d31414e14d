"""`desk margin what-if FILE [--model sm|pm] [--json]` from outside, on Deribit's two simulator examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.engine.whatif_file import evaluate_whatif, parse_whatif
from app.errors import DeskError

FIX = Path(__file__).parents[1] / "fixtures" / "margin"
runner = CliRunner()
TOL = 1e-8


def _run(*args: str):
    return runner.invoke(app, ["margin", "what-if", *args])


@pytest.mark.parametrize(
    ("whatif", "reference", "ccy", "key"),
    [("whatif_btc_pm.json", "pme_simulate_btc_2024.json", "btc", "btc_btc"),
     ("whatif_eth_pm.json", "pme_simulate_eth_2026.json", "eth", "eth_eth")],
)
def test_json_output_reproduces_the_simulator(whatif: str, reference: str, ccy: str, key: str) -> None:
    res = _run(str(FIX / whatif), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    ref = json.loads((FIX / reference).read_text())
    want = ref["margins"][ccy]
    assert out["initial_margin"] == pytest.approx(want["initial_margin"], abs=TOL)
    assert out["maintenance_margin"] == pytest.approx(want["maintenance_margin"], abs=TOL)
    rd, wd = out["risk_matrix_margin_details"], want["initial_margin_details"]["risk_matrix_margin_details"]
    for field in ("worst_case", "delta_shock", "roll_shock"):
        assert rd[field] == pytest.approx(wd[field], abs=TOL)
    assert rd["worst_case_bucket"] == wd["worst_case_bucket"]
    assert out["aggregated_risk_vectors"][key]["standard"] == pytest.approx(ref["aggregated_risk_vectors"][key]["standard"], abs=TOL)
    for name, vec in ref["initial_risk_vectors"].items():
        assert out["initial_risk_vectors"][name]["standard"] == pytest.approx(vec["standard"], abs=TOL)
        assert out["initial_risk_vectors"][name]["extended"] == pytest.approx(vec["extended"], abs=TOL)
    if "balance" in json.loads((FIX / whatif).read_text()):
        assert out["available_funds"] == pytest.approx(out["margin_balance"] - out["initial_margin"], abs=1e-12)
    else:
        assert "available_funds" not in out


def test_table_output_and_model_switch() -> None:
    res = _run(str(FIX / "whatif_btc_pm.json"))
    assert res.exit_code == 0, res.output
    assert "initial margin" in res.output and "worst bucket" in res.output and "0.1228613" in res.output
    sm = _run(str(FIX / "whatif_btc_pm.json"), "--model", "sm", "--json")
    assert sm.exit_code == 0, sm.output
    out = json.loads(sm.output)
    perp = 0.314538364
    fut = 0.001187534
    im = perp * (0.02 + perp * 0.00005) + fut * (0.02 + fut * 0.00005) + 0.000018212
    assert out["model"] == "sm" and out["initial_margin"] == pytest.approx(im, abs=1e-12)
    assert "risk_matrix_margin_details" not in out


def test_sm_with_options_and_orders(tmp_path: Path) -> None:
    doc = {
        "timestamp": 1718619740501, "currency": "BTC", "model": "sm", "balance": 2.0,
        "index_prices": {"btc_usd": 65000.0},
        "positions": {"BTC-28JUN24-70000-C": -1.0},
        "marks": {"BTC-28JUN24-70000-C": {"mark_price": 0.012, "mark_iv": 55.0, "underlying_price": 65000.0},
                  "BTC-28JUN24-60000-P": {"mark_price": 0.02, "mark_iv": 60.0, "underlying_price": 65000.0}},
        "orders": [{"instrument": "BTC-28JUN24-60000-P", "side": "buy", "amount": 2.0, "price": 0.021}],
    }
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    res = _run(str(path), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    call_im = max(0.15 - 5000 / 65000, 0.1) + 0.012
    assert out["initial_margin"] == pytest.approx(call_im + 2 * 0.021, abs=1e-12)  # buy order reserves its premium
    assert out["maintenance_margin"] == pytest.approx(0.075 + 0.012, abs=1e-12)
    assert out["available_funds"] == pytest.approx(2.0 - out["initial_margin"], abs=1e-12)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d["positions"].update({"BTC-PERPETUALX": 1.0}), "instrument.invalid"),
        (lambda d: d["positions"].update({"BTC-27SEP24": 1.0}), "margin.missing_mark"),
        (lambda d: d["marks"]["BTC-PERPETUAL"].update({"mark_price": float("nan")}), "input.nan"),
        (lambda d: d["index_prices"].update({"btc_usd": -1}), "input.negative"),
        (lambda d: d.update({"orders": [{"instrument": "BTC-PERPETUAL", "side": "buy", "amount": -5}]}), "input.negative"),
        (lambda d: d.update({"model": "xm"}), "margin.model"),
        (lambda d: d.update({"surprise": 1}), "input.whatif"),
    ],
)
def test_bad_files_get_typed_errors(tmp_path: Path, mutate, code: str) -> None:
    doc = json.loads((FIX / "whatif_btc_pm.json").read_text())
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    res = _run(str(path), "--json")
    assert res.exit_code == 2
    assert code in res.output
    with pytest.raises(DeskError) as exc:
        evaluate_whatif(parse_whatif(json.loads(path.read_text())))
    assert exc.value.code == code


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    res = _run(str(tmp_path / "missing.json"))
    assert res.exit_code == 2 and "input.file" in res.output
    (tmp_path / "x.json").write_text("{not json")
    res = _run(str(tmp_path / "x.json"))
    assert res.exit_code == 2 and "input.json" in res.output
