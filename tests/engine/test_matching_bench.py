"""The matching benchmark's harness on a small workload: every row replays the same ops and agrees with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.matching import generate, main


def test_the_engine_agrees_with_the_workload_and_peer_only_rows_say_why_they_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DESK_BENCH_PEER_PYTHON", raising=False)
    out = tmp_path / "matching.jsonl"
    impls = "ref_heap,deltadesk,deltadesk_journal,orderly_chaos_raw_peer"
    assert main(["--ops", "3000", "--workloads", "steady", "--impls", impls, "--json", str(out)]) == 0
    recs = {r["impl"]: r for r in map(json.loads, out.read_text().splitlines())}
    wl = generate("steady", 3000)
    assert wl["trades"] > 0
    for impl in ("ref_heap", "deltadesk", "deltadesk_journal"):
        assert (recs[impl]["trades"], recs[impl]["volume"]) == (wl["trades"], wl["volume"]), impl
        assert recs[impl]["agree"] is True
    assert recs["deltadesk_journal"]["journal_bytes"] > 0
    # Without --peer-python the 3.13 row is not silently run under the project's interpreter.
    assert "--peer-python" in recs["orderly_chaos_raw_peer"]["skipped"]
