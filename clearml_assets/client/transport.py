"""HTTP with a wall-clock deadline and a size cap on every answer.

A read timeout bounds one wait for bytes, not a request: a server dripping one byte just inside it
(headers or body) would hold a call for ever. Here every request runs inside a :class:`Deadline`; the
connection it uses is handed to one watchdog thread that shuts its socket down when the deadline passes,
whatever phase the request is in (headers, body, a chunked stream), so the blocked read returns at once.
Bodies are read as a stream and refused past a byte cap, before they are held whole.
"""

from __future__ import annotations

import email.utils
import heapq
import itertools
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection

_CHUNK = 256 * 1024


class Deadline:
    """The monotonic time by which a request (all its attempts and its whole answer) must be done.

    Args:
        seconds: Time from now.
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.start = time.monotonic()
        self.end = self.start + self.seconds

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.end - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0

    def timeout(self, connect: float, read: float) -> tuple[float, float]:
        """``(connect, read)`` socket timeouts no longer than what is left."""
        left = max(self.remaining(), 0.001)
        return min(connect, left), min(read, left)

    def allow(self, seconds: float) -> None:
        """Move the end to ``seconds`` after the start, if that is later (a download of a known size)."""
        self.end = max(self.end, self.start + seconds)


class TooLarge(Exception):
    """An answer larger than the cap (``size``: what it declared or what had arrived)."""

    def __init__(self, size: int, cap: int, declared: bool):
        super().__init__(f"{size} bytes > {cap}")
        self.size, self.cap, self.declared = size, cap, declared


class _Watch:
    __slots__ = ("deadline", "sock", "done", "fired")

    def __init__(self, deadline: Deadline, sock: Any):
        self.deadline, self.sock, self.done, self.fired = deadline, sock, False, False

    def fire(self) -> None:
        self.fired = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


class _Watchdog:
    """One daemon thread shutting down the sockets of requests whose deadline passed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._seq = itertools.count()
        self._pid = 0
        self._live = 0

    def arm(self, deadline: Deadline, sock: Any) -> _Watch:
        watch = _Watch(deadline, sock)
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked child (threads do not survive a fork)
                self._pid, self._heap, self._live = os.getpid(), [], 0
                threading.Thread(target=self._run, name="clearml-deadlines", daemon=True).start()
            heapq.heappush(self._heap, (deadline.end, next(self._seq), watch))
            self._live += 1
            self._cond.notify()
        return watch

    def disarm(self, watches: list[_Watch]) -> None:
        with self._cond:
            for watch in watches:
                watch.done = True
            self._live -= len(watches)
            if len(self._heap) > 64 and len(self._heap) > 4 * self._live:  # drop finished requests' entries
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                end, _, watch = self._heap[0]
                now = time.monotonic()
                if end > now:
                    self._cond.wait(end - now)
                    continue
                heapq.heappop(self._heap)
                if watch.deadline.end > now:  # extended meanwhile
                    heapq.heappush(self._heap, (watch.deadline.end, next(self._seq), watch))
                else:
                    watch.fire()


_WATCHDOG = _Watchdog()
_SCOPE = threading.local()


@contextmanager
def bounded(deadline: Deadline) -> Iterator[list[_Watch]]:
    """Run the requests made in the block (this thread) under ``deadline``; yields the armed watches."""
    outer = getattr(_SCOPE, "current", None)
    watches: list[_Watch] = []
    _SCOPE.current = (deadline, watches)
    try:
        yield watches
    finally:
        _SCOPE.current = outer
        if watches:
            _WATCHDOG.disarm(watches)


def _arm(sock: Any) -> None:
    scope = getattr(_SCOPE, "current", None)
    if scope is not None and sock is not None:
        scope[1].append(_WATCHDOG.arm(scope[0], sock))


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _arm(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _arm(self.sock)
        return super().getresponse(*args, **kwargs)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class BoundedAdapter(HTTPAdapter):
    """A requests adapter whose connections are watched by the deadline of the :func:`bounded` block."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def http_session(retries: urllib3.Retry | int, pool_size: int) -> requests.Session:
    """A ``requests`` session whose requests honour :func:`bounded` deadlines.

    At most ``pool_size`` requests are in flight (more wait for a connection). The environment is read once
    here, not on every request: proxies come from :class:`Proxies` per host, the CA bundle from
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; ``.netrc`` is never read (the token is the only credential).
    """
    http = requests.Session()
    http.trust_env = False
    http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    adapter = BoundedAdapter(max_retries=retries, pool_connections=2, pool_maxsize=pool_size, pool_block=True)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


class Proxies:
    """The environment's proxies (``HTTP(S)_PROXY``, ``NO_PROXY``) for a URL, resolved once per host."""

    def __init__(self) -> None:
        self._by_origin: dict[str, dict[str, str]] = {}

    def __call__(self, url: str) -> dict[str, str]:
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        found = self._by_origin.get(key)
        if found is None:
            found = self._by_origin[key] = requests.utils.get_environ_proxies(key)
        return found


def declared_length(resp: requests.Response) -> int | None:
    """The ``Content-Length`` the answer declared, None if absent or unreadable."""
    value = (resp.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def iter_body(resp: requests.Response, cap: int, chunk_size: int = _CHUNK) -> Iterator[bytes]:
    """The (decoded) answer body in chunks, refused with :class:`TooLarge` past ``cap`` bytes: at once
    when ``Content-Length`` declares more, else as soon as more has arrived."""
    declared = declared_length(resp)
    if declared is not None and declared > cap:
        raise TooLarge(declared, cap, declared=True)
    received = 0
    for chunk in resp.raw.stream(chunk_size, decode_content=True):
        received += len(chunk)
        if received > cap:
            raise TooLarge(received, cap, declared=False)
        yield chunk


def read_body(resp: requests.Response, cap: int) -> bytearray:
    """The whole (decoded) body, at most ``cap`` bytes (:class:`TooLarge` beyond)."""
    body = bytearray()
    for chunk in iter_body(resp, cap):
        body += chunk
    return body


def parse_json(body: bytes | bytearray) -> Any:
    """The body's JSON (``None`` if it is not JSON).

    Event pages are most of an export's bytes and orjson reads them about 3x faster; an answer it refuses but
    Python's parser reads (``NaN``, escaped lone surrogates in log text) goes to the standard parser whole.
    orjson reads an integer past 64 bits as a float; the server's integers (iterations, timestamps,
    counts) are 64-bit.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except ValueError:
        return None


def retry_after(headers: Any) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None if absent or unreadable."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
