"""The tests' raw HTTP client: the exact envelope, no retries, no client logic.

:func:`login_session` and :func:`json_lines` are the wire pieces :class:`RawApi` and the seeder
(``seeding.RawSeeder``) share.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import requests

from clearml_assets.local_server import LocalServerInfo

API_VERSION = "v2.23"


def login_session(api_host: str, access_key: str, secret_key: str, timeout: float,
                  pool_size: int | None = None) -> tuple[requests.Session, str]:
    """A session that sends the bearer token of ``auth.login`` with every request.

    Args:
        api_host: API server URL (no trailing slash).
        access_key: Key to log in with.
        secret_key: Secret of ``access_key``.
        timeout: Seconds the login may take.
        pool_size: Connections kept per host (requests' default if ``None``).

    Returns:
        The session and its token.
    """
    session = requests.Session()
    if pool_size:
        adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    resp = session.get(f"{api_host}/auth.login", auth=(access_key, secret_key), timeout=timeout)
    assert resp.status_code == 200, resp.text
    token = resp.json()["data"]["token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session, token


def endpoint_url(api_host: str, endpoint: str) -> str:
    """The URL of ``endpoint`` at the pinned API version."""
    return f"{api_host}/{API_VERSION}/{endpoint}"


def json_lines(events: list[dict]) -> bytes:
    """An ``events.add_batch`` body as the SDK sends it: one JSON event a line."""
    return "\n".join(json.dumps(e) for e in events).encode()


class RawApi:
    """POSTs ``/v2.23/<endpoint>`` with a token from ``auth.login``; returns the whole envelope.

    Args:
        info: Where the server is and the key pair to log in with.
        access_key: Override the key pair (e.g. a second company's).
        secret_key: Secret of ``access_key``.
    """

    def __init__(self, info: LocalServerInfo, access_key: str | None = None, secret_key: str | None = None):
        self.info = info
        self.session, self.token = login_session(info.api_host, access_key or info.access_key,
                                                 secret_key or info.secret_key, timeout=10)

    def raw(self, endpoint: str, body: Any = None, **fields: Any) -> requests.Response:
        """The HTTP response of one call (JSON body ``body`` or ``fields``)."""
        payload = body if body is not None else fields
        return self.session.post(endpoint_url(self.info.api_host, endpoint), json=payload, timeout=60)

    def call(self, endpoint: str, **fields: Any) -> dict:
        """The ``data`` of a successful call (asserts HTTP 200 == result_code 200)."""
        resp = self.raw(endpoint, **fields)
        env = resp.json()
        assert resp.status_code == 200 and env["meta"]["result_code"] == 200, (endpoint, resp.status_code,
                                                                                env["meta"]["result_msg"])
        return env["data"]

    def error(self, endpoint: str, **fields: Any) -> tuple[int, int, str]:
        """``(http status, result_subcode, result_msg)`` of a call expected to fail."""
        resp = self.raw(endpoint, **fields)
        meta = resp.json()["meta"]
        assert meta["result_code"] == resp.status_code
        return resp.status_code, meta["result_subcode"], meta["result_msg"]

    def add_batch_raw(self, events: list[dict]) -> requests.Response:
        """``events.add_batch`` as the SDK sends it (JSON lines)."""
        return self.session.post(endpoint_url(self.info.api_host, "events.add_batch"), data=json_lines(events),
                                 headers={"Content-Type": "application/json-lines"}, timeout=60)

    def add_batch(self, events: list[dict]) -> dict:
        """``events.add_batch`` expected to succeed; returns its ``data``."""
        resp = self.add_batch_raw(events)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def pages(self, endpoint: str, key: str, page_size: int = 500, **fields: Any) -> Iterator[list[dict]]:
        """Every page of a ``page``/``page_size`` query until a short page."""
        page = 0
        while True:
            rows = self.call(endpoint, page=page, page_size=page_size, **fields)[key]
            yield rows
            if len(rows) < page_size:
                return
            page += 1

    def file(self, url: str) -> requests.Response:
        """GET a fileserver URL with the token."""
        return self.session.get(url, timeout=60)
