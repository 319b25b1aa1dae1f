"""The project's own ClearML REST client: one explicit session per account, bounded time and retries.

The ClearML SDK keeps one process-global session, retries for minutes against a dead server and
truncates what its getters return. Every read this project makes goes through :class:`ClearMLClient`
instead: ``POST /v2.23/<service>.<action>`` with a JSON body (the real server accepts POST as well as
the SDK's GET-with-body), a JWT from ``auth.login`` cached per client, and errors that name the
account, the host and what to do.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import ClearMLConnectionError, ClearMLRequestError

API_VERSION = "2.23"
CHECK_DEADLINE_SEC = 10.0

# the scheme is bounded so that a megabyte of letters is scanned in linear time, not quadratic
_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,31}://)[^/@\s]*@")


def redact_url_credentials(value: Any) -> Any:
    """``value`` with the ``user:password@`` part of every URL in it (strings, nested lists/dicts) masked."""
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\1***@", value)
    if isinstance(value, list):
        return [redact_url_credentials(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_url_credentials(v) for k, v in value.items()}
    return value


class ClearMLClient:
    """A thread-safe client of one ClearML account's API server and fileserver.

    Args:
        api_host: API server URL, e.g. ``https://api.clear.ml`` or ``http://127.0.0.1:8008``.
        access_key: The account's access key.
        secret_key: The account's secret key (never logged or put in an error).
        account: Name of the account, used in messages.
        files_host: Fileserver URL; downloads are refused from any other host.
        web_host: Web app URL, used for links.
        connect_timeout: Seconds to connect.
        read_timeout: Seconds to wait for a response.
        retries: Retries on connection errors and 502/503/504 before giving up.
        max_connections: Size of the connection pool (the most parallel calls this account gets).
    """

    def __init__(
        self,
        api_host: str,
        access_key: str,
        secret_key: str,
        *,
        account: str = "default",
        files_host: str | None = None,
        web_host: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 120.0,
        retries: int = 2,
        max_connections: int = 8,
    ):
        self.account = account
        self.api_host = api_host.rstrip("/")
        self.files_host = files_host.rstrip("/") if files_host else None
        self.web_host = (web_host or _guess_web_host(self.api_host)).rstrip("/")
        self.max_connections = max_connections
        self._auth = (access_key, secret_key)
        self._timeout = (connect_timeout, read_timeout)
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self.calls = 0  # number of API calls sent (benchmarks and tests read it)
        retry = Retry(total=retries, connect=retries, read=0, status=retries, backoff_factor=0.2,
                      backoff_max=2.0, status_forcelist=(502, 503, 504), allowed_methods=None,
                      raise_on_status=False, respect_retry_after_header=False)
        self._retries = retries
        self._http = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=max_connections)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        # check() paces its own attempts against a deadline, so its session never retries by itself
        self._check_http = requests.Session()
        self._check_http.mount("http://", HTTPAdapter(max_retries=0))
        self._check_http.mount("https://", HTTPAdapter(max_retries=0))

    def __repr__(self) -> str:
        return f"ClearMLClient(account={self.account!r}, api_host={self.api_host!r})"

    # -- authentication --------------------------------------------------------------------------
    def _login(self, timeout: tuple[float, float] | None = None, http: requests.Session | None = None) -> str:
        url = f"{self.api_host}/auth.login"
        try:
            resp = (http or self._http).get(url, auth=self._auth, timeout=timeout or self._timeout)
        except requests.RequestException as exc:
            raise self._unreachable(exc) from None
        payload = _json(resp)
        if resp.status_code == 401 or _result_code(payload) == 401:
            raise ClearMLConnectionError(
                f"ClearML account '{self.account}' at {self.api_host} refused its keys (401: "
                f"{_result_msg(payload) or 'invalid credentials'}). Check the account's access/secret key "
                "environment variables (see docs/accounts.md) or create new credentials in the "
                "ClearML web app (Settings > Workspace > Create new credentials).")
        if resp.status_code >= 500:
            raise self._server_error(resp.status_code, _result_msg(payload))
        token = (payload or {}).get("data", {}).get("token") if isinstance(payload, dict) else None
        if not token:
            raise ClearMLConnectionError(
                f"ClearML account '{self.account}': {self.api_host} answered auth.login without a token "
                f"(HTTP {resp.status_code}). Is this the ClearML API server (usually port 8008 or "
                "https://api.<domain>) rather than the web or files host?")
        return token

    def _bearer(self, refresh: bool = False) -> str:
        with self._token_lock:
            if refresh or self._token is None:
                self._token = self._login()
            return self._token

    def check(self, deadline: float = CHECK_DEADLINE_SEC) -> None:
        """Log in and make one cheap call, failing within ``deadline`` seconds with a clear error.

        Each attempt gets a share of the time left, so an unreachable host, a server that accepts
        connections but never answers, or one that answers 502/503 all fail before ``deadline``.

        Raises:
            ClearMLConnectionError: Unreachable host, 5xx, wrong keys, or not a ClearML server.
        """
        end = time.monotonic() + max(deadline - 0.5, 0.5)
        attempts = self._retries + 1
        last: ClearMLConnectionError | None = None
        for attempt in range(attempts):
            budget = (end - time.monotonic()) / (attempts - attempt)
            if budget < 0.2:
                break
            timeout = (min(self._timeout[0], budget * 0.4), budget * 0.6)
            try:
                token = self._login(timeout, http=self._check_http)
                budget = end - time.monotonic()
                self._call("projects.get_all", {"page": 0, "page_size": 1, "only_fields": ["id"]},
                           timeout=(min(self._timeout[0], budget * 0.4), max(budget * 0.6, 0.1)),
                           http=self._check_http, token=token)
                with self._token_lock:
                    self._token = token
                return
            except ClearMLConnectionError as exc:
                if not getattr(exc, "retryable", False):
                    raise
                last = exc
            pause = min(0.25 * 2 ** attempt, (end - time.monotonic()) / 4)
            if attempt + 1 < attempts and pause > 0:
                time.sleep(pause)
        raise last or ClearMLConnectionError(
            f"ClearML account '{self.account}': {self.api_host} did not answer within {deadline:.0f}s. "
            "Check that the server is running and reachable from here.")

    # -- calls -------------------------------------------------------------------------------------
    def call(self, endpoint: str, _timeout: tuple[float, float] | None = None, **fields: Any) -> dict:
        """Send one API call and return the response's ``data``.

        Args:
            endpoint: ``service.action``, e.g. ``tasks.get_all``.
            _timeout: ``(connect, read)`` seconds for this call instead of the client's.
            **fields: The request body, with the real server's field names.

        Raises:
            ClearMLRequestError: The server answered with an error result (4xx, or 500).
            ClearMLConnectionError: The server could not be reached or answered 502/503/504.
        """
        return self._call(endpoint, fields, timeout=_timeout)

    def _call(self, endpoint: str, fields: dict, timeout: tuple[float, float] | None = None,
              http: requests.Session | None = None, token: str | None = None) -> dict:
        url = f"{self.api_host}/v{API_VERSION}/{endpoint}"
        for attempt in (0, 1):
            bearer = token or self._bearer(refresh=attempt == 1)
            self.calls += 1
            try:
                resp = (http or self._http).post(url, json=fields, timeout=timeout or self._timeout,
                                                 headers={"Authorization": f"Bearer {bearer}"})
            except requests.RequestException as exc:
                raise self._unreachable(exc) from None
            payload = _json(resp)
            code = _result_code(payload) or resp.status_code
            if code == 401 and attempt == 0 and token is None:
                continue  # token expired or server restarted with a new signing key: log in again
            if code == 200 and isinstance(payload, dict):
                return payload.get("data") or {}
            if code in (502, 503, 504) or (payload is None and resp.status_code >= 500):
                raise self._server_error(resp.status_code, _result_msg(payload))
            if code == 401:
                raise ClearMLConnectionError(
                    f"ClearML account '{self.account}': {self.api_host} refused {endpoint} (401: "
                    f"{_result_msg(payload) or 'unauthorized'}) even with a fresh login: the keys were revoked "
                    "or lost their rights. Check the account's access/secret key.")
            raise ClearMLRequestError(
                f"ClearML account '{self.account}': {endpoint} failed with {code}/"
                f"{_result_subcode(payload)}: {_result_msg(payload) or resp.reason}",
                metadata={"endpoint": endpoint, "result_code": code,
                          "result_subcode": _result_subcode(payload)})
        raise AssertionError("unreachable")

    def iter_pages(self, endpoint: str, result_key: str, page_size: int = 500, **fields: Any
                   ) -> Iterator[dict]:
        """Yield every row of a paged ``get_all`` endpoint (``page``/``page_size`` until a short page)."""
        page = 0
        while True:
            rows = self.call(endpoint, page=page, page_size=page_size, **fields).get(result_key) or []
            yield from rows
            if len(rows) < page_size:
                return
            page += 1

    # -- files -------------------------------------------------------------------------------------
    def is_own_file_url(self, url: str) -> bool:
        """Whether ``url`` is on this account's fileserver (scheme, host and port equal, under its path, no
        ``..`` even percent-encoded, no credentials of its own)."""
        if not self.files_host:
            return False
        try:
            own, other = urlsplit(self.files_host), urlsplit(url)
            other_port, own_port = other.port, own.port
        except ValueError:  # e.g. a port that is not a number
            return False
        path = unquote(other.path)
        return (other.scheme, other.hostname, other_port) == (own.scheme, own.hostname, own_port) \
            and other.scheme in ("http", "https") and not (other.username or other.password) \
            and "\0" not in path and ".." not in path.replace("\\", "/").split("/") \
            and path.startswith(own.path.rstrip("/") + "/")

    def download(self, url: str, dest: Path, chunk_size: int = 1024 * 1024, _renewed: bool = False, *,
                 digest: Any = None) -> int:
        """Stream a fileserver URL to ``dest`` (written to a temporary name, renamed when whole).

        Args:
            url: A URL on this account's fileserver.
            dest: Where the file goes.
            chunk_size: Bytes per read.
            digest: A ``hashlib`` object updated with the bytes as they are written (one pass over the
                data instead of hashing the file again afterwards).

        Returns:
            The number of bytes written.

        Raises:
            ClearMLRequestError: The URL is not on this account's fileserver, the file is missing (404),
                or fewer bytes arrived than ``Content-Length`` announced.
            ClearMLConnectionError: The fileserver could not be reached.
        """
        if not self.is_own_file_url(url):
            shown = redact_url_credentials(url)  # a password in the URL goes into no message or metadata
            raise ClearMLRequestError(
                f"ClearML account '{self.account}': refusing to download {shown!r}: it is not on the "
                f"account's fileserver {self.files_host}.", metadata={"url": shown})
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.get(url, stream=True, timeout=self._timeout,
                                headers={"Authorization": f"Bearer {self._bearer()}"}) as resp:
                if resp.status_code == 401 and not _renewed:
                    resp.close()
                    self._bearer(refresh=True)  # token expired or server restarted: once more, logged in again
                    return self.download(url, dest, chunk_size, _renewed=True, digest=digest)
                if resp.status_code != 200:
                    raise ClearMLRequestError(
                        f"ClearML account '{self.account}': download of {url} failed with HTTP "
                        f"{resp.status_code}", metadata={"url": url, "http_status": resp.status_code})
                expected = resp.headers.get("Content-Length")
                written = 0
                with open(tmp, "wb") as out:
                    for chunk in resp.iter_content(chunk_size):
                        out.write(chunk)
                        if digest is not None:
                            digest.update(chunk)
                        written += len(chunk)
            if expected is not None and int(expected) != written:
                raise ClearMLRequestError(
                    f"ClearML account '{self.account}': download of {url} was cut short: {written} of "
                    f"{expected} bytes arrived. Try again.", metadata={"url": url})
            os.replace(tmp, dest)
            return written
        except requests.RequestException as exc:
            raise self._unreachable(exc, host=self.files_host) from None
        finally:
            tmp.unlink(missing_ok=True)

    # -- links -------------------------------------------------------------------------------------
    def web_url(self, kind: str, obj_id: str, project_id: str | None = None) -> str:
        """A page of the ClearML web app: ``task``, ``project``, ``dataset`` or ``model``."""
        project = project_id or "*"
        if kind == "task":
            return f"{self.web_host}/projects/{project}/experiments/{obj_id}/output/execution"
        if kind == "project":
            return f"{self.web_host}/projects/{obj_id}/experiments"
        if kind == "dataset":
            return f"{self.web_host}/datasets/simple/{project}/experiments/{obj_id}"
        if kind == "model":
            return f"{self.web_host}/projects/{project}/models/{obj_id}"
        raise ValueError(f"unknown ClearML page kind {kind!r}: use task, project, dataset or model")

    # -- errors ------------------------------------------------------------------------------------
    def _unreachable(self, exc: Exception, host: str | None = None) -> ClearMLConnectionError:
        host = host or self.api_host
        reason = type(exc).__name__
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            error = ClearMLConnectionError(
                f"ClearML account '{self.account}': the connection to {host} broke in the middle of an answer "
                f"({reason}); nothing partial was kept. Try again; if it repeats, check the network or a proxy "
                "between here and the server.")
            error.retryable = True
            return error
        if isinstance(exc, requests.exceptions.RetryError):  # urllib3 gave up on 502/503/504
            reason = "it kept answering 5xx"
        elif isinstance(exc, requests.ConnectTimeout):
            reason = "connection timed out"
        elif isinstance(exc, requests.ConnectionError):
            reason = "connection refused or dropped"
        elif isinstance(exc, requests.Timeout):
            reason = "no answer in time"
        error = ClearMLConnectionError(
            f"ClearML account '{self.account}': cannot reach {host} ({reason}). Check that the server "
            "is running and the account's host settings (api/files host) are right; the embedded "
            "server (account 'local') can be started with `clearml-assets local-server`.")
        error.retryable = True
        return error

    def _server_error(self, status: int, msg: str | None) -> ClearMLConnectionError:
        error = ClearMLConnectionError(
            f"ClearML account '{self.account}': {self.api_host} answered HTTP {status}"
            f"{f' ({msg})' if msg else ''}: the server is unavailable or overloaded. Try again later "
            "or check the server's health.")
        error.retryable = status in (502, 503, 504)
        return error

    # -- archive reads (exporter) ------------------------------------------------------------------
    # Typed reads the archives use. Pages are clamped to the real server's 500 (a larger get_all page
    # is cut to 500 without an error) and paging ends on an empty page only, never on a short one.
    ARCHIVE_PAGE_MAX = 500

    def archive_rows(self, endpoint: str, result_key: str, *, page_size: int = 500,
                     include_public: bool = False, **fields: Any) -> Iterator[dict]:
        """Every row of a paged ``get_all``; rows of the public company (``company: ""``) are left out
        unless ``include_public``."""
        size = max(1, min(int(page_size), self.ARCHIVE_PAGE_MAX))
        only = fields.get("only_fields")
        if only is not None and "company" not in only:
            fields["only_fields"] = [*only, "company"]
        page = 0
        while True:
            rows = self.call(endpoint, page=page, page_size=size, **fields).get(result_key) or []
            if not rows:
                return
            yield from (r for r in rows if include_public or r.get("company", None) != "")
            page += 1

    def get_task_record(self, task_id: str) -> dict:
        """The full task document (``tasks.get_by_id``)."""
        return self.call("tasks.get_by_id", task=task_id)["task"]

    def get_project_record(self, project_id: str) -> dict:
        """The project document (``projects.get_by_id``)."""
        return self.call("projects.get_by_id", project=project_id)["project"]

    def find_projects_named(self, name: str, include_public: bool = False) -> list[dict]:
        """Projects whose name is exactly ``name`` (id, name, company)."""
        return list(self.archive_rows("projects.get_all", "projects", include_public=include_public,
                                      name=f"^{re.escape(name)}$", only_fields=["id", "name"]))

    def list_tasks(self, *, project: str, statuses: list[str], only_fields: list[str],
                   page_size: int = 500, include_public: bool = False) -> Iterator[dict]:
        """Tasks of ``project`` with one of ``statuses``, oldest first, every page."""
        return self.archive_rows("tasks.get_all", "tasks", page_size=page_size, include_public=include_public,
                                 project=[project], status=list(statuses), only_fields=only_fields,
                                 order_by=["created"])

    def list_models(self, *, ids: list[str] | None = None, task: str | None = None) -> Iterator[dict]:
        """Models by id or by creating task, every page (public rows only when asked for by id)."""
        if ids is not None:
            return self.archive_rows("models.get_all", "models", id=list(ids), include_public=True)
        return self.archive_rows("models.get_all", "models", task=[task])

    def task_log_page(self, task_id: str, *, batch_size: int, from_timestamp: int | None = None) -> dict:
        """One page of ``events.get_task_log``, oldest first after ``from_timestamp`` (``events``,
        ``total``; the real total is capped at 10,000)."""
        request: dict[str, Any] = {"task": task_id, "batch_size": batch_size, "navigate_earlier": False,
                                   "order": "asc"}
        if from_timestamp is not None:
            request["from_timestamp"] = from_timestamp
        return self.call("events.get_task_log", **request)

    def task_events_page(self, task_id: str, event_type: str | None, *, batch_size: int, order: str = "asc",
                         scroll_id: str | None = None, model_events: bool = False,
                         metrics: list[dict] | None = None) -> dict:
        """One page of ``events.get_task_events`` (by iteration; ``events``, ``total``, ``scroll_id``)."""
        request: dict[str, Any] = {"task": task_id, "batch_size": batch_size, "order": order}
        if event_type:  # omitted: every type (the real server's "*", the local server's "all")
            request["event_type"] = event_type
        if model_events:
            request["model_events"] = True
        if metrics:
            request["metrics"] = metrics
        if scroll_id:
            request["scroll_id"] = scroll_id
        return self.call("events.get_task_events", **request)

    def scalar_metrics_and_variants(self, task_id: str, model_events: bool = False) -> dict:
        """``{metric: {variant: ...}}`` of the task's (or model's) scalars."""
        fields: dict[str, Any] = {"model_events": True} if model_events else {}
        return self.call("events.get_scalar_metrics_and_variants", task=task_id, **fields).get("metrics") or {}


def _json(resp: requests.Response) -> Any:
    """The response's JSON (``None`` if it is not JSON).

    Event pages are most of an export's bytes and orjson reads them about 3x faster; an answer it refuses but
    Python's parser reads (``NaN``, escaped lone surrogates in log text) goes to the standard parser whole.
    orjson reads an integer past 64 bits as a float; the server's integers (iterations, timestamps,
    counts) are 64-bit.
    """
    body = resp.content
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except ValueError:
        return None


def _meta(payload: Any) -> dict:
    return payload.get("meta") or {} if isinstance(payload, dict) else {}


def _result_code(payload: Any) -> int | None:
    return _meta(payload).get("result_code")


def _result_subcode(payload: Any) -> int | None:
    return _meta(payload).get("result_subcode")


def _result_msg(payload: Any) -> str | None:
    return _meta(payload).get("result_msg")


def _guess_web_host(api_host: str) -> str:
    parts = urlsplit(api_host)
    host = parts.hostname or "localhost"
    if host.startswith("api."):
        return f"{parts.scheme}://app.{host[4:]}"
    if parts.port == 8008:
        return f"{parts.scheme}://{host}:8080"
    return api_host
