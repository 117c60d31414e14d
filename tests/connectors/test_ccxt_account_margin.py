"""The venue's own initial and maintenance margin on OKX and Bybit (ccxt keeps them only in the raw ``info``).

Per currency, in the currency: OKX ``details[].imr/mmr`` (futures mode), Bybit coin ``totalPositionIM +
totalOrderIM`` / ``totalPositionMM``. Account-wide, in USD (``account("USD")``): OKX ``imr/mmr/adjEq`` (multi-currency
and portfolio margin), Bybit UNIFIED ``totalInitialMargin/totalMaintenanceMargin/totalMarginBalance``.
"""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from app.bus import Bus
from app.venue_margin import report_from_account
from connectors.base import Credentials
from connectors.ccxt_venue import CcxtVenue
from connectors.ccxt_venue.parsing import account_from_balance
from tests.connectors import fake_bybit, fake_okx

D = Decimal

# ccxt bybit.fetch_balance docstring, "spot & swap" (UNIFIED) response
BYBIT_UNIFIED = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "list": [
            {
                "totalEquity": "18070.32797922",
                "accountIMRate": "0.0101",
                "totalMarginBalance": "18070.32797922",
                "totalInitialMargin": "182.60183684",
                "accountType": "UNIFIED",
                "totalAvailableBalance": "17887.72614237",
                "accountMMRate": "0",
                "totalPerpUPL": "-0.11001349",
                "totalWalletBalance": "18070.43799271",
                "accountLTV": "0.017",
                "totalMaintenanceMargin": "0.38106773",
                "coin": [
                    {
                        "availableToBorrow": "2.5",
                        "bonus": "0",
                        "accruedInterest": "0",
                        "availableToWithdraw": "0.805994",
                        "totalOrderIM": "0",
                        "equity": "0.805994",
                        "totalPositionMM": "0",
                        "usdValue": "12920.95352538",
                        "unrealisedPnl": "0",
                        "borrowAmount": "0",
                        "totalPositionIM": "0",
                        "walletBalance": "0.805994",
                        "cumRealisedPnl": "0",
                        "coin": "BTC",
                    }
                ],
            }
        ]
    },
    "retExtInfo": {},
    "time": 1672125441042,
}


def test_bybit_unified_docstring_response_account_wide_in_usd() -> None:
    bal = ccxt.bybit().parse_balance(BYBIT_UNIFIED)
    usd = account_from_balance(bal, "USD")
    assert (usd.initial_margin, usd.maintenance_margin) == (D("182.60183684"), D("0.38106773"))
    assert usd.equity == D("18070.32797922") and usd.available_funds == D("17887.72614237")
    report = report_from_account(usd, "main")
    assert report.im_usage == pytest.approx(182.60183684 / 18070.32797922)
    btc = account_from_balance(bal, "BTC")
    assert btc.equity == D("0.805994") and btc.initial_margin == 0 and btc.maintenance_margin == 0


async def _connect(exchange: str, srv, creds: Credentials) -> CcxtVenue:  # type: ignore[no-untyped-def]
    venue = CcxtVenue(exchange, credentials=creds, rest_url=srv.url, enable_rate_limit=False)
    venue._private_started = True
    await venue.connect(Bus())
    return venue


async def test_okx_margin_per_currency_and_account_wide() -> None:
    srv = await fake_okx.FakeOkx().start()
    venue = await _connect("okx", srv, Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE))
    try:
        btc = await venue.account("BTC")  # futures mode: the BTC row's cross imr/mmr, in BTC
        assert (btc.initial_margin, btc.maintenance_margin) == (D("0.012"), D("0.004"))
        assert (btc.balance, btc.equity, btc.available_funds) == (D("1.45"), D("1.5"), D("1.488"))
        assert report_from_account(btc, "main").mm_usage == pytest.approx(0.004 / 1.5)
        # multi-currency margin: the account's imr/mmr against its adjusted equity, all in USD
        srv.account = {"adjEq": "88000", "imr": "1200.5", "mmr": "300.25", "mgnRatio": "293", "totalEq": "90000"}
        srv.details["BTC"].update(imr="", mmr="")
        usd = await venue.account("USD")
        assert (usd.initial_margin, usd.maintenance_margin, usd.equity) == (D("1200.5"), D("300.25"), D("88000"))
        assert report_from_account(usd, "main").mm_usage == pytest.approx(300.25 / 88000)
        assert (await venue.account("BTC")).initial_margin == 0
    finally:
        await venue.close()
        await srv.stop()


async def test_bybit_margin_per_coin_and_unified_account() -> None:
    srv = await fake_bybit.FakeBybit().start()
    venue = await _connect("bybit", srv, Credentials(fake_bybit.KEY, fake_bybit.SECRET))
    try:
        usdc = await venue.account("USDC")  # positions' IM + orders' IM, positions' MM, in USDC
        assert (usdc.initial_margin, usdc.maintenance_margin) == (D("154.25"), D("20.25"))
        assert usdc.equity == D("1000")
        usd = await venue.account("USD")
        assert (usd.initial_margin, usd.maintenance_margin) == (D("182.60183684"), D("0.38106773"))
        assert report_from_account(usd, "main").margin_balance == 1500.0  # totalMarginBalance
    finally:
        await venue.close()
        await srv.stop()
