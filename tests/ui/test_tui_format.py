"""Pure formatting and keymap helpers of the TUI (no Textual app)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from app.domain import ms_from_utc
from app.errors import ConfigError
from ui.tui.format import (
    DASH,
    expiry_kind,
    expiry_label,
    fmt_coin,
    fmt_iv,
    fmt_money,
    fmt_sig,
    fmt_size,
    fmt_tenor,
    is_monthly,
    tenor_bucket,
)
from ui.tui.keymap import all_binding_ids, check_keymap
from ui.tui.widgets.chain import FULL_COLUMNS, check_columns, side_columns
from ui.tui.widgets.margin import level_style, usage_bar


def _ms(y: int, m: int, d: int) -> int:
    return ms_from_utc(datetime(y, m, d, 8, tzinfo=timezone.utc))


def test_numbers() -> None:
    assert fmt_coin(0.03456) == "0.0346" and fmt_coin(None) == DASH and fmt_coin(float("nan")) == DASH
    assert fmt_iv(0.5512) == "55.1" and fmt_iv(None) == DASH and fmt_iv(0.0) == DASH
    assert fmt_money(-14640.4, 0) == "-$14,640" and fmt_money(5.651) == "$5.65"
    assert fmt_size(1500.0) == "1,500" and fmt_size(0.1) == "0.1" and fmt_size(2.0) == "2"
    assert fmt_sig(0.0000213456, 3) == "0.0000213" and fmt_sig(1234.5, 3) == "1,234" and fmt_sig(0.0) == "0"


def test_sizes_keep_their_fractional_lots_at_any_magnitude() -> None:
    assert fmt_size(100.5) == "100.5" and fmt_size(-1234.5) == "-1,234.5" and fmt_size(250.0) == "250"
    assert fmt_size(0.125) == "0.125" and fmt_size(100.30000000000001) == "100.3"  # float noise is not a lot
    from ui.tui.format import lot_decimals

    assert fmt_size(100.5, Decimal("0.1")) == "100.5" and fmt_size(20_000.0, Decimal("10")) == "20,000"
    assert fmt_size(12.25, Decimal("0.01")) == "12.25" and fmt_size(7.0, Decimal("1")) == "7"
    assert lot_decimals(Decimal("0.1")) == 1 and lot_decimals(Decimal("10")) == 0 and lot_decimals(None) == 4


def test_expiry_classes_follow_deribit_listing() -> None:
    assert expiry_label(_ms(2024, 12, 27)) == "27DEC24" and expiry_label(None) == "PERP"
    assert expiry_kind(_ms(2024, 12, 27)) == "Q"  # last Friday of December
    assert expiry_kind(_ms(2025, 1, 31)) == "M"  # last Friday of January
    assert expiry_kind(_ms(2025, 1, 24)) == "W"  # a Friday, not the last
    assert expiry_kind(_ms(2025, 1, 22)) == "D"  # a Wednesday
    assert is_monthly(_ms(2025, 1, 31)) and not is_monthly(_ms(2025, 1, 24))


def test_tenor() -> None:
    now = _ms(2025, 1, 1)
    assert fmt_tenor(now + 5 * 3_600_000, now) == "5h" and fmt_tenor(_ms(2025, 1, 31), now) == "30d"
    assert [tenor_bucket(_ms(2025, 1, d), now) for d in (3, 20)] == ["<7d", "7-30d"]
    assert tenor_bucket(_ms(2025, 3, 1), now) == "30-90d" and tenor_bucket(_ms(2025, 6, 1), now) == ">90d"
    assert tenor_bucket(None, now) == "perp"


def test_keymap_overrides_are_checked() -> None:
    assert {"buy", "sell", "quit", "hedger_activate", "ticket_send"} <= all_binding_ids()
    assert check_keymap({"buy": "ctrl+b"}) == {"buy": "ctrl+b"}
    with pytest.raises(ConfigError, match="unknown action id 'byu'"):
        check_keymap({"byu": "ctrl+b"})
    with pytest.raises(ConfigError):
        check_keymap({"buy": " "})


def test_chain_columns() -> None:
    calls, puts = side_columns(FULL_COLUMNS)
    assert puts[:3] == ["pos", "bid_size", "bid_iv"] and puts[-1] == "oi"
    assert calls[0] == "oi" and calls[-1] == "pos"  # mirrored: greeks outside, position by the strike
    with pytest.raises(ConfigError, match="unknown column 'vomma'"):
        check_columns(["bid", "vomma"])


def test_usage_colours_follow_alert_levels() -> None:
    levels = (0.5, 0.8, 1.0)
    assert [level_style(u, levels) for u in (0.1, 0.6, 0.9)] == ["green", "yellow", "bold red"]
    bar = usage_bar("MM", 0.5, levels, width=10)
    assert bar.plain.count("█") == 5 and bar.plain.endswith("50.0%")


def test_log_lines_for_desk_events() -> None:
    from decimal import Decimal

    from app.domain import Alert, Fill, FillEvent, Liquidity, Lost, MarginAlert, Side, Timer
    from ui.tui.widgets.log import describe

    fill = Fill("t1", "o1", "BTC-PERPETUAL", Side.BUY, Decimal("60000"), Decimal("100"), Decimal("0.00001"), "BTC",
                Liquidity.TAKER, 0)
    assert describe(FillEvent(ts=0, fill=fill))[0].startswith("FILL    buy 100 BTC-PERPETUAL @ 60000")  # type: ignore[index]
    line, style = describe(MarginAlert(ts=0, account="main", currency="BTC", level=0.8, mm_usage=0.83))  # type: ignore[misc]
    assert "83.0%" in line and "80%" in line and "red" in style
    assert "margin.stale" in describe(Alert(ts=0, source="oracle", message="stale", severity="warning",  # type: ignore[index]
                                            code="margin.stale"))[0]
    assert "3 events dropped" in describe(Lost(ts=0, count=3))[0]  # type: ignore[index]
    assert describe(Timer(ts=0)) is None
    from ui.tui.widgets.log import alert_level, is_alarming

    assert is_alarming(MarginAlert(ts=0, account="main", currency="BTC", level=0.8, mm_usage=0.83))
    assert not is_alarming(Alert(ts=0, source="x", message="hello")) and not is_alarming(Lost(ts=0, count=1))
    assert alert_level(Alert(ts=0, source="x", message="m", severity="error")) == 1.0
    # With configured levels the second one is where a margin alert turns severe (0.8 of the defaults).
    from ui.tui.widgets.log import severe_level

    assert severe_level([0.5, 0.8, 1.0]) == 0.8 and severe_level([0.9, 0.3, 0.6]) == 0.6 and severe_level([0.7]) == 0.7
    alert = MarginAlert(ts=0, account="main", currency="BTC", level=0.6, mm_usage=0.61)
    assert "red" in describe(alert, severe_level([0.3, 0.6, 0.9]))[1]  # type: ignore[index]
    assert "red" not in describe(alert)[1]  # type: ignore[index]


def test_hedger_band_from_decisions() -> None:
    from ui.tui.widgets.hedger import band_gauge, band_of, decision_cells

    decisions = [
        {"ts": 1_000, "action": "mode", "reason": "dry_run -> active"},
        {"ts": 5_000, "action": "hedge", "reason": "outside band", "inputs": {"delta": -0.5, "band_lower": -0.1,
         "band_upper": 0.1, "target": 0.0, "unit": "coin"},
         "intents": [{"kind": "place", "request": {"side": "buy", "amount": "30000", "instrument": "BTC-PERPETUAL"}}]},
    ]
    band = band_of(decisions)
    assert band == {"delta": -0.5, "lower": -0.1, "upper": 0.1, "target": 0.0, "unit": "coin"}
    cells = decision_cells(decisions[1])
    assert cells["amount"] == "buy 30000 BTC-PERPETUAL" and cells["delta"] == "-0.5000" and cells["ts"] == "00:00:05"
    inside = band_gauge(0.0, -0.1, 0.1, width=21).plain
    outside = band_gauge(-0.5, -0.1, 0.1, width=21).plain
    bars = [i for i, ch in enumerate(inside) if ch == "│"]
    assert len(bars) == 2 and bars[0] < inside.index("●") < bars[1]  # between the band's edges
    assert outside.split()[1].startswith("●")  # pinned at the left edge when far outside
    assert band_of([{"ts": 1, "action": "none"}]) is None


def test_positions_group_totals() -> None:
    from app.domain import GreeksView
    from ui.tui.widgets.positions import sum_greeks

    total = sum_greeks([GreeksView(delta=0.1, vega_usd=5.0), GreeksView(delta=-0.3, vega_usd=1.0)])
    assert total.delta == pytest.approx(-0.2) and total.vega_usd == 6.0
