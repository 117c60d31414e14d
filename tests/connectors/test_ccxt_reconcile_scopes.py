"""Reconciliation and the kill switch see every order, fill and position the desk trades on OKX and Bybit.

Without a symbol ccxt defaults to OKX instType=SPOT and Bybit category=linear/settleCoin=USDT; the fakes filter as
the venues document, so an option, a USDC-settled contract or a cancelled order with fills missed by a query shows.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.bus import Bus
from app.domain import OrderRequest, OrderType, Side
from connectors.base import Credentials
from connectors.ccxt_venue import CcxtVenue
from tests.connectors import fake_bybit, fake_okx

D = Decimal


async def _venue(exchange: str, srv, creds: Credentials) -> CcxtVenue:  # type: ignore[no-untyped-def]
    venue = CcxtVenue(exchange, credentials=creds, rest_url=srv.url, enable_rate_limit=False)
    venue._private_started = True  # REST only: the fakes serve no private websocket
    await venue.connect(Bus())
    return venue


# -- Bybit --------------------------------------------------------------------------------------------------------


@pytest.fixture
async def bybit():
    srv = await fake_bybit.FakeBybit(usdc_perp=True).start()
    yield srv
    await srv.stop()


async def bybit_venue(srv: fake_bybit.FakeBybit) -> CcxtVenue:
    return await _venue("bybit", srv, Credentials(fake_bybit.KEY, fake_bybit.SECRET))


async def test_bybit_reports_cover_options_and_every_settle_coin(bybit: fake_bybit.FakeBybit) -> None:
    venue = await bybit_venue(bybit)
    try:
        insts = await venue.instruments()
        call = next(i.name for i in insts if i.is_option and i.is_call)
        usdt, usdc = "BTC_USDT-PERPETUAL", "BTC_USDC-PERPETUAL"
        assert {usdt, usdc} <= {i.name for i in insts}
        rest_opt = await venue.place(OrderRequest(call, Side.BUY, D("0.5"), D("2000"), client_order_id="by-opt"))
        rest_usdc = await venue.place(OrderRequest(usdc, Side.BUY, D("0.01"), D("50000"), client_order_id="by-usdc"))
        await venue.place(OrderRequest(call, Side.BUY, D("0.1"), None, OrderType.MARKET, client_order_id="by-fill"))
        await venue.place(OrderRequest(usdt, Side.SELL, D("0.002"), None, OrderType.MARKET, client_order_id="by-perp"))

        opens = await venue.order_reports(open_only=True)
        assert sorted(r.client_order_id for r in opens) == ["by-opt", "by-usdc"]
        fills = await venue.fill_reports(0)
        assert sorted((f.client_order_id, f.amount) for f in fills) == [("by-fill", D("0.1")), ("by-perp", D("0.002"))]
        positions = {p.instrument: p.size for p in await venue.position_reports()}
        assert positions == {call: D("0.1"), usdt: D("-0.002")}
        out = await venue.reconcile(["by-opt", "by-usdc", "by-fill", "by-perp", "by-never"])
        assert {c: (r.status if r else None) for c, r in out["orders"].items()} == {
            "by-opt": "open",
            "by-usdc": "open",
            "by-fill": "filled",
            "by-perp": "filled",
            "by-never": None,
        }
        sent = {(name, q.get("category"), q.get("settleCoin")) for name, q in bybit.queries}
        assert ("order/realtime", "option", None) in sent and ("order/realtime", "linear", "USDC") in sent
        assert ("position/list", "linear", "USDC") in sent and ("execution/list", "option", None) in sent
        lists = [q for _, q in bybit.queries if q.get("category") == "option" and not q.get("symbol")]
        assert lists and {q.get("baseCoin") for q in lists} == {"BTC"}  # every option list names its base coin

        assert await venue.cancel_all() == 2  # the kill switch reaches the option and the USDC perpetual
        assert bybit.orders[rest_opt.order_id]["orderStatus"] == "Cancelled"
        assert bybit.orders[rest_usdc.order_id]["orderStatus"] == "Cancelled"
    finally:
        await venue.close()


async def test_bybit_reconcile_finds_a_cancelled_order_with_fills(bybit: fake_bybit.FakeBybit) -> None:
    venue = await bybit_venue(bybit)
    try:
        call = next(i.name for i in await venue.instruments() if i.is_option and i.is_call)
        o = await venue.place(OrderRequest(call, Side.BUY, D("0.5"), D("2000"), client_order_id="by-part"))
        bybit.fill_resting(o.order_id, "0.2")
        bybit.cancel_by_venue(o.order_id)
        out = await venue.reconcile(["by-part"])
        rep = out["orders"]["by-part"]
        assert rep is not None and rep.status == "cancelled" and rep.filled == D("0.2")
        assert [(f.client_order_id, f.amount) for f in out["fills"]] == [("by-part", D("0.2"))]
    finally:
        await venue.close()


# -- OKX ----------------------------------------------------------------------------------------------------------


@pytest.fixture
async def okx():
    srv = await fake_okx.FakeOkx().start()
    yield srv
    await srv.stop()


async def okx_venue(srv: fake_okx.FakeOkx) -> CcxtVenue:
    return await _venue("okx", srv, Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE))


async def test_okx_an_order_filled_before_a_restart_is_found_not_resent(okx: fake_okx.FakeOkx) -> None:
    first = await okx_venue(okx)
    call = next(i.name for i in await first.instruments() if i.is_option and i.is_call)
    await first.place(OrderRequest(call, Side.BUY, D("0.05"), D("0.05"), client_order_id="run1x0001"))
    await first.place(OrderRequest("BTC-PERPETUAL", Side.SELL, D("300"), None, OrderType.MARKET, client_order_id="p1"))
    part = await first.place(OrderRequest(call, Side.BUY, D("0.05"), D("0.035"), client_order_id="run1x0002"))
    await first.close()
    okx.fill_resting(part.order_id, "2")  # 2 of 5 contracts, then the venue cancels the rest
    okx.cancel_by_venue(part.order_id)

    second = await okx_venue(okx)
    try:
        out = await second.reconcile(["run1x0001", "run1x0002", "p1", "run1x0003"])
        got = {c: (r.status, r.filled) if r else None for c, r in out["orders"].items()}
        assert got == {
            "run1x0001": ("filled", D("0.05")),
            "run1x0002": ("cancelled", D("0.02")),
            "p1": ("filled", D("300")),
            "run1x0003": None,
        }
        fills = sorted((f.client_order_id, f.amount) for f in out["fills"])
        assert fills == [("p1", D("300")), ("run1x0001", D("0.05")), ("run1x0002", D("0.02"))]
        assert {p.instrument: p.size for p in out["positions"]} == {call: D("0.07"), "BTC-PERPETUAL": D("-300")}
        types = {q.get("instType") for name, q in okx.queries if name in ("orders-history", "fills-history")}
        assert types == {"OPTION", "SWAP"}  # never ccxt's default SPOT
    finally:
        await second.close()
