"""The analyst's dashboard: a multi-page Dash app over a live Desk or a stored run.

    from ui.dash.app import create_app
    app = create_app(LiveSource(desk))            # or StoredSource(store)
    app.run(host="127.0.0.1", port=8050)

Pages live in ``ui.dash.pages`` (one module each); figures are pure functions in ``ui.dash.figures``.
Bound to a non-loopback address the app demands a token (``?token=`` once, then a cookie) on every request.
"""

from __future__ import annotations

from dash import Dash, Input, Output, dcc, html
from flask import Response, request

from ui.dash.pages import backtests, chain, hedging, margin, overview, risk, volatility
from ui.dash.security import TOKEN_COOKIE, token_ok
from ui.dash.source import DashSource

PAGES = (overview, volatility, chain, risk, margin, hedging, backtests)


def create_app(source: DashSource, *, token: str | None = None, allow_trading: bool = False, refresh_ms: int = 1000) -> Dash:
    """Build the Dash app over ``source``; ``token`` is enforced on every request when set."""
    app = Dash(__name__, title="deltadesk", suppress_callback_exceptions=True, update_title=None)
    app.server.config["DESK_ALLOW_TRADING"] = allow_trading
    _guard(app, token)
    mode = "live" if source.live else "stored, read-only"
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            dcc.Interval(id="tick", interval=refresh_ms, n_intervals=0, disabled=not source.live),
            html.Header(
                [
                    html.Span("deltadesk", className="brand"),
                    html.Nav([dcc.Link(p.TITLE, href=p.PATH, className="nav-link", id=f"nav-{p.NAME}") for p in PAGES]),
                    html.Span(f"{source.label} · {mode}" + (" · trading enabled" if allow_trading else ""), className="mode", id="mode"),
                ],
                className="topbar",
            ),
            html.Main(id="page"),
        ]
    )

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def route(pathname: str | None) -> object:
        for page in PAGES:
            if pathname in (page.PATH, page.PATH.rstrip("/")) or (page is overview and pathname in (None, "", "/")):
                return page.layout(source)
        return html.Div([html.H3("Not found"), html.P(f"No page at {pathname}.")], className="card")

    for page in PAGES:
        page.register(app, source)
    return app


def _guard(app: Dash, token: str | None) -> None:
    """Check the token on every request (query parameter, header or cookie); set the cookie on success."""
    if token is None:
        return
    server = app.server

    @server.before_request
    def _check() -> Response | None:
        presented = request.args.get("token") or request.headers.get("X-Desk-Token") or request.cookies.get(TOKEN_COOKIE)
        if not token_ok(token, presented):
            return Response("deltadesk: a valid token is required (?token=...)\n", status=401, mimetype="text/plain")
        return None

    @server.after_request
    def _remember(response: Response) -> Response:
        if request.args.get("token") and token_ok(token, request.args.get("token")):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response
