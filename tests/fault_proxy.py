"""A loopback HTTP proxy that injects faults between the project and a ClearML API server or fileserver.

Tests point an account's hosts at one proxy per upstream and switch faults on and off:

- ``status``: answer ``code`` (500/502/503, or 401 with ClearML's envelope) without asking the upstream;
- ``drop``: forward, then send the status line, headers and half the body, and reset the connection;
- ``truncate``: forward, then send half the body under the upstream's (now wrong) ``Content-Length``;
- ``slow``: wait ``delay`` seconds, then forward;
- ``hold``: wait until ``gate`` (a ``threading.Event``) is set, then forward (``delay``: the most to wait);
- ``away`` (:meth:`FaultProxy.take_away` / :meth:`FaultProxy.bring_back`): nothing listens on the port.

Each fault applies to requests whose path matches ``match`` (a regex), ``times`` times (None: until
cleared), after ``skip`` matching requests have passed through untouched. ``injected`` counts faults.

:class:`RealServerQuirks` (``FaultProxy(upstream, quirks=RealServerQuirks())``) turns the local server's
answers into what clearml-server v1.9.2 answers (read from its ``bll/event`` and ``services/events.py``):
``events.get_task_events`` with ``event_type: log`` fails (log events have no ``iter``); a scroll whose
page ended at iteration 0 restarts from the beginning (``if from_key_value:`` on ``0``); plots of 100,000
characters or more come back as ``plot_data`` (base64 of zlib, no ``plot_str``); log events carry no
``iter`` and the log ``total`` is capped at 10,000; a ``get_all`` page is cut to 500 rows; a row of the
public company (``company: ""``) is added to the first page of every ``get_all``.
"""

from __future__ import annotations

import base64
import http.client
import json
import zlib
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
    gate: threading.Event | None = None

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
        if fault and fault.kind == "hold" and fault.gate is not None:
            fault.gate.wait(fault.delay or 120)
        if proxy.quirks is not None:
            refused = proxy.quirks.refuse(self.path, body)
            if refused is not None:
                return self._send_status(refused)
            body = proxy.quirks.request(self.path, body)
        status, reason, headers, payload = proxy.forward(self.command, self.path, dict(self.headers), body)
        if proxy.quirks is not None and status == 200:
            payload = proxy.quirks.response(self.path, body, payload)
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

    def __init__(self, upstream: str, quirks: "RealServerQuirks | None" = None):
        self.quirks = quirks
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
            sent = {k: v for k, v in headers.items()
                    if k.lower() not in HOP_HEADERS and k.lower() not in ("host", "content-length")}
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


class RealServerQuirks:
    """Rewrites local-server traffic into clearml-server v1.9.2's behaviour (see the module docstring).

    Args:
        plot_threshold: Plot length from which plots are compressed (the real default 100,000).
        public_rows: Add a public-company row to the first page of ``get_all`` answers.
    """

    PAGE_CAP = 500
    LOG_TOTAL_CAP = 10_000

    def __init__(self, plot_threshold: int = 100_000, public_rows: bool = True):
        self.plot_threshold = plot_threshold
        self.public_rows = public_rows
        self.counts: dict[str, int] = {}
        self._initial: dict[str, bytes] = {}  # scroll id -> the request that started the scroll
        self._restart: set[str] = set()  # scroll ids whose page ended at iteration 0
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    @staticmethod
    def _body(raw: bytes) -> dict:
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def refuse(self, path: str, raw: bytes) -> int | None:
        """An error status the real server answers instead, if any."""
        if path.endswith("events.get_task_events") and self._body(raw).get("event_type") == "log":
            self._count("log_events_refused")
            return 500
        return None

    def request(self, path: str, raw: bytes) -> bytes:
        body = self._body(raw)
        if path.endswith(".get_all") and int(body.get("page_size") or 0) > self.PAGE_CAP:
            self._count("page_size_cut")
            return json.dumps({**body, "page_size": self.PAGE_CAP}).encode()
        if path.endswith("events.get_task_events") and body.get("scroll_id") in self._restart:
            self._count("scroll_restarted")
            initial = self._body(self._initial[body["scroll_id"]])
            return json.dumps({**initial, "batch_size": body.get("batch_size") or initial.get("batch_size")}
                              ).encode()
        return raw

    def response(self, path: str, raw_request: bytes, payload: bytes) -> bytes:
        try:
            envelope = json.loads(payload)
        except ValueError:
            return payload
        data = envelope.get("data") or {}
        if path.endswith("events.get_task_events"):
            self._events(raw_request, data)
        elif path.endswith("events.get_task_log"):
            for event in data.get("events") or []:
                event.pop("iter", None)
            if isinstance(data.get("total"), int):
                data["total"] = min(data["total"], self.LOG_TOTAL_CAP)
        elif path.endswith(".get_all") and self.public_rows:
            self._public_row(raw_request, data)
        return json.dumps(envelope).encode()

    def _events(self, raw_request: bytes, data: dict) -> None:
        request = self._body(raw_request)
        initial = self._initial.get(request.get("scroll_id")) or raw_request
        events = data.get("events") or []
        scroll_id = data.get("scroll_id")
        if scroll_id:
            self._initial[scroll_id] = initial
            if events and not events[-1].get("iter"):  # the real scroll keeps "0", read back as falsy
                self._restart.add(scroll_id)
        for event in events:
            text = event.get("plot_str")
            if isinstance(text, str) and len(text) >= self.plot_threshold:
                event["plot_data"] = base64.encodebytes(zlib.compress(text.encode(), level=1)).decode("ascii")
                event.pop("plot_str")
            if event.get("plot_data"):  # compressed here or already by the server
                self._count("compressed_plots_sent")

    def _public_row(self, raw_request: bytes, data: dict) -> None:
        request = self._body(raw_request)
        if int(request.get("page") or 0) != 0:
            return
        for key in ("tasks", "projects", "models"):
            rows = data.get(key)
            if isinstance(rows, list) and rows:
                public = {"id": f"public0000000000000000{key[:2]}", "name": rows[0].get("name"), "company": ""}
                for field in ("project", "status", "last_update", "last_change", "last_iteration"):
                    if field in rows[0]:
                        public[field] = rows[0][field]
                rows.append(public)
                self._count("public_rows")
