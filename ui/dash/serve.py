"""Run the dashboard: beside a live Desk (its loop in a background thread) or over a stored run.

    serve_live(desk, host="127.0.0.1", port=8050)
    serve_stored(store, host="127.0.0.1", port=8050)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from app.errors import ConfigError
from ui.dash.app import create_app
from ui.dash.security import is_loopback, resolve_token
from ui.dash.source import DashSource, LiveSource, StoredSource


class DeskThread:
    """A Desk's asyncio loop in a daemon thread, publishing snapshots to a :class:`LiveSource`."""

    def __init__(self, desk: Any, *, publish_every_s: float = 0.5, label: str = "simulated market") -> None:
        self.desk = desk
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="desk-loop", daemon=True)
        self.source = LiveSource(desk, loop=self.loop, label=label)
        self.publish_every_s = publish_every_s
        self._pump: Any = None

    def start(self, setup: Callable[[Any], Awaitable[Any]] | None = None) -> LiveSource:
        """Start the loop, the Desk (then ``setup(desk)``, e.g. adding a hedger) and the snapshot pump."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.desk.start(), self.loop).result(timeout=60)
        if setup is not None:
            asyncio.run_coroutine_threadsafe(setup(self.desk), self.loop).result(timeout=60)
        asyncio.run_coroutine_threadsafe(self._publish_once(), self.loop).result(timeout=30)
        self._pump = asyncio.run_coroutine_threadsafe(self._run_pump(), self.loop)
        return self.source

    async def _publish_once(self) -> None:
        self.source.publish()

    async def _run_pump(self) -> None:
        while True:
            await asyncio.sleep(self.publish_every_s)
            self.source.publish()

    def stop(self) -> None:
        """Stop the pump and the Desk (closing its venue connection if it has one), then the loop."""
        if self._pump is not None:
            self._pump.cancel()
        try:
            asyncio.run_coroutine_threadsafe(self.desk.close(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def build_server(source: DashSource, *, host: str, port: int, token: str | None = None, allow_trading: bool = False,
                 refresh_ms: int = 1000, echo: Callable[[str], None] = print) -> BaseWSGIServer:
    """A WSGI server for the app; refuses a non-loopback host without a token (generates and prints one once)."""
    token, generated = resolve_token(host, token)
    if not is_loopback(host) and token is None:
        raise ConfigError(f"binding {host} needs a token", key="--host")
    if generated:
        echo(f"dashboard token (shown once): {token}")
    app = create_app(source, token=token, allow_trading=allow_trading, refresh_ms=refresh_ms)
    return make_server(host, port, app.server, threaded=True)


def serve_live(desk: Any, *, host: str = "127.0.0.1", port: int = 8050, token: str | None = None, allow_trading: bool = False,
               setup: Callable[[Any], Awaitable[Any]] | None = None, echo: Callable[[str], None] = print,
               label: str = "simulated market") -> None:
    """Serve the dashboard beside a live Desk until interrupted; ``label`` names what it shows in the header."""
    runner = DeskThread(desk, label=label)
    source = runner.start(setup)
    server = build_server(source, host=host, port=port, token=token, allow_trading=allow_trading, echo=echo)
    echo(f"deltadesk dashboard on http://{host}:{server.server_port} (live, Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        runner.stop()


def serve_stored(store: Any, *, host: str = "127.0.0.1", port: int = 8050, token: str | None = None, label: str = "stored run",
                 echo: Callable[[str], None] = print) -> None:
    """Serve the dashboard read-only over a store until interrupted."""
    server = build_server(StoredSource(store, label=label), host=host, port=port, token=token, echo=echo)
    echo(f"deltadesk dashboard on http://{host}:{server.server_port} ({label}, read-only, Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
