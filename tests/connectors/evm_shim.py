"""Serve an in-process eth-tester chain over JSON-RPC HTTP on 127.0.0.1 (libs.md §2), so the on-chain
connector is tested through HTTPProvider / AsyncHTTPProvider exactly as against a real node."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hexbytes import HexBytes
from web3 import EthereumTesterProvider
from web3.datastructures import AttributeDict
from web3.providers.eth_tester.middleware import request_formatters, result_formatters


def _default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray, HexBytes)):
        return "0x" + bytes(o).hex()
    if isinstance(o, AttributeDict):
        return dict(o)
    raise TypeError(type(o))


class EvmShim:
    """A JSON-RPC node over an EthereumTesterProvider; reverts answer like a node (code 3)."""

    def __init__(self, provider: EthereumTesterProvider) -> None:
        self.provider = provider
        self.lock = threading.Lock()
        shim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reqs = req if isinstance(req, list) else [req]
                out = [shim.answer(r) for r in reqs]
                body = json.dumps(out if isinstance(req, list) else out[0], default=_default).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, r: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            try:
                m, params = r["method"], r.get("params", [])
                if m in ("eth_call", "eth_estimateGas") and params and "from" not in params[0]:
                    params = [{**params[0], "from": self.provider.ethereum_tester.get_accounts()[0]}, *params[1:]]
                params = request_formatters.get(m, lambda p: p)(params)
                resp = dict(self.provider.make_request(m, params))
                if "result" in resp and m in result_formatters:
                    resp["result"] = result_formatters[m](resp["result"])
            except Exception as e:  # reverts -> a node's JSON-RPC error
                msg = str(e)
                text = msg if msg.startswith("execution reverted") else f"execution reverted: {msg}"
                resp = {"error": {"code": 3, "message": text}}
        return {"jsonrpc": "2.0", "id": r.get("id"), **{k: v for k, v in resp.items() if k in ("result", "error")}}

    def __enter__(self) -> EvmShim:
        self.thread.start()
        return self

    def __exit__(self, *args: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
