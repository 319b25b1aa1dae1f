"""A misbehaving ClearML-like HTTP server on a free loopback port: the hostile peer the tests run against.

It answers ``auth.login`` with a token, then each endpoint as told: pages that repeat for ever, a 300 MB
body, a drip of one byte every few seconds, malformed JSON, a connection reset in the middle of the body,
429/503 storms, a scroll that never ends. What is not told to misbehave is forwarded to ``upstream`` (a real
server, e.g. the local server's API host or fileserver) when one is given, else answered with an empty
success. So the exporter, the sensor and restore can run against a real server with one call broken::

    from hostile_server import HostileServer

    with HostileServer(upstream=clearml_server.info.api_host) as api:
        api.misbehave("tasks.get_all", "same_page")          # by endpoint ...
        api.misbehave("models.get_all", "drip", interval=2.0, times=1)
        client = ClearMLClient(api.url, info.access_key, info.secret_key, deadline_seconds=5)
        ...
        assert api.count("tasks.get_all") < 10               # what reached the server

    with HostileServer(upstream=clearml_server.info.files_host) as files:
        files.misbehave("/", "reset_mid_body")               # ... or by path prefix (fileserver downloads)

Misbehaviours (``kind``) and their options:

- ``same_page``: a ``get_all`` answers the same rows whatever ``page`` asks (proxied: the upstream's page 0;
  alone, or with ``rows``: that many fake rows with ids, default 3).
- ``page_cycle``: pages cycle through ``period`` distinct pages (proxied: page ``n % period``; alone, or with
  ``rows``: fake pages).
- ``huge_body``: ``size`` bytes (default 300 MB) of a JSON answer that never closes, streamed from one small
  block (nothing is held whole here); ``declare_length`` sends ``Content-Length``, else chunked.
- ``drip``: the answer (the upstream's, or an empty success) one byte every ``interval`` seconds;
  ``headers=True`` drips the status line and headers too.
- ``stall``: reads the request and never answers.
- ``malformed_json``: HTTP 200 with a cut JSON body.
- ``reset_mid_body``: declares the whole answer's length, sends half of it, then resets the connection.
- ``storm``: answers ``status`` (default 503) with the ClearML error envelope and ``retry_after`` (seconds,
  a string such as an HTTP date, or None for no header).
- ``endless_scroll``: ``events.get_task_events`` brings ``batch`` new events and the same scroll id for
  ever, claiming ``total`` events in all (None: no total).
- ``same_scroll``: an event or log page answers the same events (and scroll id) again and again.
- ``log_cycle``: ``events.get_task_log`` ignores ``from_timestamp`` and cycles through ``period`` pages.

Every misbehaviour applies to the next ``times`` matching requests (default: all of them); then the endpoint
behaves again. ``requests`` records ``(key, JSON body or None)`` of every request; ``count(key)`` counts them.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

TOKEN = "hostile.header.token"
KINDS = ("same_page", "page_cycle", "huge_body", "drip", "stall", "malformed_json", "reset_mid_body", "storm",
         "endless_scroll", "same_scroll", "log_cycle")
_BLOCK = b'{"id": "0123456789abcdef0123456789abcdef", "name": "padding row", "status": "completed"},' * 12_000


@dataclass
class Rule:
    """One misbehaviour of the requests whose key starts with ``key`` (an endpoint or a path prefix)."""

    key: str
    kind: str
    options: dict[str, Any]
    times: int | None = None
    hits: int = 0
    memo: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # requests of one rule arrive at once


def envelope(data: Any = None, code: int = 200, msg: str = "OK") -> bytes:
    """A ClearML answer envelope."""
    return json.dumps({"meta": {"result_code": code, "result_subcode": 0, "result_msg": msg},
                       "data": {} if data is None else data}).encode()


class HostileServer:
    """The misbehaving server; a context manager (``url``: its base URL on 127.0.0.1).

    Args:
        upstream: A real server to forward what does not misbehave to (API host or fileserver), or None.
    """

    def __init__(self, upstream: str | None = None):
        self.upstream = upstream.rstrip("/") if upstream else None
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, Any]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._http = requests.Session()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-server", daemon=True)

    def __enter__(self) -> "HostileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving (drips and stalls in progress end at once)."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def misbehave(self, key: str, kind: str, *, times: int | None = None, **options: Any) -> Rule:
        """Make requests whose key (``service.action``, or the path for other requests) starts with ``key``
        misbehave as ``kind`` (see the module docstring), the next ``times`` of them (None: all)."""
        if kind not in KINDS:
            raise ValueError(f"unknown misbehaviour {kind!r}: one of {', '.join(KINDS)}")
        rule = Rule(key, kind, options, times)
        with self._lock:
            self.rules.insert(0, rule)
        return rule

    def behave(self) -> None:
        """Forget every misbehaviour."""
        with self._lock:
            self.rules.clear()

    def count(self, key: str) -> int:
        """Requests seen whose key starts with ``key``."""
        with self._lock:
            return sum(1 for seen, _ in self.requests if seen.startswith(key))

    def rule_for(self, key: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if key.startswith(rule.key) and (rule.times is None or rule.hits < rule.times):
                    rule.hits += 1
                    return rule
        return None

    def record(self, key: str, body: Any) -> None:
        with self._lock:
            self.requests.append((key, body))

    def forward(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, bytes]:
        """The upstream's answer to the request (an empty success when there is no upstream)."""
        if self.upstream is None:
            if path.endswith("auth.login"):
                return 200, {"Content-Type": "application/json"}, envelope({"token": TOKEN})
            return 200, {"Content-Type": "application/json"}, envelope()
        keep = {k: v for k, v in headers.items() if k.lower() in ("authorization", "content-type")}
        base = urlsplit(self.upstream)
        resp = self._http.request(method, f"{base.scheme}://{base.netloc}{path}", headers=keep, data=raw,
                                  timeout=60)
        out = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "retry-after")}
        return resp.status_code, out, resp.content


