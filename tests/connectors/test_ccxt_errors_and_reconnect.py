"""What all connectors share: typed errors from every ccxt error, reconnect with backoff, credentials, tick rounding."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import Instrument, OrderRequest, Side
from app.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    DeskError,
    InsufficientMargin,
    InvalidInput,
    NotFound,
    OrderRejected,
    RateLimited,
    UnknownInstrument,
)
from connectors.base import Backoff, ConnectorStats, Credentials, run_with_reconnect
from connectors.ccxt_venue.execution import Execution
from connectors.ccxt_venue.instruments import Catalog
from connectors.ccxt_venue.parsing import desk_error, is_transient
from connectors.ccxt_venue.venues import DERIBIT

ALL_CCXT_ERRORS = sorted(
    (c for c in vars(ccxt).values() if isinstance(c, type) and issubclass(c, ccxt.BaseError)), key=lambda c: c.__name__
)


@pytest.mark.parametrize("cls", ALL_CCXT_ERRORS, ids=lambda c: c.__name__)
def test_every_ccxt_error_becomes_a_typed_desk_error(cls: type) -> None:
    err = desk_error(cls('deribit {"error": {"code": 1}}'))
    assert isinstance(err, DeskError) and err.code


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (ccxt.AuthenticationError("13009 unauthorized"), AuthError, "connector.auth"),
        (ccxt.InsufficientFunds("10009 not_enough_funds"), InsufficientMargin, "margin.insufficient"),
        (ccxt.OrderNotFound("10004"), NotFound, "not_found.order"),
        (
            ccxt.InvalidOrder('deribit {"code":10043,"message":"price_wrong_tick"}'),
            OrderRejected,
            "order.rejected.tick",
        ),
        (ccxt.InvalidOrder("qty_too_low"), OrderRejected, "order.rejected.min_amount"),
        (ccxt.InvalidOrder("something else"), OrderRejected, "order.rejected.venue"),
        (ccxt.BadSymbol("no market"), UnknownInstrument, "instrument.unknown"),
        (ccxt.DDoSProtection("10028"), RateLimited, "connector.rate_limited"),
        (ccxt.RateLimitExceeded("slow down"), RateLimited, "connector.rate_limited"),
        (ccxt.RequestTimeout("t"), ConnectorError, "connector.timeout"),
        (ccxt.NetworkError("closed"), ConnectorError, "connector.network"),
        (ccxt.BadRequest("-32602"), InvalidInput, "input.venue"),
        (ccxt.ExchangeError("10001"), ConnectorError, "connector.venue"),
    ],
)
def test_precise_mapping(exc: Exception, kind: type, code: str) -> None:
    err = desk_error(exc)
    assert isinstance(err, kind) and err.code == code


def test_transient_errors_are_connection_losses_not_rate_limits() -> None:
    assert is_transient(ccxt.NetworkError("x")) and is_transient(ConnectionResetError())
    assert not is_transient(ccxt.DDoSProtection("x")) and not is_transient(ccxt.InvalidOrder("x"))


async def test_reconnect_counts_waits_with_backoff_and_resyncs() -> None:
    stats = ConnectorStats()
    attempts: list[int] = []
    sleeps: list[float] = []
    resyncs: list[int] = []

    async def stream() -> None:
        attempts.append(1)
        if len(attempts) < 4:
            raise ccxt.NetworkError("socket closed")

    async def resync() -> None:
        resyncs.append(1)

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    await run_with_reconnect(
        stream,
        backoff=Backoff(0.1, 1.0, seed=4),
        stats=stats,
        is_transient=is_transient,
        on_reconnect=resync,
        sleep=fake_sleep,
    )
    assert (stats.disconnects, stats.reconnects, stats.resyncs, len(resyncs)) == (3, 3, 3, 3)
    assert all(0.1 <= s <= 1.0 for s in sleeps) and "socket closed" in stats.last_error


async def test_reconnect_gives_up_and_lets_real_errors_through() -> None:
    async def always_down() -> None:
        raise ccxt.NetworkError("down")

    async def no_sleep(s: float) -> None:
        await asyncio.sleep(0)

    with pytest.raises(ConnectorError) as gave_up:
        await run_with_reconnect(
            always_down,
            backoff=Backoff(0.01, 0.02),
            stats=ConnectorStats(),
            is_transient=is_transient,
            max_attempts=2,
            sleep=no_sleep,
        )
    assert gave_up.value.code == "connector.gave_up"

    async def broken() -> None:
        raise ccxt.AuthenticationError("bad key")

    with pytest.raises(ccxt.AuthenticationError):
        await run_with_reconnect(broken, backoff=Backoff(), stats=ConnectorStats(), is_transient=is_transient)


def test_backoff_grows_to_its_cap_and_resets() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0, seed=1)
    caps = [min(4.0, 0.5 * 2**n) for n in range(8)]
    delays = [b.next_delay() for _ in range(8)]
    assert all(0.5 <= d <= c for d, c in zip(delays, caps))
    b.reset()
    assert b.attempts == 0 and b.next_delay() == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        Backoff(initial_s=0)


def test_credentials_from_env_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_X_KEY", "abcdef123")
    monkeypatch.setenv("DESK_X_SECRET", "topsecret")
    monkeypatch.setenv("DESK_X_PASSPHRASE", "pp-Zq9")
    creds = Credentials.from_env("DESK_X", keyring_service=None)
    assert creds is not None and creds.secret == "topsecret" and creds.passphrase == "pp-Zq9"
    shown = repr(creds) + str(creds) + f"{creds}"
    assert "topsecret" not in shown and "pp-Zq9" not in shown and "abcdef123" not in shown
    assert Credentials.from_env("DESK_NOPE", keyring_service=None) is None
    monkeypatch.delenv("DESK_X_SECRET")
    with pytest.raises(ConfigError):
        Credentials.from_env("DESK_X", keyring_service=None)


def _execution() -> Execution:
    catalog = Catalog(DERIBIT)
    inst = Instrument.parse("BTC-27DEC30-60000-C")
    catalog.by_name = {inst.name: inst}
    return Execution(None, catalog, publish=lambda e: None, now_ms=lambda: 0)


@settings(max_examples=300, deadline=None)
@given(price=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("2"), places=6), buy=st.booleans())
def test_prices_sent_are_on_the_venue_grid_and_never_worse(price: Decimal, buy: bool) -> None:
    exe = _execution()
    inst = exe.catalog.by_name["BTC-27DEC30-60000-C"]
    _, sent = exe.prepare(OrderRequest(inst.name, Side.BUY if buy else Side.SELL, Decimal("0.1"), price))
    assert sent is not None and inst.is_valid_price(sent)
    assert (sent <= price) if buy else (sent >= price)
    assert abs(sent - price) < inst.tick_at(price) + inst.tick_at(sent)


def test_absurd_amounts_are_refused_before_sending() -> None:
    exe = _execution()
    with pytest.raises(OrderRejected) as err:
        exe.prepare(OrderRequest("BTC-27DEC30-60000-C", Side.BUY, Decimal("1e400"), Decimal("0.01")))
    assert err.value.code == "order.rejected.amount"
