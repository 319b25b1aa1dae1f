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

    # -- restore writes (restore) ----------------------------------------------------------------
    def find_tasks_by_system_tag(self, system_tag: str) -> list[dict]:
        """Every task (any status, hidden or archived too) carrying ``system_tag``, oldest first."""
        return list(self.iter_pages(
            "tasks.get_all", "tasks", system_tags=[system_tag], search_hidden=True, order_by=["created"],
            only_fields=["id", "name", "status", "system_tags", "runtime", "project", "created", "type"]))

    def find_tasks_by_tag(self, tag: str) -> list[dict]:
        """Every task (any status, hidden too, e.g. dataset versions) carrying the user tag ``tag``."""
        return list(self.iter_pages(
            "tasks.get_all", "tasks", tags=[tag], search_hidden=True, order_by=["created"],
            only_fields=["id", "name", "status", "tags", "system_tags", "runtime", "project"]))

    def find_models_by_system_tag(self, system_tag: str) -> list[dict]:
        """Every model carrying ``system_tag``, oldest first."""
        return list(self.iter_pages("models.get_all", "models", system_tags=[system_tag],
                                    order_by=["created"], only_fields=["id", "name", "uri", "task", "system_tags"]))

    def get_task_by_id(self, task_id: str) -> dict:
        """The whole task document (``tasks.get_by_id``)."""
        return self.call("tasks.get_by_id", task=task_id)["task"]

    def ensure_project(self, name: str) -> str:
        """The id of project ``name`` (full path, e.g. ``a/b``), created with its parents if missing."""
        pattern = f"^{re.escape(name)}$"
        found = self.call("projects.get_all", name=pattern, search_hidden=True,
                          only_fields=["id", "name"]).get("projects") or []
        if found:
            return found[0]["id"]
        try:
            return self.call("projects.create", name=name, description="")["id"]
        except ClearMLRequestError:  # created meanwhile by someone else
            found = self.call("projects.get_all", name=pattern, search_hidden=True,
                              only_fields=["id"]).get("projects") or []
            if not found:
                raise
            return found[0]["id"]

    def create_task(self, **fields: Any) -> str:
        """``tasks.create`` (status ``created``); returns the new id."""
        return self.call("tasks.create", **fields)["id"]

    def edit_task(self, task_id: str, **fields: Any) -> None:
        """``tasks.edit`` with ``force`` (created or in_progress tasks)."""
        self.call("tasks.edit", task=task_id, force=True, **fields)

    def update_task(self, task_id: str, **fields: Any) -> None:
        """``tasks.update``: name, comment, tags, system_tags (any status)."""
        self.call("tasks.update", task=task_id, **fields)

    def set_task_status(self, task_id: str, status: str, *, message: str = "", reason: str = "") -> None:
        """Move a task to ``status`` with ``force`` (``in_progress``, ``stopped``, ``failed``, ``completed``,
        ``published``, ``closed``); the state machine of the real server is skipped by ``force``."""
        endpoint = {"in_progress": "tasks.started", "stopped": "tasks.stopped", "failed": "tasks.failed",
                    "completed": "tasks.completed", "published": "tasks.publish", "closed": "tasks.close"}[status]
        self.call(endpoint, task=task_id, force=True, status_message=message, status_reason=reason)

    def delete_task(self, task_id: str) -> None:
        """``tasks.delete`` with ``force`` (its events and output models go with it)."""
        self.call("tasks.delete", task=task_id, force=True, delete_output_models=True, return_file_urls=False)

    def add_events(self, events: list[dict]) -> dict:
        """``events.add_batch`` of ``events`` as JSON lines (one request; the caller bounds its size).

        Raises:
            ClearMLRequestError: The server refused the batch or some of its events.
        """
        body = b"\n".join(orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY) for e in events)
        url = f"{self.api_host}/v{API_VERSION}/events.add_batch"
        for attempt in (0, 1):
            self.calls += 1
            try:
                resp = self._http.post(url, data=body, timeout=self._timeout, headers={
                    "Authorization": f"Bearer {self._bearer(refresh=attempt == 1)}",
                    "Content-Type": "application/json-lines"})
            except requests.RequestException as exc:
                raise self._unreachable(exc) from None
            payload = _json(resp)
            code = _result_code(payload) or resp.status_code
            if code == 401 and attempt == 0:
                continue
            if code in (502, 503, 504) or (payload is None and resp.status_code >= 500):
                raise self._server_error(resp.status_code, _result_msg(payload))
            data = (payload or {}).get("data") or {} if isinstance(payload, dict) else {}
            if code == 200 and not data.get("errors"):
                return data
            raise ClearMLRequestError(
                f"ClearML account '{self.account}': events.add_batch failed with {code}/"
                f"{_result_subcode(payload)}: {_result_msg(payload) or data.get('errors_info') or resp.reason}",
                metadata={"endpoint": "events.add_batch", "result_code": code})
        raise AssertionError("unreachable")

    def reset_task(self, task_id: str) -> None:
        """``tasks.reset`` with ``force``: back to ``created``, events, metrics, runtime and output artifacts
        cleared, draft output models deleted (ready ones detached)."""
        self.call("tasks.reset", task=task_id, force=True, delete_output_models=True)

    def add_or_update_artifacts(self, task_id: str, artifacts: list[dict]) -> None:
        """``tasks.add_or_update_artifacts`` (upsert by key and mode) with ``force``."""
        self.call("tasks.add_or_update_artifacts", task=task_id, artifacts=artifacts, force=True)

    def create_model(self, **fields: Any) -> str:
        """``models.create``; returns the new model id."""
        return self.call("models.create", **fields)["id"]

    def get_model_by_id(self, model_id: str) -> dict:
        """The whole model document (``models.get_by_id``)."""
        return self.call("models.get_by_id", model=model_id)["model"]

    def edit_model(self, model_id: str, **fields: Any) -> None:
        """``models.edit``: any field of ``models.create`` (uri, task, project, labels...), ready or not."""
        self.call("models.edit", model=model_id, **fields)

    def add_task_model(self, task_id: str, name: str, model_id: str, kind: str) -> None:
        """``tasks.add_or_update_model``: attach a model as the task's ``input`` or ``output``."""
        self.call("tasks.add_or_update_model", task=task_id, name=name, model=model_id, type=kind)

    def upload_file(self, path: str, source: Path) -> str:
        """Stream ``source`` to this account's fileserver at ``path`` (as the SDK does: a multipart POST
        to the fileserver's root whose field name is the path); returns the file's URL.

        Raises:
            ClearMLConfigError: The account has no fileserver.
            ClearMLRequestError: The fileserver refused the upload.
        """
        from urllib.parse import quote

        from requests_toolbelt import MultipartEncoder

        from .errors import ClearMLConfigError

        if not self.files_host:
            raise ClearMLConfigError(f"ClearML account '{self.account}' has no files_host: set it to upload files")
        path = path.lstrip("/")
        for attempt in (0, 1):
            with open(source, "rb") as handle:
                form = MultipartEncoder(fields={path: (Path(path).name, handle, "application/octet-stream")})
                try:
                    resp = self._http.post(f"{self.files_host}/", data=form, timeout=self._timeout, headers={
                        "Authorization": f"Bearer {self._bearer(refresh=attempt == 1)}",
                        "Content-Type": form.content_type})
                except requests.RequestException as exc:
                    raise self._unreachable(exc, host=self.files_host) from None
            if resp.status_code == 401 and attempt == 0:
                continue
            if resp.status_code != 200:
                raise ClearMLRequestError(
                    f"ClearML account '{self.account}': upload of {path!r} to {self.files_host} failed with "
                    f"HTTP {resp.status_code}", metadata={"http_status": resp.status_code})
            return f"{self.files_host}/{quote(path)}"
        raise AssertionError("unreachable")

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
