"""Fee signs: the desk books a positive Fill.fee as paid and a negative one as a maker rebate.

ccxt's unified ``fee.cost`` has the same convention on every venue: it negates OKX's wire ``fee`` (OKX: negative =
charged, positive = rebate) and passes Bybit's ``execFee`` and Deribit's ``fee`` (positive = paid) through. Rows are
ccxt's own docstring examples of each venue's private trades, as charged and with the sign of a rebate.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest

from app.bus import Bus
from app.domain import Liquidity, OrderRequest, OrderType, Side
from connectors.base import Credentials
from connectors.ccxt_venue import CcxtVenue
from connectors.ccxt_venue.parsing import fill_from_ccxt, instrument_from_market
from connectors.ccxt_venue.venues import BYBIT, DERIBIT, OKX, VenueTable
from tests.connectors import fake_bybit, fake_okx

D = Decimal

OKX_OPTION = {
    "id": "BTC-USD-241227-60000-C",
    "symbol": "BTC/USD:BTC-241227-60000-C",
    "base": "BTC",
    "quote": "USD",
    "settle": "BTC",
    "type": "option",
    "option": True,
    "contract": True,
    "inverse": True,
    "linear": False,
    "spot": False,
    "margin": False,
    "contractSize": 0.01,
    "expiry": 1735286400000,
    "strike": 60000.0,
    "optionType": "call",
    "precision": {"price": 0.0005, "amount": 1},
    "limits": {"amount": {"min": 1}},
}
# ccxt okx.parse_trade docstring, "private fetchMyTrades" (there on ETH-USDT), on an option
OKX_ROW = {
    "side": "buy",
    "fillSz": "10",
    "fillPx": "0.042",
    "fee": "-0.000007533",
    "ordId": "317321390244397056",
    "instType": "OPTION",
    "instId": OKX_OPTION["id"],
    "clOrdId": "",
    "posSide": "net",
    "billId": "317321390265368576",
    "tag": "0",
    "execType": "T",
    "tradeId": "107601752",
    "feeCcy": "BTC",
    "ts": "1621927314985",
}
BYBIT_SWAP = {
    "id": "QNTUSDT",
    "symbol": "QNT/USDT:USDT",
    "base": "QNT",
    "quote": "USDT",
    "settle": "USDT",
    "type": "swap",
    "swap": True,
    "contract": True,
    "linear": True,
    "inverse": False,
    "spot": False,
    "contractSize": 1.0,
    "precision": {"price": 0.1, "amount": 0.001},
    "limits": {"amount": {"min": 0.001}},
}
# ccxt bybit.parse_trade docstring, "private trades unified"
BYBIT_ROW = {
    "symbol": "QNTUSDT",
    "orderType": "Limit",
    "underlyingPrice": "",
    "orderLinkId": "1549452573428424449",
    "orderId": "1549452573428424448",
    "stopOrderType": "",
    "execTime": "1699445151998",
    "feeRate": "0.00025",
    "tradeIv": "",
    "blockTradeId": "",
    "markPrice": "",
    "execPrice": "102.8",
    "markIv": "",
    "orderQty": "3.652",
    "orderPrice": "102.8",
    "execValue": "1.028",
    "closedSize": "",
    "execType": "Trade",
    "seq": "19157444346",
    "side": "Buy",
    "indexPrice": "",
    "leavesQty": "3.642",
    "isMaker": True,
    "execFee": "0.0000025",
    "execId": "2210000000101610464",
    "execQty": "0.01",
}
DERIBIT_OPTION = {
    "id": "ETH-22FEB19-120-C",
    "symbol": "ETH/USD:ETH-190222-120-C",
    "base": "ETH",
    "quote": "USD",
    "settle": "ETH",
    "type": "option",
    "option": True,
    "contract": True,
    "inverse": True,
    "linear": False,
    "spot": False,
    "contractSize": 1.0,
    "expiry": 1550822400000,
    "strike": 120.0,
    "optionType": "call",
    "precision": {"price": 0.0005, "amount": 1},
    "limits": {"amount": {"min": 1}},
}
# ccxt deribit.parse_trade docstring, "fetchMyTrades, fetchOrderTrades (private)"
DERIBIT_ROW = {
    "trade_seq": 3,
    "trade_id": "ETH-34066",
    "timestamp": 1550219814585,
    "tick_direction": 1,
    "state": "open",
    "self_trade": False,
    "reduce_only": False,
    "price": 0.04,
    "post_only": False,
    "order_type": "limit",
    "order_id": "ETH-334607",
    "matching_id": None,
    "liquidity": "M",
    "iv": 56.83,
    "instrument_name": "ETH-22FEB19-120-C",
    "index_price": 121.37,
    "fee_currency": "ETH",
    "fee": 0.0011,
    "direction": "buy",
    "amount": 11,
}


def _fill(ex: Any, tbl: VenueTable, market: dict[str, Any], row: dict[str, Any]):  # type: ignore[no-untyped-def]
    trade = ex.parse_trade(row, market)
    inst = instrument_from_market(market, tbl)
    assert inst is not None
    return fill_from_ccxt(trade, inst.name, inst, tbl, D(str(market["contractSize"])), {})


@pytest.mark.parametrize(
    ("venue", "wire_fee", "desk_fee"),
    [
        ("okx", "-0.000007533", D("0.000007533")),  # OKX: negative on the wire = charged
        ("okx", "0.0000012", D("-0.0000012")),  # positive on the wire = rebate
        ("bybit", "0.0000025", D("0.0000025")),  # Bybit: execFee positive = paid
        ("bybit", "-0.000257", D("-0.000257")),  # negative = rebate
        ("deribit", 0.0011, D("0.0011")),  # Deribit: fee positive = paid
        ("deribit", -0.0000275, D("-0.0000275")),  # negative = rebate (maker rebate on futures)
    ],
)
def test_fee_sign_follows_ccxt_unified_cost(venue: str, wire_fee: Any, desk_fee: Decimal) -> None:
    if venue == "okx":
        fill = _fill(ccxt.okx(), OKX, OKX_OPTION, {**OKX_ROW, "fee": wire_fee, "execType": "M"})
    elif venue == "bybit":
        fill = _fill(ccxt.bybit(), BYBIT, BYBIT_SWAP, {**BYBIT_ROW, "execFee": wire_fee})
    else:
        fill = _fill(ccxt.deribit(), DERIBIT, DERIBIT_OPTION, {**DERIBIT_ROW, "fee": wire_fee})
    assert fill.fee == desk_fee and fill.liquidity is Liquidity.MAKER


async def test_rebates_reach_fill_reports_signed_on_okx_and_bybit() -> None:
    okx = await fake_okx.FakeOkx().start()
    bybit = await fake_bybit.FakeBybit().start()
    venues: list[CcxtVenue] = []
    try:
        okx.fill_fee = "0.0000012"  # OKX wire: positive = rebate
        bybit.exec_fee = "-0.000257"  # Bybit wire: negative = rebate
        for exchange, srv, creds in (
            ("okx", okx, Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE)),
            ("bybit", bybit, Credentials(fake_bybit.KEY, fake_bybit.SECRET)),
        ):
            venue = CcxtVenue(exchange, credentials=creds, rest_url=srv.url, enable_rate_limit=False)
            venue._private_started = True
            await venue.connect(Bus())
            venues.append(venue)
            call = next(i.name for i in await venue.instruments() if i.is_option and i.is_call)
            amount = D("0.05") if exchange == "okx" else D("0.1")
            await venue.place(OrderRequest(call, Side.BUY, amount, None, OrderType.MARKET))
        okx_fill, bybit_fill = [(await v.fill_reports(0))[0] for v in venues]
        assert okx_fill.fee == D("-0.0000012") and okx_fill.fee_currency == "BTC"
        assert bybit_fill.fee == D("-0.000257")
    finally:
        for v in venues:
            await v.close()
        await okx.stop()
        await bybit.stop()
