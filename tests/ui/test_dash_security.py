"""Binding rules of the dashboard: loopback is open, any other address needs a token (generated and shown once)."""

import pytest

from app.desk import Desk
from app.errors import NotBuilt
from connectors.sim.listing import ListingConfig
from connectors.sim.venue import SimConfig
from ui.dash.security import is_loopback, resolve_token, token_ok
from ui.dash.serve import build_server
from ui.dash.source import LiveSource, StoredSource


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.5.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.org")


def test_token_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_DASH_TOKEN", raising=False)
    assert resolve_token("127.0.0.1") == (None, False)
    token, generated = resolve_token("0.0.0.0")
    assert generated and token and len(token) >= 24
    assert resolve_token("0.0.0.0", "given") == ("given", False)
    monkeypatch.setenv("DESK_DASH_TOKEN", "from-env")
    assert resolve_token("0.0.0.0") == ("from-env", False)
    assert token_ok(None, None) and token_ok("a", "a") and not token_ok("a", "b") and not token_ok("a", None)


def test_non_loopback_bind_prints_a_generated_token_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_DASH_TOKEN", raising=False)
    lines: list[str] = []
    desk = Desk(seed=5, sim=SimConfig(seed=5, listing=ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=0, strikes_per_expiry=6)))
    # 0.0.0.0 with port 0 binds an ephemeral port; nothing is served (we close it at once).
    server = build_server(LiveSource(desk), host="0.0.0.0", port=0, echo=lines.append)
    server.server_close()
    assert len(lines) == 1 and lines[0].startswith("dashboard token (shown once): ")


def test_stored_source_refuses_what_if() -> None:
    class _Store:
        def latest_snapshot(self, kind: str) -> None:
            return None

    with pytest.raises(NotBuilt) as info:
        StoredSource(_Store()).what_if([])
    assert info.value.code == "dash.read_only"


def test_thin_keeps_first_and_last_and_bounds_the_points() -> None:
    import numpy as np

    from ui.dash.widgets import thin

    cols = {"ts": np.arange(100_000), "x": np.arange(100_000) * 2.0}
    out = thin(cols, max_points=1000)
    assert out["ts"][0] == 0 and out["ts"][-1] == 99_999 and len(out["ts"]) <= 1001
    assert np.all(out["x"] == out["ts"] * 2.0)
    small = {"ts": np.arange(10)}
    assert thin(small) is small


def test_live_source_series_are_columns() -> None:
    desk = Desk(seed=5, sim=SimConfig(seed=5, listing=ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=0, strikes_per_expiry=6)))
    src = LiveSource(desk)
    src.publish()
    desk.advance(1_000)
    src.publish()
    cols = src.series("desk")
    assert list(cols["ts"]) == sorted(cols["ts"]) and len(cols["ts"]) == 2
    assert cols["BTC.equity"].shape == (2,) and cols["equity_usd"][0] > 0
