"""The venue's listing as desk Instruments, with the maps between desk names and ccxt symbols."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from app.domain import Instrument
from app.errors import UnknownInstrument
from connectors.ccxt_venue.parsing import instrument_from_market
from connectors.ccxt_venue.venues import VenueTable


class Catalog:
    """Instruments of one venue by desk name (Deribit style), and their ccxt symbols."""

    def __init__(self, tbl: VenueTable) -> None:
        self.table = tbl
        self.by_name: dict[str, Instrument] = {}
        self.symbol_of: dict[str, str] = {}
        self.name_of: dict[str, str] = {}  # ccxt symbol -> desk name
        self.sizes: dict[str, Decimal] = {}  # desk name -> the venue's contract size (ccxt contractSize)
        self.markets: dict[str, dict[str, Any]] = {}  # desk name -> ccxt market (type, settle, raw info)

    def load(self, markets: dict[str, dict[str, Any]]) -> int:
        """Rebuild from ccxt's ``markets``; returns how many instruments the desk can trade."""
        by_name: dict[str, Instrument] = {}
        symbol_of: dict[str, str] = {}
        sizes: dict[str, Decimal] = {}
        by_market: dict[str, dict[str, Any]] = {}
        for symbol, market in markets.items():
            if market.get("active") is False:
                continue
            inst = instrument_from_market(market, self.table)
            if inst is None:
                continue
            by_name[inst.name] = inst
            symbol_of[inst.name] = symbol
            sizes[inst.name] = Decimal(str(market.get("contractSize") or 1))
            by_market[inst.name] = market
        self.by_name, self.symbol_of, self.sizes, self.markets = by_name, symbol_of, sizes, by_market
        self.name_of = {s: n for n, s in symbol_of.items()}
        return len(by_name)

    def get(self, name: str) -> Instrument:
        """The instrument called ``name``; UnknownInstrument if the venue does not list it."""
        found = self.by_name.get(name)
        if found is None:
            raise UnknownInstrument(f"{self.table.exchange} does not list {name!r}", name=name)
        return found

    def symbol(self, name: str) -> str:
        """ccxt symbol of a desk instrument name."""
        self.get(name)
        return self.symbol_of[name]

    def name(self, symbol: str) -> str | None:
        """Desk name of a ccxt symbol, or None for markets the desk does not trade."""
        return self.name_of.get(symbol)

    def size(self, name: str) -> Decimal:
        """The venue's contract size of ``name`` (what one ccxt amount unit is in desk units on OKX)."""
        return self.sizes.get(name, Decimal(1))

    def options_of(self, base: str) -> list[Instrument]:
        """Listed options on ``base``, by expiry then strike."""
        out = [i for i in self.by_name.values() if i.is_option and i.base == base]
        return sorted(out, key=lambda i: (i.expiry_ms or 0, i.strike or 0, i.is_call))

    def names(self, names: Iterable[str]) -> list[str]:
        """Validate a list of names (UnknownInstrument on the first unknown)."""
        return [self.get(n).name for n in names]

    def __len__(self) -> int:
        return len(self.by_name)
