"""The hedging benchmark's analysis (benchmarks/hedging.py) on made-up frontiers: interpolation, ties, dominance, and
re-reporting a saved run."""

from __future__ import annotations

import json

import pytest

from benchmarks.hedging import dominance, main


def _pt(rule: str, label: str, cost: float, error: float) -> dict[str, float | str]:
    return {"rule": rule, "label": label, "cost": cost, "error": error}


POINTS = [
    _pt("fixed", "a", 4.0, 10.0), _pt("fixed", "b", 2.0, 20.0), _pt("fixed", "c", 0.0, 30.0),
    _pt("fixed", "worse", 5.0, 25.0),  # dominated by b (dearer and worse): not on the lower frontier
    _pt("whalley_wilmott", "w1", 1.0, 15.0),  # fixed frontier costs 3.0 at error 15: cheaper
    _pt("whalley_wilmott", "w2", 1.5, 25.0),  # fixed frontier costs 1.0 at error 25: dearer
    _pt("whalley_wilmott", "w3", 0.0, 30.0),  # both never hedged: the same cost, a tie
    _pt("whalley_wilmott", "w4", 0.0, 40.0),  # outside the fixed frontier's error range: not compared
]


def test_ww_is_compared_at_equal_error_along_the_lower_frontier() -> None:
    dom = dominance(POINTS, "error")
    by = {c["ww"]: c for c in dom["comparisons"]}
    assert set(by) == {"w1", "w2", "w3"}
    assert by["w1"]["other_cost"] == pytest.approx(3.0) and by["w1"]["outcome"] == "cheaper"
    assert by["w2"]["other_cost"] == pytest.approx(1.0) and by["w2"]["outcome"] == "dearer"
    assert by["w3"]["outcome"] == "same" and not by["w3"]["ww_cheaper"]
    assert dom["ww_cheaper_share"] == pytest.approx(1 / 3)
    assert "fixed worse" in dom["dominated"] and "whalley_wilmott w1" not in dom["dominated"]
    assert "fixed c" not in dom["dominated"]  # w3 equals it on both: equal is not dominated


def test_a_saved_run_is_reported_again(tmp_path, capsys) -> None:
    pts = [{**p, "cost_se": 0.1, "error_se": 1.0, "error_ex_vega": p["error"] / 2, "worst": -100.0, "hedges": 1.0,
            "time_outside_band": 0.0} for p in POINTS]
    run = {"points": pts, "per_path": [{"pnl": [1.0, 2.0, 3.0], "hedge_cost": [0.0] * 3, "hedges": [0] * 3, "vega": [0.0] * 3}
                                       for _ in pts],
           "sim_days": 1.0, "wall_s": 2.0, "days_per_s": 0.5, "days_per_process_s": 0.5, "paths": 3, "days": 0.25}
    f = tmp_path / "run.json"
    f.write_text(json.dumps(run))
    assert main(["--from-json", str(f)]) == 0
    out = capsys.readouterr().out
    assert "3 paths x 0.25 simulated days" in out and "w1" in out
    assert "WW cheaper in 33% of comparisons (1 at the same cost)" in out
    # a run saved without the ex-vega standard error gets it from its path count: 5 / sqrt(2 (3 - 1)) = 2.50
    row = next(line for line in out.splitlines() if line.startswith("fixed") and " a " in line)
    assert row.split()[6:8] == ["5.00", "2.50"]
