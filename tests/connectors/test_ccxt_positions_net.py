"""Long/short (hedge) mode: the venue reports two legs of one instrument; the connector reports their net, signed,
as a one-way account would, so the desk (one position per instrument) neither drops a leg nor 'corrects' to one."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from app.bus import Bus
from app.ports import PositionStatusReport
from app.venue_desk import VenueDesk
from connectors.base import Credentials
from connectors.ccxt_venue import CcxtVenue
from connectors.ccxt_venue.parsing import net_positions
from tests.connectors import fake_okx

D = Decimal


def test_legs_net_to_one_signed_report_priced_by_the_remaining_side() -> None:
    legs = [
        PositionStatusReport("BTC-PERPETUAL", D("200"), D("60000"), 1, D("0.001")),
        PositionStatusReport("BTC-PERPETUAL", D("100"), D("62000"), 3),  # an isolated long leg beside the cross one
        PositionStatusReport("BTC-PERPETUAL", D("-100"), D("61000"), 2, D("-0.0004")),
        PositionStatusReport("BTC-C", D("1"), D("0.05"), 1),
        PositionStatusReport("BTC-C", D("-1"), D("0.06"), 1),  # flat: no report
    ]
    (net,) = net_positions(legs, {"BTC-PERPETUAL": True, "BTC-C": True})
    assert net.instrument == "BTC-PERPETUAL" and net.size == D("200") and net.ts == 3
    # inverse: the longs' entry is the harmonic mean of their prices (USD amounts), the short leg does not move it
    assert net.average_price == D("300") / (D("200") / D("60000") + D("100") / D("62000"))
    assert net.realized_funding == D("0.0006")
    short = [
        PositionStatusReport("ETH_USDC-PERPETUAL", q, p, 1) for q, p in ((D("-3"), D("2500")), (D("1"), D("2400")))
    ]
    assert net_positions(short, {}) == [PositionStatusReport("ETH_USDC-PERPETUAL", D("-2"), D("2500"), 1)]


async def test_okx_hedge_mode_legs_reach_the_desk_as_their_net() -> None:
    logging.disable(logging.CRITICAL)
    srv = await fake_okx.FakeOkx().start()
    now = str(int(time.time() * 1000))
    srv.positions = [  # +3 and -1 contracts of 100 USD: long 300 USD, short 100 USD
        fake_okx.position_row(srv.swap, "SWAP", "long", "3", "60000", now),
        fake_okx.position_row(srv.swap, "SWAP", "short", "1", "61000", now),
    ]
    venue = CcxtVenue(
        "okx",
        credentials=Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE),
        rest_url=srv.url,
        enable_rate_limit=False,
    )
    venue._private_started = True
    try:
        await venue.connect(Bus())
        reports = await venue.position_reports()
        assert [(p.instrument, p.size, p.average_price) for p in reports] == [("BTC-PERPETUAL", D("200"), D("60000"))]
        await venue.close()
        venue._private_started = True  # close() resets it; the fake serves no private websocket
        desk = VenueDesk(venue)
        await desk.connect()
        try:
            assert {p.instrument: p.size for p in desk.book.positions()} == {"BTC-PERPETUAL": D("200")}
            assert await desk.check_positions() == 0 and await desk.check_positions() == 0
            assert {p.instrument: p.size for p in desk.book.positions()} == {"BTC-PERPETUAL": D("200")}
        finally:
            await desk.close()
    finally:
        logging.disable(logging.NOTSET)
        await venue.close()
        await srv.stop()
