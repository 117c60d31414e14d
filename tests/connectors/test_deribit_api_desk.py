"""The real Desk (frozen simulated market: nothing moves unless a test moves it) served over Deribit's API:
the figures that come from the engines — trade numbering and marks, post-only, price bands, option greeks and
IVs, positions' leverage and liquidation price, the account summary's PnL split and liquidation ratio."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from connectors.base import Credentials
from connectors.deribit_api.desk_backend import DeskBackend
from connectors.deribit_api.server import DeribitApiServer
from tests.connectors.conftest import KEY, SECRET
from tests.connectors.test_deribit_api_wire import Client

desk_mod = pytest.importorskip("app.desk")
config = pytest.importorskip("app.config")

PERP = "BTC-PERPETUAL"
START = "2024-01-01T07:58:00Z"  # two simulated minutes before the end of Deribit's trading day


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, DeribitApiServer, Client]]:
    monkeypatch.setenv("DESK_CONFIG", "")
    settings = config.Settings()
    settings.sim.start = START
    desk = desk_mod.Desk(settings, seed=7)
    desk.advance(1_000)
    server = await DeribitApiServer(DeskBackend(desk), credentials=Credentials(KEY, SECRET)).start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
            c = Client(server, http, ws)
            await c.ws_rpc("public/auth", grant_type="client_credentials", client_id=KEY, client_secret=SECRET)
            yield desk, server, c
    finally:
        await server.stop()
        await desk.stop()


def _option(desk: Any, expiry: str, kind: str = "C") -> str:
    """The at-the-money option of one expiry code (29MAR24) and type."""
    index = desk.index_price("BTC")
    names = [i for i in desk.instruments("BTC") if i.is_option and f"-{expiry}-" in i.name and i.name.endswith(kind)]
    return min(names, key=lambda i: abs(float(i.strike) - index)).name


async def test_trades_carry_one_seq_and_the_marks_at_the_trade(world) -> None:  # type: ignore[no-untyped-def]
    desk, server, c = world
    chans = [f"trades.{PERP}.raw", "user.trades.any.any.raw"]
    assert (await c.ws_rpc("private/subscribe", channels=chans))["result"] == chans
    marks = server.backend.marks(PERP)
    a = (await c.get("private/buy", instrument_name=PERP, amount=1000, type="market"))["result"]
    b = (await c.get("private/sell", instrument_name=PERP, amount=500, type="market"))["result"]
    ours = a["trades"] + b["trades"]
    seqs = [t["trade_seq"] for t in ours]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # consecutive: nobody else trades a frozen market
    t = ours[0]
    assert t["mark_price"] == marks[0] and t["mark_price"] != t["price"]  # the instrument's mark, not the price
    assert t["index_price"] == desk.index_price("BTC") and t["tick_direction"] in (0, 1, 2, 3)
    assert a["order"]["commission"] == pytest.approx(sum(x["fee"] for x in a["trades"]))
    seq = {x["trade_id"]: x["trade_seq"] for x in ours}
    await c.until(lambda: len([x for batch in c.notes.get(chans[1], []) for x in batch]) == len(ours))
    await c.until(lambda: len([x for batch in c.notes.get(chans[0], []) for x in batch]) == len(ours))
    for ch in chans:
        assert {x["trade_id"]: x["trade_seq"] for batch in c.notes[ch] for x in batch} == seq
    public = [x for batch in c.notes[chans[0]] for x in batch]
    assert all(x["mark_price"] == marks[0] and x["index_price"] == desk.index_price("BTC") for x in public)
    rows = (await c.get("private/get_user_trades_by_instrument", instrument_name=PERP, count=50))["result"]["trades"]
    rows += (await c.get("private/get_user_trades_by_currency", currency="BTC", count=50))["result"]["trades"]
    rows += (await c.get("private/get_user_trades_by_order", order_id=b["order"]["order_id"]))["result"]
    assert all(seq[x["trade_id"]] == x["trade_seq"] for x in rows) and len(rows) == 2 * len(ours) + len(b["trades"])
    opt = _option(desk, "29MAR24")
    o = (await c.get("private/buy", instrument_name=opt, amount=0.1, type="market"))["result"]["trades"][0]
    mark, iv, forward = server.backend.marks(opt)
    assert o["trade_seq"] == 1 and o["mark_price"] == mark  # its own instrument's sequence
    assert o["iv"] == pytest.approx(iv * 100, abs=1e-4) and o["underlying_price"] == forward


async def test_post_only_is_repriced_or_rejected_as_asked(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, c = world
    q = desk.quote(PERP)
    res = await c.get("private/buy", instrument_name=PERP, amount=100, type="limit", price=q.ask + 50, post_only=True)
    order = res["result"]["order"]
    assert res["result"]["trades"] == [] and order["order_state"] == "open" and order["price"] == q.ask - 0.5
    rejected = await c.get(
        "private/buy",
        instrument_name=PERP,
        amount=100,
        type="limit",
        price=q.ask + 50,
        post_only=True,
        reject_post_only=True,
    )
    assert rejected["error"]["code"] == 11054 and rejected["error"]["message"] == "post_only_reject"
    assert [o.order_id for o in desk.open_orders()] == [order["order_id"]]


async def test_ticker_band_and_market_order_price(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, c = world
    mark = Decimal(repr(desk.quote(PERP).mark_price)).quantize(Decimal("0.5"))
    desk.engine.set_mark(PERP, mark)  # what the simulated venue will do itself: the engine's band applies
    lo, hi = desk.engine.band(PERP)
    t = (await c.get("public/ticker", instrument_name=PERP))["result"]
    assert (t["min_price"], t["max_price"]) == (float(lo), float(hi))
    assert hi < mark * Decimal("1.1")  # the engine's band, not the stand-in
    order = (await c.get("private/buy", instrument_name=PERP, amount=100, type="market"))["result"]["order"]
    assert order["price"] == float(hi) and order["order_state"] == "filled"
    assert order["average_price"] <= order["price"]


async def test_option_ticker_greeks_ivs_and_underlying(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, c = world
    call, put = _option(desk, "29MAR24", "C"), _option(desk, "29MAR24", "P")
    tc = (await c.get("public/ticker", instrument_name=call))["result"]
    tp = (await c.get("public/ticker", instrument_name=put))["result"]
    f, k = tc["underlying_price"], float(call.split("-")[2])
    inst = next(i for i in desk.instruments("BTC") if i.name == call)
    t = inst.years_to_expiry(desk.now_ms())
    vol = tc["mark_iv"] / 100
    d2 = (math.log(f / k) - 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    n = 0.5 * (1 + math.erf(d2 / math.sqrt(2)))
    # Deribit's rho (spot held fixed): K·T·N(d2) per 1% for a call, -K·T·N(-d2) for a put
    assert tc["greeks"]["rho"] == pytest.approx(0.01 * k * t * n, rel=1e-3) and tc["greeks"]["rho"] > 0
    assert tp["greeks"]["rho"] == pytest.approx(-0.01 * k * t * (1 - n), rel=1e-3) and tp["greeks"]["rho"] < 0
    assert tc["underlying_index"] == "BTC-29MAR24"  # the future of the option's expiry
    for side in ("bid", "ask"):
        price, iv = tc[f"best_{side}_price"], tc[f"{side}_iv"]
        assert price is not None and iv > 0
        sigma = iv / 100
        d1 = (math.log(f / k) + 0.5 * sigma * sigma * t) / (sigma * math.sqrt(t))
        usd = f * 0.5 * (1 + math.erf(d1 / math.sqrt(2))) - k * 0.5 * (
            1 + math.erf((d1 - sigma * math.sqrt(t)) / 2**0.5)
        )
        assert usd / f == pytest.approx(price, abs=2e-5)  # the IV reprices the best price (coin)
    assert tc["bid_iv"] < tc["mark_iv"] < tc["ask_iv"]
    short = _option(desk, "5JAN24")  # no future expires with it: Deribit's synthetic forward
    assert (await c.get("public/ticker", instrument_name=short))["result"]["underlying_index"] == "SYN.BTC-5JAN24"


async def test_positions_and_account_summary_follow_the_margin_engine(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, c = world
    await c.get("private/buy", instrument_name=PERP, amount=120_000, type="market")  # 2 BTC long on 10 BTC
    opt = _option(desk, "29MAR24")
    await c.get("private/sell", instrument_name=opt, amount=1, type="market")
    positions = {p["instrument_name"]: p for p in (await c.get("private/get_positions", currency="BTC"))["result"]}
    perp = positions[PERP]
    assert perp["leverage"] == round(perp["size_currency"] / perp["initial_margin"])
    report = desk.margin()["BTC"]
    down = report.details["liquidation"]["down"]
    assert down is not None and -0.95 < down < 0
    assert perp["estimated_liquidation_price"] == pytest.approx(perp["mark_price"] * (1 + down))
    s = (await c.get("private/get_account_summary", currency="BTC"))["result"]
    deltas = sum(p.greeks.delta for p in desk.positions())
    assert s["delta_total"] == pytest.approx(deltas) and s["delta_total_map"] == {"btc_usd": pytest.approx(deltas)}
    assert s["delta_total"] > 0  # long: the account loses on the way down
    assert s["estimated_liquidation_ratio"] * perp["mark_price"] == pytest.approx(perp["estimated_liquidation_price"])
    assert s["estimated_liquidation_ratio_map"] == {"btc_usd": s["estimated_liquidation_ratio"]}
    assert s["session_upl"] == pytest.approx(s["futures_session_upl"] + s["options_session_upl"])
    assert s["session_rpl"] == pytest.approx(s["futures_session_rpl"] + s["options_session_rpl"])
    assert s["total_pl"] == pytest.approx(s["futures_pl"] + s["options_pl"])
    p_opt = positions[opt]
    assert s["options_session_upl"] == pytest.approx(p_opt["floating_profit_loss"])
    assert s["options_value"] == pytest.approx(-p_opt["mark_price"])  # short one option
    assert s["options_gamma_map"] == {"btc_usd": pytest.approx(s["options_gamma"])} and s["options_vega"] < 0


async def test_good_til_day_orders_end_with_the_trading_day(world) -> None:  # type: ignore[no-untyped-def]
    desk, server, c = world
    far = float(Decimal(repr(desk.quote(PERP).bid - 20)).quantize(Decimal("0.5")))  # passive, inside the band
    res = await c.get(
        "private/buy", instrument_name=PERP, amount=100, type="limit", price=far, time_in_force="good_til_day"
    )
    order = res["result"]["order"]
    assert order["time_in_force"] == "good_til_day" and order["order_state"] == "open"
    await server.methods.expire_day_orders()
    assert [o.order_id for o in desk.open_orders()] == [order["order_id"]]  # 07:58: the day is not over
    desk.advance(3 * 60_000)  # past 08:00 UTC
    assert await server.methods.expire_day_orders() == 1
    state = (await c.get("private/get_order_state", order_id=order["order_id"]))["result"]
    assert state["order_state"] == "cancelled" and desk.open_orders() == []


async def test_portfolio_notifications_carry_the_account_id(world) -> None:  # type: ignore[no-untyped-def]
    _, _, c = world
    assert (await c.ws_rpc("private/subscribe", channels=["user.portfolio.btc"]))["result"] == ["user.portfolio.btc"]
    await c.get("private/buy", instrument_name=PERP, amount=100, type="market")
    await c.until(lambda: "user.portfolio.btc" in c.notes)
    summary = (await c.get("private/get_account_summary", currency="BTC"))["result"]
    assert c.notes["user.portfolio.btc"][0]["id"] == summary["id"] != 0
