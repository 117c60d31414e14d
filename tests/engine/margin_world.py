"""A small margin world shared by the margin tests: BTC and ETH instruments, marks, funded accounts."""

from __future__ import annotations

from decimal import Decimal

from app.bus import Bus
from app.clock import SimClock
from app.domain import Instrument
from app.engine.margin import MarginEngine
from app.pricing import black76

NOW = 1_718_000_000_000  # 2024-06-10 06:13 UTC
BTC_INDEX = 65_000.0
ETH_INDEX = 3_500.0

NAMES = [
    "BTC-PERPETUAL",
    "BTC-28JUN24",
    "BTC-27SEP24",
    "BTC-28JUN24-70000-C",
    "BTC-28JUN24-60000-P",
    "BTC-27SEP24-80000-C",
    "ETH-PERPETUAL",
    "ETH-28JUN24",
    "ETH-28JUN24-3500-C",
]
IVS = {"BTC-28JUN24-70000-C": 0.55, "BTC-28JUN24-60000-P": 0.60, "BTC-27SEP24-80000-C": 0.58, "ETH-28JUN24-3500-C": 0.65}
FWD = {"BTC-28JUN24": 65_400.0, "BTC-27SEP24": 66_500.0, "ETH-28JUN24": 3_520.0}


def option_mark(name: str, forward: float, iv: float, now: int = NOW) -> float:
    """Coin mark of an inverse option from Black-76 (what the surface would publish)."""
    inst = Instrument.parse(name)
    t = inst.years_to_expiry(now)
    g = black76(forward, float(inst.strike), t, iv, inst.is_call)
    return float(g.price) / forward


def make_engine(bus: Bus | None = None, now: int = NOW, btc: float = BTC_INDEX, eth: float = ETH_INDEX) -> MarginEngine:
    """A MarginEngine with the instruments above marked around the given index prices."""
    clock = SimClock(now)
    eng = MarginEngine(clock=clock, bus=bus)
    for name in NAMES:
        eng.add_instrument(Instrument.parse(name))
    set_market(eng, btc, eth)
    return eng


def set_market(eng: MarginEngine, btc: float, eth: float, vol_mult: float = 1.0) -> None:
    """Mark everything around index prices ``btc``/``eth`` (futures keep their basis in relative terms)."""
    eng.set_index("btc_usd", btc)
    eng.set_index("eth_usd", eth)
    eng.set_mark("BTC-PERPETUAL", btc * 1.001)
    eng.set_mark("ETH-PERPETUAL", eth * 1.0005)
    for fut, f in FWD.items():
        base = BTC_INDEX if fut.startswith("BTC") else ETH_INDEX
        eng.set_mark(fut, f / base * (btc if fut.startswith("BTC") else eth))
    for name, iv in IVS.items():
        fut = name.rsplit("-", 2)[0]
        f = eng.mark_of(fut)
        eng.set_mark(name, option_mark(name, f, iv * vol_mult, eng.clock.now_ms()), iv=iv * vol_mult, underlying=f)


def funded(eng: MarginEngine, name: str, model: str = "sm", btc: str = "10", eth: str = "100") -> str:
    """Open and fund an account; returns its name."""
    deposits = {c: Decimal(a) for c, a in (("BTC", btc), ("ETH", eth)) if Decimal(a) > 0}
    eng.open_account(name, model, deposits)  # type: ignore[arg-type]
    return name