_API_PATH = re.compile(r"^/(?:v\d+\.\d+/)?([a-z_]+\.[a-z_]+)$")


def _key(path: str) -> str:
    """``service.action`` of an API path (``/v2.23/tasks.get_all``, ``/auth.login``), else the path."""
    found = _API_PATH.match(path.split("?", 1)[0])
    return found.group(1) if found else path


def _handler(hostile: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = _key(self.path)
            try:
                body = json.loads(raw) if raw and self.headers.get("Content-Type", "").startswith(
                    "application/json") and "lines" not in self.headers.get("Content-Type", "") else None
            except ValueError:
                body = None
            hostile.record(key, body)
            rule = hostile.rule_for(key)
            try:
                if rule is None:
                    self._send(*hostile.forward(self.command, self.path, dict(self.headers), raw))
                else:
                    _MISBEHAVIOURS[rule.kind](self, hostile, rule, body or {}, raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: what the misbehaviour is for
            self.close_connection = True

        do_GET = do_POST = _serve

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def end_headers(self) -> None:
            self.send_header("Connection", "close")  # one request a connection: no keep-alive race
            super().end_headers()

        def answer(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
            self._send(status, {"Content-Type": "application/json", **(headers or {})}, body)

        def upstream(self, body: dict, raw: bytes) -> tuple[int, dict, bytes]:
            data = json.dumps(body).encode() if body else raw
            return hostile.forward(self.command, self.path, {**dict(self.headers), "Content-Type":
                                                             self.headers.get("Content-Type", "application/json")},
                                   data)

    return Handler


# -- misbehaviours --------------------------------------------------------------------------------------------
def _fake_rows(key: str, page: int, rows: int) -> dict:
    service = key.split(".", 1)[0]
    return {service: [{"id": f"{page:04d}{i:028d}", "name": f"row {i}", "company": "c"} for i in range(rows)]}


def _same_page(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    if hostile.upstream is None or "rows" in rule.options:
        h.answer(envelope(_fake_rows(_key(h.path), 0, rule.options.get("rows", 3))))
    else:
        h._send(*h.upstream({**body, "page": 0}, raw))


def _page_cycle(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    period = int(rule.options.get("period", 3))
    page = int(body.get("page") or 0) % period
    if hostile.upstream is None or "rows" in rule.options:
        h.answer(envelope(_fake_rows(_key(h.path), page, rule.options.get("rows", 3))))
    else:
        h._send(*h.upstream({**body, "page": page}, raw))


def _huge_body(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    size = int(rule.options.get("size", 300 * 1000 * 1000))
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    chunked = not rule.options.get("declare_length", False)
    h.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))))
    h.end_headers()
    head = b'{"meta": {"result_code": 200}, "data": {"tasks": ['
    sent = 0
    for piece in _pieces(head, size):
        if hostile.stopping.is_set():
            return
        h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        sent += len(piece)
    if chunked:
        h.wfile.write(b"0\r\n\r\n")


def _pieces(head: bytes, size: int):
    yield head
    left = size - len(head)
    view = memoryview(_BLOCK)
    while left > 0:
        piece = view[:min(left, len(_BLOCK))]
        left -= len(piece)
        yield piece


def _drip(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    status, headers, payload = h.upstream(body, raw)
    interval = float(rule.options.get("interval", 1.0))
    head = [f"HTTP/1.1 {status} OK\r\n"] + [f"{k}: {v}\r\n" for k, v in headers.items()] + \
        [f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"]
    wire = "".join(head).encode()
    if not rule.options.get("headers", False):
        h.wfile.write(wire)
        h.wfile.flush()
        wire = b""
    for byte in wire + payload:
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        if hostile.stopping.wait(interval):
            return


def _stall(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    hostile.stopping.wait(float(rule.options.get("seconds", 3600)))


def _malformed(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    h.answer(rule.options.get("body", b'{"meta": {"result_code": 200}, "data": {"tasks": [{"id": "a"}, {"id": '))


def _reset_mid_body(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    status, headers, payload = h.upstream(body, raw)
    if len(payload) < 2:
        payload = envelope({"padding": "x" * 1000})
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(payload)))
    h.end_headers()
    h.wfile.write(payload[:len(payload) // 2])
    h.wfile.flush()
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    h.connection.close()


def _storm(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    status = int(rule.options.get("status", 503))
    after = rule.options.get("retry_after")
    headers = {} if after is None else {"Retry-After": str(after)}
    h.answer(envelope(code=status, msg="Service Unavailable" if status == 503 else "Too Many Requests"),
             status, headers)


def _endless_scroll(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    batch = int(rule.options.get("batch", 100))
    start = rule.memo.setdefault("next", 0)
    rule.memo["next"] = start + batch
    events = [{"type": "plot", "task": body.get("task"), "iter": start + i, "metric": "m", "variant": "v",
               "timestamp": 1_700_000_000_000 + start + i, "plot_str": "{}"} for i in range(batch)]
    total = {} if rule.options.get("total") is None else {"total": int(rule.options["total"])}
    h.answer(envelope({"events": events, "returned": batch, "scroll_id": "never-ending", **total}))


def _same_scroll(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    with rule.lock:  # only the first request is answered truly, also when several arrive at once
        _first_answer(h, hostile, rule, body, raw)
    h.answer(rule.memo["answer"])


def _first_answer(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    if "answer" not in rule.memo:
        if hostile.upstream is None:
            events = [{"type": "log", "task": body.get("task"), "timestamp": 1_700_000_000_000 + i, "msg": f"line {i}"}
                      for i in range(int(rule.options.get("rows", 3)))]
            rule.memo["answer"] = envelope({"events": events, "returned": len(events), "total": 1000,
                                            "scroll_id": "stuck"})
        else:
            rule.memo["answer"] = h.upstream(body, raw)[2]


def _log_cycle(h: Any, hostile: HostileServer, rule: Rule, body: dict, raw: bytes) -> None:
    period = int(rule.options.get("period", 2))
    page = rule.memo.setdefault("page", 0)
    rule.memo["page"] = page + 1
    base = 1_700_000_000_000 + (page % period) * 1000
    events = [{"type": "log", "task": body.get("task"), "timestamp": base + i, "msg": f"line {i}"} for i in range(3)]
    h.answer(envelope({"events": events, "returned": 3, "total": 9000}))


_MISBEHAVIOURS = {"same_page": _same_page, "page_cycle": _page_cycle, "huge_body": _huge_body, "drip": _drip,
                  "stall": _stall, "malformed_json": _malformed, "reset_mid_body": _reset_mid_body, "storm": _storm,
                  "endless_scroll": _endless_scroll, "same_scroll": _same_scroll, "log_cycle": _log_cycle}


def wait_for(predicate: Any, seconds: float = 30.0) -> bool:
    """Poll ``predicate`` until true (a hang guard for tests, never a timing assertion)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def bounded(call: Any, guard: float, what: str) -> tuple[Any, BaseException | None]:
    """``(result, error)`` of ``call()``, run in a thread so that a hang fails the test instead of stalling it
    (``guard`` seconds only stop a broken case; nothing asserts on time)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(guard)
    assert not worker.is_alive(), f"still running after {guard:.0f}s: {what}"
    return outcome.get("result"), outcome.get("error")
