"""Fixtures: the Deribit-API server over a paper backend, and ccxt clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.base import Credentials
from connectors.deribit_api.server import DeribitApiServer
from tests.connectors.paper_backend import PaperBackend

KEY, SECRET = "test-key", "test-secret-value"


@pytest.fixture
async def paper() -> PaperBackend:
    return PaperBackend()


@pytest.fixture
async def server(paper: PaperBackend) -> AsyncIterator[DeribitApiServer]:
    srv = await DeribitApiServer(paper, credentials=Credentials(KEY, SECRET)).start("127.0.0.1", 0)
    yield srv
    await srv.stop()


def point(ex, srv: DeribitApiServer):  # type: ignore[no-untyped-def]
    """Aim a ccxt Deribit client at the loopback server (REST and websocket)."""
    ex.urls["api"] = {"rest": srv.rest_url, "ws": srv.ws_url}
    ex.urls["test"] = dict(ex.urls["api"])
    return ex


@pytest.fixture
async def ccxt_client(server: DeribitApiServer):  # type: ignore[no-untyped-def]
    import ccxt.async_support as ccxta

    ex = point(ccxta.deribit({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False}), server)
    yield ex
    await ex.close()
