"""One account's session with a ClearML API server: login and token refresh, calls with bounded retries,
a total deadline and a size cap on every answer, and the ``get_all`` pager.

The ClearML SDK keeps one process-global session, retries for minutes against a dead server and
truncates what its getters return. Every call this project makes goes through :class:`ClearMLSession`
instead: ``POST /v2.23/<service>.<action>`` with a JSON body (the real server accepts POST as well as
the SDK's GET-with-body), a JWT from ``auth.login`` cached per session, and errors that name the
account, the host, the call and what to do.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any, Iterator

import requests
from urllib3.util.retry import Retry

from ..errors import ClearMLConnectionError, ClearMLRequestError
from . import failures
from .failures import RETRY_STATUSES
from .paging import MAX_PAGE_SIZE, PageGuard
from .transport import Deadline, Proxies, TooLarge, bounded, http_session, parse_json, read_body, retry_after
from .urls import derive_files_host, derive_web_host

API_VERSION = "2.23"
#: The account check's bound (README, "Accounts").
CHECK_DEADLINE_SEC = 10.0
#: The most one call may take, every attempt and its whole answer included (README, "When something is wrong").
DEFAULT_DEADLINE_SEC = 60.0
#: The largest JSON answer read (decoded bytes); a larger one is refused before it is held whole.
DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024
# Actions that only read: safe to send again after a 429/5xx. Anything else (create, edit, add_batch,
# status changes, delete) may have taken effect before the error, so it is never repeated blindly.
_READ_ACTIONS = frozenset({
    "debug_images", "plots", "scalar_metrics_iter_raw", "scalar_metrics_iter_histogram",
    "vector_metrics_iter_histogram", "multi_task_scalar_metrics_iter_histogram", "download_task_log",
    "next_debug_image_sample", "next_plot_sample", "validate_delete", "login", "ping", "info",
})


def is_read_endpoint(endpoint: str) -> bool:
    """Whether ``service.action`` only reads (safe to send again after a 429/5xx answer)."""
    action = endpoint.rpartition(".")[2]
    return action.startswith("get") or action in _READ_ACTIONS


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (``{}`` if it is not one)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _meta(payload: Any) -> dict:
    return payload.get("meta") or {} if isinstance(payload, dict) else {}


class _Answer:
    """One HTTP answer, read whole (under the size cap) and parsed."""

    def __init__(self, resp: requests.Response, body: bytearray):
        self.status, self.headers, self.reason, self.body = resp.status_code, resp.headers, resp.reason, body
        self.payload = parse_json(body)
        meta = _meta(self.payload)
        self.code: int = meta.get("result_code") or self.status
        self.subcode, self.msg = meta.get("result_subcode"), meta.get("result_msg")


class ClearMLSession:
    """A thread-safe session with one ClearML account's API server.

    Args:
        api_host: API server URL, e.g. ``https://api.clear.ml`` or ``http://127.0.0.1:8008``.
        access_key: The account's access key.
        secret_key: The account's secret key (never logged or put in an error).
        account: Name of the account, used in messages.
        files_host: Fileserver URL (derived from the API host as the SDK does when not given).
        web_host: Web app URL, used for links.
        connect_timeout: Seconds to connect.
        read_timeout: Seconds one wait for bytes may take (the deadline bounds the whole call).
        deadline_seconds: The most one call may take: connecting, every retry and ``Retry-After`` wait, and
            reading its whole answer; a server dripping its answer cannot extend it.
        retries: Retries of a read answered 429/502/503/504 (and of any call whose connection could
            not be made) before giving up. Calls that change data are never repeated after an answer.
        max_connections: Size of the connection pool (the most parallel calls this account gets).
        retry_after_max_seconds: The longest single wait a ``Retry-After`` header may ask for; a longer
            one fails at once, naming the wait (a run is never parked for an unbounded time).
        max_response_bytes: The largest JSON answer read; a larger one fails before it is held whole.
    """

    def __init__(self, api_host: str, access_key: str, secret_key: str, *, account: str = "default",
                 files_host: str | None = None, web_host: str | None = None, connect_timeout: float = 3.0,
                 read_timeout: float = DEFAULT_DEADLINE_SEC, deadline_seconds: float = DEFAULT_DEADLINE_SEC,
                 retries: int = 2, max_connections: int = 8, retry_after_max_seconds: float = 30.0,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES):
        self.account = account
        self.api_host = api_host.rstrip("/")
        self.web_host = (web_host or derive_web_host(self.api_host) or self.api_host).rstrip("/")
        derived = files_host or derive_files_host(self.api_host, web_host)
        self.files_host = derived.rstrip("/") if derived else None
        self.max_connections = max_connections
        self.retry_after_max_seconds = retry_after_max_seconds
        self.deadline_seconds = deadline_seconds
        self.max_response_bytes = max_response_bytes
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.calls = 0  # number of API calls sent (benchmarks and tests read it)
        self._auth = (access_key, secret_key)
        self.proxies = Proxies()
        #: The claims of the current token (``auth.login``'s JWT payload, unverified: e.g. the server's identity
        #: and API version for a caller that needs them); ``{}`` before the first login.
        self.token_claims: dict[str, Any] = {}
        self._token: str | None = None
        self._token_lock = threading.Lock()
        # urllib3 only retries connections that were never made (the request was not sent); answers are
        # retried by send(), which knows whether the call is a read
        self.http = http_session(Retry(total=retries, connect=retries, read=0, status=0, other=0,
                                       backoff_factor=0.2, backoff_max=2.0, allowed_methods=None,
                                       raise_on_status=False, respect_retry_after_header=False), max_connections)
        # check() paces its own attempts against a deadline, so its session never retries by itself
        self._check_http = http_session(0, 2)

    def __repr__(self) -> str:
        return f"ClearMLSession(account={self.account!r}, api_host={self.api_host!r})"

    @property
    def api_version(self) -> str | None:
        """The API version the server's token claims (``api_version``, as the SDK reads it; None before the
        first login or when absent)."""
        value = self.token_claims.get("api_version")
        return str(value) if value is not None else None

    @property
    def server_version(self) -> str | None:
        """The clearml-server version the token claims (``server_version``; None before login or when absent)."""
        value = self.token_claims.get("server_version")
        return str(value) if value is not None else None

    def deadline(self, seconds: float | None = None) -> Deadline:
        """A deadline of ``seconds`` (default: the session's) from now."""
        return Deadline(self.deadline_seconds if seconds is None else seconds)

    # -- authentication --------------------------------------------------------------------------
    def token(self, refresh: bool = False, deadline: Deadline | None = None) -> str:
        """The bearer token (logging in when there is none, or again with ``refresh``)."""
        with self._token_lock:
            if refresh or self._token is None:
                self._token = self._login(deadline or self.deadline())
            return self._token

    def _login(self, deadline: Deadline, http: requests.Session | None = None) -> str:
        url = f"{self.api_host}/auth.login"
        answer = self._exchange("auth.login", deadline, http, lambda h, timeout: h.get(
            url, auth=self._auth, timeout=timeout, stream=True, proxies=self.proxies(url)))
        if answer.status == 401 or answer.code == 401:
            raise failures.refused_keys(self.account, self.api_host, answer.msg)
        if answer.status >= 500:
            raise failures.server_error(self.account, self.api_host, answer.status, answer.msg, call="auth.login")
        data = answer.payload.get("data") if isinstance(answer.payload, dict) else None
        token = data.get("token") if isinstance(data, dict) else None
        if not token:
            raise failures.no_token(self.account, self.api_host, answer.status)
        self.token_claims = _claims(token)
        return token

    def check(self, deadline: float = CHECK_DEADLINE_SEC) -> None:
        """Log in and make one cheap call, failing within ``deadline`` seconds with a clear error.

        Each attempt gets a share of the time left, so an unreachable host, a server that accepts
        connections but never answers, or one that answers 502/503 all fail before ``deadline``.

        Raises:
            ClearMLConnectionError: Unreachable host, 5xx, wrong keys, or not a ClearML server.
        """
        end = time.monotonic() + max(deadline - 0.5, 0.5)
        attempts = self.retries + 1
        last = None
        for attempt in range(attempts):
            budget = (end - time.monotonic()) / (attempts - attempt)
            if budget < 0.2:
                break
            try:
                self._checked_once(Deadline(budget))
                return
            except ClearMLConnectionError as exc:
                if not getattr(exc, "retryable", False):
                    raise
                last = exc
            pause = min(0.25 * 2 ** attempt, (end - time.monotonic()) / 4)
            if attempt + 1 < attempts and pause > 0:
                time.sleep(pause)
        raise last or failures.deadline_passed(self.account, self.api_host, "auth.login", deadline)

    def _checked_once(self, deadline: Deadline) -> None:
        token = self._login(deadline, http=self._check_http)
        self.send("projects.get_all", {"page": 0, "page_size": 1, "only_fields": ["id"]},
                  deadline=deadline, http=self._check_http, token=token)
        with self._token_lock:
            self._token = token

    # -- calls -------------------------------------------------------------------------------------
    def call(self, endpoint: str, _deadline: float | None = None, _idempotent: bool | None = None,
             **fields: Any) -> dict:
        """Send one API call and return the response's ``data``.

        A read answered 429/502/503/504 is sent again (``retries`` times, waiting what ``Retry-After``
        asks, bounded by ``retry_after_max_seconds`` and the deadline, else a short backoff). A call that
        changes data is never sent again after an answer: the error says it may or may not have taken effect.

        Args:
            endpoint: ``service.action``, e.g. ``tasks.get_all``.
            _deadline: Seconds this call may take instead of the session's ``deadline_seconds``.
            _idempotent: Whether sending the call twice is harmless; default: only reads
                (``get*`` actions and the event iterators).
            **fields: The request body, with the real server's field names.

        Raises:
            ClearMLRequestError: The server answered with an error result (4xx, or 500), an answer that is
                not ClearML's JSON, or one over ``max_response_bytes``.
            ClearMLConnectionError: The server could not be reached, kept answering 429/502/503/504, or
                did not finish within the deadline.
        """
        idempotent = is_read_endpoint(endpoint) if _idempotent is None else _idempotent
        return self.send(endpoint, fields, deadline=self.deadline(_deadline),
                         retries=self.retries if idempotent else 0)

    def send(self, endpoint: str, fields: dict | None, *, deadline: Deadline, retries: int = 0,
             lines: bytes | None = None, http: requests.Session | None = None, token: str | None = None) -> dict:
        """:meth:`call` with its parts explicit (``lines``: a JSON-lines body, as ``events.add_batch`` takes)."""
        url = f"{self.api_host}/v{API_VERSION}/{endpoint}"
        renewed = busy = 0
        while True:
            bearer = token or self.token(refresh=renewed > 0, deadline=deadline)
            headers = {"Authorization": f"Bearer {bearer}"}
            if lines is not None:  # events.add_batch: one JSON event per line, as the SDK sends it
                headers["Content-Type"] = "application/json-lines"
            self.calls += 1
            answer = self._exchange(endpoint, deadline, http, lambda h, timeout: h.post(
                url, json=fields if lines is None else None, data=lines, timeout=timeout, headers=headers,
                stream=True, proxies=self.proxies(url)))
            if answer.code == 401 and renewed == 0 and token is None:
                renewed += 1  # token expired or server restarted with a new signing key: log in again
                continue
            if answer.code == 200 and isinstance(answer.payload, dict):
                return answer.payload.get("data") or {}
            wait = self._busy_wait(answer, endpoint, busy, retries, deadline)
            if wait is None:
                raise self._failure(answer, endpoint, busy, read=retries > 0 or is_read_endpoint(endpoint),
                                    deadline=deadline)
            busy += 1
            time.sleep(wait)

    def _exchange(self, call: str, deadline: Deadline, http: requests.Session | None, request: Any) -> _Answer:
        """One request under ``deadline``, its answer read whole under the size cap."""
        resp = None
        try:
            with bounded(deadline):
                resp = request(http or self.http, deadline.timeout(*self.timeout))
                return _Answer(resp, read_body(resp, self.max_response_bytes))
        except TooLarge as exc:
            raise failures.too_large(self.account, self.api_host, call, exc.size, exc.cap, exc.declared) from None
        except failures.TRANSPORT_ERRORS as exc:
            if deadline.expired():
                raise failures.deadline_passed(self.account, self.api_host, call, deadline.seconds) from None
            raise failures.unreachable(self.account, self.api_host, exc, call) from None
        finally:
            if resp is not None:
                resp.close()

    def _busy_wait(self, answer: _Answer, endpoint: str, busy: int, retries: int, deadline: Deadline
                   ) -> float | None:
        """Seconds to wait before sending a busy read again, None when it is not sent again."""
        status = answer.status if answer.status in RETRY_STATUSES else answer.code
        if status not in RETRY_STATUSES or busy >= retries:
            return None
        return self.retry_wait(answer.headers, busy, deadline)

    def retry_wait(self, headers: Any, attempt: int, deadline: Deadline) -> float | None:
        """Seconds to wait before sending a read again: ``Retry-After`` if given, else a short backoff;
        None when the server asks for longer than ``retry_after_max_seconds`` or the deadline leaves."""
        asked = retry_after(headers)
        wait = min(0.2 * 2 ** attempt, 2.0) if asked is None else asked
        bound = min(self.retry_after_max_seconds, deadline.remaining() - 0.1)
        return wait if wait <= bound else None

    def _failure(self, answer: _Answer, endpoint: str, busy: int, *, read: bool,
                 deadline: Deadline) -> Exception:
        status = answer.status if answer.status in RETRY_STATUSES else answer.code
        if status in RETRY_STATUSES or (answer.payload is None and answer.status >= 500):
            return failures.server_error(
                self.account, self.api_host, answer.status, answer.msg, call=endpoint, retried=busy, read=read,
                wait=retry_after(answer.headers),
                wait_bound=min(self.retry_after_max_seconds, max(deadline.remaining(), 0.0)))
        if answer.code == 200 or answer.payload is None:
            return failures.not_clearml_json(self.account, self.api_host, endpoint, answer.status, answer.body)
        if answer.code == 401:
            return failures.revoked(self.account, self.api_host, endpoint, answer.msg)
        return failures.request_failed(self.account, endpoint, answer.code, answer.subcode,
                                       answer.msg or answer.reason)

    # -- paging ------------------------------------------------------------------------------------
    def iter_pages(self, endpoint: str, result_key: str, page_size: int = MAX_PAGE_SIZE, **fields: Any
                   ) -> Iterator[dict]:
        """Yield every row of a paged ``get_all`` endpoint.

        The page size is clamped to the real server's cap (500: it cuts larger pages silently), and
        paging stops on an empty page or when the answer's ``total`` is reached, never on a short page
        (a server may cap pages below the size asked for).

        Raises:
            ClearMLRequestError: The server answered a page it had answered before (it ignores ``page``,
                or cycles), which would otherwise never end.
        """
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        guard = PageGuard()
        while True:
            data = self.call(endpoint, page=guard.pages, page_size=page_size, **fields)
            rows = data.get(result_key) or []
            if not rows:
                return
            earlier = guard.check(rows)
            if earlier is not None:
                raise ClearMLRequestError(
                    f"ClearML account '{self.account}': {endpoint} to {self.api_host} answered page "
                    f"{guard.pages - 1} with the same rows as page {earlier}; the server ignores paging, so "
                    "not every row can be read.", metadata={"endpoint": endpoint, "page": guard.pages - 1})
            yield from rows
            total = data.get("total")
            if isinstance(total, int) and guard.rows >= total:
                return


class ServiceClient:
    """The client of one ClearML service (``client.tasks``, ``client.events``...) over an account's session.

    Args:
        session: The account's session.
    """

    def __init__(self, session: ClearMLSession):
        self._session = session
