"""A loopback HTTP proxy that injects faults between the project and a ClearML API server or fileserver.

Tests point an account's hosts at one proxy per upstream and switch faults on and off:

- ``status``: answer ``code`` (500/502/503, or 401 with ClearML's envelope) without asking the upstream;
- ``drop``: forward, then send the status line, headers and half the body, and reset the connection;
- ``truncate``: forward, then send half the body under the upstream's (now wrong) ``Content-Length``;
- ``slow``: wait ``delay`` seconds, then forward;
- ``away`` (:meth:`FaultProxy.take_away` / :meth:`FaultProxy.bring_back`): nothing listens on the port.

Each fault applies to requests whose path matches ``match`` (a regex), ``times`` times (None: until
cleared), after ``skip`` matching requests have passed through untouched. ``injected`` counts faults.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


@dataclass
class Fault:
    """One switched-on fault."""

    kind: str
    match: str = ".*"
    times: int | None = None
    skip: int = 0
    code: int = 503
    delay: float = 0.0

    def applies(self, path: str) -> bool:
        if not re.search(self.match, path):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None:
            if self.times <= 0:
                return False
            self.times -= 1
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        pass

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = proxy.next_fault(self.path)
        if fault and fault.kind == "status":
            return self._send_status(fault.code)
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
        status, reason, headers, payload = proxy.forward(self.command, self.path, dict(self.headers), body)
        if fault and fault.kind in ("drop", "truncate"):
            return self._send_broken(status, reason, headers, payload, reset=fault.kind == "drop")
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def _send_status(self, code: int) -> None:
        envelope = {"meta": {"result_code": code, "result_subcode": 0,
                             "result_msg": "Invalid token" if code == 401 else "injected fault"}, "data": {}}
        payload = json.dumps(envelope).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_broken(self, status: int, reason: str, headers: list, payload: bytes, *, reset: bool) -> None:
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(max(len(payload), 2)))  # the whole size, half sent
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        if reset:  # RST instead of FIN: the client sees a connection reset mid-response
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close_connection = True
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: "FaultProxy"


class FaultProxy:
    """A proxy in front of ``upstream`` (``http://host:port``) on a free loopback port.

    Args:
        upstream: The server's base URL.
    """

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults: list[Fault] = []
        self.injected: dict[str, int] = {}
        self.requests = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.proxy = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def inject(self, kind: str, **options) -> Fault:
        """Switch a fault on (see the module docstring); returns it."""
        fault = Fault(kind, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self.faults.clear()

    def next_fault(self, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            for fault in self.faults:
                if fault.applies(path):
                    self.injected[fault.kind] = self.injected.get(fault.kind, 0) + 1
                    return fault
        return None

    def forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, str, list, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS and k.lower() != "host"}
            conn.request(method, path, body=body or None, headers=sent)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def take_away(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`bring_back`."""
        with self._lock:
            self.injected["away"] = self.injected.get("away", 0) + 1
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bring_back(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._listen()

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())
