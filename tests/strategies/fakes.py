"""In-test fakes: a mutable DeskView for the hedger's decision tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.domain import GreeksView, MarginReport, PositionView, Quote


def option_position(instrument: str, size: float, delta: float, gamma: float, *, delta_bs: float | None = None,
                    account: str = "main", tag: str | None = None) -> PositionView:
    """A PositionView of an option with given total greeks (coin; gamma coin per USD)."""
    g = GreeksView(delta=delta, delta_bs=delta if delta_bs is None else delta_bs, gamma=gamma)
    return PositionView(instrument, size, 0.05, 0.05, 0.0, 0.0, g, account=account, tag=tag)


def future_position(instrument: str, size: float, mark: float, account: str = "main") -> PositionView:
    """A PositionView of a future/perpetual (size in USD for inverse ones)."""
    return PositionView(instrument, size, mark, mark, 0.0, 0.0, GreeksView(), account=account)


def margin(mm_usage: float = 0.1) -> MarginReport:
    """A BTC margin report with the given maintenance usage."""
    return MarginReport("main", "BTC", "sm", 10.0, 10.0, 10.0, 1.0, mm_usage * 10, 9.0, 0.1, mm_usage)


@dataclass
class FakeView:
    """A DeskView whose contents a test sets directly."""

    now: int = 1_704_067_200_000
    pos: list[PositionView] = field(default_factory=list)
    quotes: dict[str, Quote] = field(default_factory=dict)
    index: float = 40_000.0
    margins: dict[str, MarginReport] = field(default_factory=lambda: {"BTC": margin()})

    def now_ms(self) -> int:
        return self.now

    def positions(self) -> Sequence[PositionView]:
        return self.pos

    def quote(self, instrument: str, venue: str | None = None) -> Quote | None:
        if venue is not None and f"{venue}:{instrument}" in self.quotes:
            return self.quotes[f"{venue}:{instrument}"]
        q = self.quotes.get(instrument)
        if q is not None and venue is not None and q.venue != venue:
            return None
        return q

    def index_price(self, underlying: str) -> float | None:
        return self.index

    def margin(self) -> Mapping[str, MarginReport]:
        return self.margins

    def set_perp(self, bid: float, ask: float, name: str = "BTC-PERPETUAL", venue: str = "sim", key: str | None = None) -> None:
        self.quotes[key or name] = Quote(self.now, name, bid, ask, 1e6, 1e6, mark_price=(bid + ask) / 2, venue=venue)
