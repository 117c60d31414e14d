"""Pure formatting and keymap helpers of the TUI (no Textual app)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.domain import ms_from_utc
from app.errors import ConfigError
from ui.tui.format import (
    DASH,
    expiry_kind,
    expiry_label,
    fmt_coin,
    fmt_iv,
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
    assert fmt_size(1500.0) == "1,500" and fmt_size(0.1) == "0.1" and fmt_size(2.0) == "2"
    assert fmt_sig(0.0000213456, 3) == "0.0000213" and fmt_sig(1234.5, 3) == "1,234" and fmt_sig(0.0) == "0"


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
