"""The project's own ClearML REST client: one explicit session per account, bounded time and retries.

The ClearML SDK keeps one process-global session, retries for minutes against a dead server and
truncates what its getters return. Every read this project makes goes through :class:`ClearMLClient`
instead: ``POST /v2.23/<service>.<action>`` with a JSON body (the real server accepts POST as well as
the SDK's GET-with-body), a JWT from ``auth.login`` cached per client, and errors that name the
account, the host and what to do.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import ClearMLConnectionError, ClearMLRequestError
from .types import Model, Project, Queue, Task, Worker

API_VERSION = "2.23"
CHECK_DEADLINE_SEC = 10.0
#: The most rows a real clearml-server returns per ``get_all`` page; it cuts larger pages without an error.
MAX_PAGE_SIZE = 500
#: Statuses that mean "not now, try again" (rate limit, maintenance/overload), honouring ``Retry-After``.
RETRY_STATUSES = (429, 502, 503, 504)
SAAS_API_HOST = "https://api.clear.ml"
SAAS_WEB_HOST = "https://app.clear.ml"
SAAS_FILES_HOST = "https://files.clear.ml"
#: Older names of the SaaS fileserver that stored URIs still carry (the SDK's ``Session.legacy_file_servers``).
SAAS_LEGACY_FILES_HOSTS = ("https://files.community.clear.ml",)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Actions that only read: safe to send again after a 429/5xx. Anything else (create, edit, add_batch,
# status changes, delete) may have taken effect before the error, so it is never repeated blindly.
_READ_ACTIONS = frozenset({
    "debug_images", "plots", "scalar_metrics_iter_raw", "scalar_metrics_iter_histogram",
    "vector_metrics_iter_histogram", "multi_task_scalar_metrics_iter_histogram", "download_task_log",
    "next_debug_image_sample", "next_plot_sample", "validate_delete", "login", "ping", "info",
})

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
        retries: Retries of a read answered 429/502/503/504 (and of any call whose connection could
            not be made) before giving up. Calls that change data are never repeated after an answer.
        max_connections: Size of the connection pool (the most parallel calls this account gets).
        retry_after_max_seconds: The longest single wait a ``Retry-After`` header may ask for; a longer
            one fails at once, naming the wait (a run is never parked for an unbounded time).
        files_host_aliases: Other spellings of the files host that stored URIs carry (e.g. the host the
            SDK saw, ``http://localhost:8081`` for ``http://127.0.0.1:8081``, or a former name); URLs on
            them count as the account's own and are fetched from ``files_host``. For ClearML SaaS,
            ``files.community.clear.ml`` is added automatically (see also :func:`loopback_aliases`).
        storage_options: fsspec options per URL prefix (``"s3://bucket"``, ``"s3://"``, ``"gs://"``,
            ``"azure://"``), e.g. ``{"s3://": {"key": ..., "secret": ..., "client_kwargs":
            {"endpoint_url": ...}}}``; read by object-storage downloads (never sent to the API server).
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
        retry_after_max_seconds: float = 30.0,
        files_host_aliases: Sequence[str] = (),
        storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.account = account
        self.api_host = api_host.rstrip("/")
        self.web_host = (web_host or derive_web_host(self.api_host) or self.api_host).rstrip("/")
        derived = files_host or derive_files_host(self.api_host, web_host)
        self.files_host = derived.rstrip("/") if derived else None
        self.files_host_aliases = _aliases(self.files_host, files_host_aliases)
        self.storage_options: dict[str, dict[str, Any]] = {
            prefix: dict(options) for prefix, options in (storage_options or {}).items()}
        self.max_connections = max_connections
        self.retry_after_max_seconds = retry_after_max_seconds
        self._auth = (access_key, secret_key)
        self._timeout = (connect_timeout, read_timeout)
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self.calls = 0  # number of API calls sent (benchmarks and tests read it)
        # urllib3 only retries connections that were never made (the request was not sent); answers are
        # retried by _call, which knows whether the call is a read
        retry = Retry(total=retries, connect=retries, read=0, status=0, other=0, backoff_factor=0.2,
                      backoff_max=2.0, allowed_methods=None, raise_on_status=False,
                      respect_retry_after_header=False)
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
    def call(self, endpoint: str, _timeout: tuple[float, float] | None = None, _idempotent: bool | None = None,
             **fields: Any) -> dict:
        """Send one API call and return the response's ``data``.

        A read answered 429/502/503/504 is sent again (``retries`` times, waiting what ``Retry-After``
        asks, bounded by ``retry_after_max_seconds``, else a short backoff). A call that changes data is
        never sent again after an answer: the error says it may or may not have taken effect.

        Args:
            endpoint: ``service.action``, e.g. ``tasks.get_all``.
            _timeout: ``(connect, read)`` seconds for this call instead of the client's.
            _idempotent: Whether sending the call twice is harmless; default: only reads
                (``get*`` actions and the event iterators).
            **fields: The request body, with the real server's field names.

        Raises:
            ClearMLRequestError: The server answered with an error result (4xx, or 500).
            ClearMLConnectionError: The server could not be reached or kept answering 429/502/503/504.
        """
        idempotent = is_read_endpoint(endpoint) if _idempotent is None else _idempotent
        return self._call(endpoint, fields, timeout=_timeout, retries=self._retries if idempotent else 0)

    def _call(self, endpoint: str, fields: dict | None, timeout: tuple[float, float] | None = None,
              http: requests.Session | None = None, token: str | None = None, retries: int = 0,
              lines: bytes | None = None) -> dict:
        url = f"{self.api_host}/v{API_VERSION}/{endpoint}"
        renewed = busy = 0
        while True:
            bearer = token or self._bearer(refresh=renewed > 0)
            headers = {"Authorization": f"Bearer {bearer}"}
            if lines is not None:  # events.add_batch: one JSON event per line, as the SDK sends it
                headers["Content-Type"] = "application/json-lines"
            self.calls += 1
            try:
                resp = (http or self._http).post(url, json=fields if lines is None else None, data=lines,
                                                 timeout=timeout or self._timeout, headers=headers)
            except requests.RequestException as exc:
                raise self._unreachable(exc) from None
            payload = _json(resp)
            code = _result_code(payload) or resp.status_code
            if code == 401 and renewed == 0 and token is None:
                renewed += 1  # token expired or server restarted with a new signing key: log in again
                continue
            if code == 200 and isinstance(payload, dict):
                return payload.get("data") or {}
            status = resp.status_code if resp.status_code in RETRY_STATUSES else code
            if status in RETRY_STATUSES or (payload is None and resp.status_code >= 500):
                wait = self._retry_wait(resp, busy)
                if busy < retries and status in RETRY_STATUSES and wait is not None:
                    busy += 1
                    time.sleep(wait)
                    continue
                raise self._server_error(resp.status_code, _result_msg(payload), endpoint=endpoint, retried=busy,
                                         read=retries > 0 or is_read_endpoint(endpoint), wait=_retry_after(resp))
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

    def _retry_wait(self, resp: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before sending a read again: ``Retry-After`` if given, else a short backoff;
        None when the server asks for longer than ``retry_after_max_seconds``."""
        asked = _retry_after(resp)
        if asked is None:
            return min(0.2 * 2 ** attempt, 2.0)
        return asked if asked <= self.retry_after_max_seconds else None

    def iter_pages(self, endpoint: str, result_key: str, page_size: int = MAX_PAGE_SIZE, **fields: Any
                   ) -> Iterator[dict]:
        """Yield every row of a paged ``get_all`` endpoint.

        The page size is clamped to the real server's cap (500: it cuts larger pages silently), and
        paging stops on an empty page or when the answer's ``total`` is reached, never on a short page
        (a server may cap pages below the size asked for).

        Raises:
            ClearMLRequestError: The server answered the same rows for the next page (it ignores
                ``page``), which would otherwise never end.
        """
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        page, seen, previous = 0, 0, None
        while True:
            data = self.call(endpoint, page=page, page_size=page_size, **fields)
            rows = data.get(result_key) or []
            if not rows:
                return
            ids = [row.get("id") for row in rows if isinstance(row, dict)]
            if None in ids:
                ids = []  # rows without ids cannot be told apart: no repeat check
            if previous is not None and ids and ids == previous:
                raise ClearMLRequestError(
                    f"ClearML account '{self.account}': {endpoint} answered page {page} with the same rows as "
                    f"page {page - 1}; the server ignores paging, so not every row can be read.",
                    metadata={"endpoint": endpoint, "page": page})
            yield from rows
            seen += len(rows)
            total = data.get("total")
            if isinstance(total, int) and seen >= total:
                return
            previous, page = ids, page + 1

    # -- projects ----------------------------------------------------------------------------------
    def get_project(self, project_id: str) -> Project:
        """One project by id.

        Raises:
            ClearMLRequestError: No such project (the server's 400/101).
        """
        return Project.from_api(self.call("projects.get_by_id", project=project_id)["project"])

    def find_project(self, name: str, *, search_hidden: bool = False) -> Project | None:
        """The project named exactly ``name`` (full path, ``parent/child``), or None.

        Args:
            name: The project's full name.
            search_hidden: Also find hidden projects (a dataset's ``<project>/.datasets/<name>``).
        """
        for project in self.find_projects([name], search_hidden=search_hidden):
            if project.name == name:
                return project
        return None

    def find_projects(self, names: Sequence[str], *, include_subprojects: bool = False,
                      search_hidden: bool = False, only_fields: Sequence[str] = ("id", "name"),
                      include_public: bool = False) -> list[Project]:
        """The projects named exactly one of ``names`` (and their subprojects), in one paged query."""
        if not names:
            return []
        suffix = "(?:/.*)?" if include_subprojects else ""
        pattern = f"^(?:{'|'.join(re.escape(n) for n in names)}){suffix}$"
        fields: dict[str, Any] = {"name": pattern, "order_by": ["name"]}
        if search_hidden:
            fields["search_hidden"] = True
        return list(self._listing("projects", Project, only_fields, include_public, MAX_PAGE_SIZE, fields))

    def iter_projects(self, *, only_fields: Sequence[str] = ("id", "name"), include_public: bool = False,
                      **filters: Any) -> Iterator[Project]:
        """Every project matching ``filters`` (``projects.get_all`` field names), paged to the end; the
        public rows every company sees (ClearML's examples, ``company: ""``) only with ``include_public``."""
        filters.setdefault("order_by", ["id"])
        return self._listing("projects", Project, only_fields, include_public, MAX_PAGE_SIZE, filters)

    def _listing(self, service: str, record: Any, only_fields: Sequence[str] | None, include_public: bool,
                 page_size: int, filters: dict[str, Any]) -> Iterator[Any]:
        """Records of ``<service>.get_all`` paged to the end, public rows left out unless asked for.

        The real server's ``get_all`` always adds the public company's rows (``company: ""``); they are
        not the account's own, so listings drop them (an id asked for by the caller is kept).
        """
        if only_fields is not None:
            wanted = list(only_fields)
            filters["only_fields"] = wanted if include_public or "company" in wanted else [*wanted, "company"]
        for row in self.iter_pages(f"{service}.get_all", service, page_size=page_size, **filters):
            if include_public or row.get("company") != "" or "id" in filters:
                yield record.from_api(row)

    def create_project(self, name: str, description: str = "") -> str:
        """Create a project and return its id (never sent twice: see :meth:`call`)."""
        return self.call("projects.create", name=name, description=description)["id"]

    def find_or_create_project(self, name: str, description: str = "") -> str:
        """The id of the project named exactly ``name`` (hidden ones included), created if missing."""
        found = self.find_project(name, search_hidden=True)
        return found.id if found else self.create_project(name, description)

    # -- tasks -------------------------------------------------------------------------------------
    def get_task(self, task_id: str) -> Task:
        """One task by id, every field (``Task.raw`` holds the whole row).

        Raises:
            ClearMLRequestError: No such task (the server's 400/101).
        """
        return Task.from_api(self.call("tasks.get_by_id", task=task_id)["task"])

    def get_tasks(self, ids: Sequence[str], *, only_fields: Sequence[str] | None = None,
                  search_hidden: bool = True) -> list[Task]:
        """The tasks of ``ids`` that exist (hidden ones included by default: dataset versions are hidden)."""
        if not ids:
            return []
        return list(self.iter_tasks(id=list(ids), only_fields=only_fields, search_hidden=search_hidden))

    def iter_tasks(self, *, only_fields: Sequence[str] | None = None, page_size: int = MAX_PAGE_SIZE,
                   include_public: bool = False, **filters: Any) -> Iterator[Task]:
        """Every task matching ``filters`` (``tasks.get_all`` field names: ``project``, ``status``,
        ``type``, ``system_tags``, ``order_by``, ``search_hidden``, ...), paged to the end; public rows
        (``company: ""``) only with ``include_public`` or when asked for by ``id``."""
        return self._listing("tasks", Task, only_fields, include_public, page_size, filters)

    def tasks_page(self, page: int, page_size: int, *, read_timeout: float | None = None, **filters: Any
                   ) -> list[Task]:
        """One page of ``tasks.get_all`` (for keyset polling that moves its own bound between pages).

        The page size is clamped to the real server's cap of 500. Public rows are kept (``Task.public``
        tells them), so a page the caller filters still says where the next page starts.
        """
        timeout = (self._timeout[0], read_timeout) if read_timeout else None
        if "only_fields" in filters and "company" not in filters["only_fields"]:
            filters["only_fields"] = [*filters["only_fields"], "company"]
        rows = self.call("tasks.get_all", _timeout=timeout, page=page,
                         page_size=max(1, min(page_size, MAX_PAGE_SIZE)), **filters).get("tasks") or []
        return [Task.from_api(row) for row in rows]

    def mark_task_failed(self, task_id: str, reason: str, message: str = "") -> None:
        """Set a task's status to failed (forced), with ``reason`` (cut to the server's 900 characters)."""
        self.call("tasks.failed", task=task_id, force=True, status_reason=reason[:900],
                  status_message=message or "failed")

    def delete_task(self, task_id: str, *, force: bool = True) -> None:
        """Delete a task (a draft or a failed one; ``force`` also deletes a non-draft)."""
        self.call("tasks.delete", task=task_id, force=force)

    def create_task(self, name: str, project_id: str, task_type: str = "training", **fields: Any) -> str:
        """Create a task (draft) and return its id (never sent twice)."""
        return self.call("tasks.create", name=name, type=task_type, project=project_id, **fields)["id"]

    def get_task_status(self, task_id: str) -> Task:
        """A task's status fields (status, reason, message, last worker, ``execution`` for its queue).

        Raises:
            ClearMLRequestError: No such task on this account.
        """
        fields = ["id", "status", "status_reason", "status_message", "execution", "last_worker", "last_update",
                  "last_worker_report", "project"]
        for task in self.get_tasks([task_id], only_fields=fields):
            return task
        raise ClearMLRequestError(f"ClearML account '{self.account}': task {task_id} was not found.",
                                  metadata={"task_id": task_id})

    def mark_task_started(self, task_id: str, *, force: bool = False) -> None:
        """Set a task's status to in_progress."""
        self.call("tasks.started", task=task_id, force=force)

    def mark_task_completed(self, task_id: str, *, force: bool = False, reason: str = "") -> None:
        """Set a task's status to completed."""
        self.call("tasks.completed", task=task_id, force=force, **({"status_reason": reason[:900]} if reason else {}))

    def mark_task_stopped(self, task_id: str, reason: str = "", *, force: bool = True) -> None:
        """Set a task's status to stopped (``tasks.stopped``: no agent involved)."""
        self.call("tasks.stopped", task=task_id, force=force, status_reason=reason[:900])

    def stop_task(self, task_id: str, reason: str = "", *, force: bool = True) -> None:
        """Ask the agent running a task to stop it (``tasks.stop``)."""
        self.call("tasks.stop", task=task_id, force=force, status_reason=reason[:900])

    def enqueue_task(self, task_id: str, queue_id: str, reason: str = "") -> None:
        """Put a task in a queue for an agent (never sent twice: a second enqueue would fail or requeue)."""
        self.call("tasks.enqueue", task=task_id, queue=queue_id, status_reason=reason[:900])

    def dequeue_task(self, task_id: str, reason: str = "") -> None:
        """Take a queued task out of its queue."""
        self.call("tasks.dequeue", task=task_id, status_reason=reason[:900])

    def task_log_page(self, task_id: str, *, from_timestamp: int = 0, batch_size: int = 5000) -> list[dict]:
        """Log events of a task from ``from_timestamp`` (ms) on, oldest first, one page
        (``events.get_task_log``)."""
        return self.call("events.get_task_log", task=task_id, navigate_earlier=False, from_timestamp=from_timestamp,
                         batch_size=batch_size, order="asc").get("events") or []

    def add_log(self, task_id: str, text: str, *, worker: str = "", level: str = "info",
                timestamp_ms: int | None = None) -> None:
        """Report one console log line of a task (as an agent does for a script's output)."""
        self.add_events([{"type": "log", "task": task_id, "level": level, "worker": worker, "msg": text,
                          "timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms}])

    # -- queues and workers ------------------------------------------------------------------------
    def find_queue(self, name: str) -> Queue | None:
        """The queue named exactly ``name``, or None."""
        rows = self.call("queues.get_all", name=f"^{re.escape(name)}$", only_fields=["id", "name"],
                         search_hidden=True).get("queues") or []
        return next((Queue.from_api(q) for q in rows if q.get("name") == name), None)

    def live_workers(self) -> list[Worker]:
        """Every registered (not expired) worker with the queues it serves."""
        return [Worker.from_api(w) for w in self.call("workers.get_all").get("workers") or []]

    def add_task_artifacts(self, task_id: str, artifacts: Sequence[Mapping[str, Any]], *, force: bool = True
                           ) -> None:
        """Add or replace artifacts of a task (by key and mode); the same artifacts twice change nothing."""
        self.call("tasks.add_or_update_artifacts", _idempotent=True, task=task_id,
                  artifacts=[dict(a) for a in artifacts], force=force)

    def add_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Report events (``events.add_batch``, JSON lines as the SDK sends them; never sent twice: a
        repeated batch would duplicate its events).

        Raises:
            ClearMLRequestError: The server refused the batch (its message names the bad event).
        """
        body = b"\n".join(orjson.dumps(event) for event in events)
        self._call("events.add_batch", None, lines=body, timeout=(self._timeout[0], max(self._timeout[1], 300.0)))

    # -- models ------------------------------------------------------------------------------------
    def iter_models(self, *, only_fields: Sequence[str] | None = None, page_size: int = MAX_PAGE_SIZE,
                    include_public: bool = False, **filters: Any) -> Iterator[Model]:
        """Every model matching ``filters`` (``models.get_all`` field names: ``id``, ``task``,
        ``project``, ``tags``, ``order_by``, ...), paged to the end; public rows (``company: ""``) only
        with ``include_public`` or when asked for by ``id``."""
        return self._listing("models", Model, only_fields, include_public, page_size, filters)

    def get_model(self, model_id: str, *, only_fields: Sequence[str] | None = None) -> Model:
        """One model by id.

        Raises:
            ClearMLRequestError: No such model on this account.
        """
        for model in self.iter_models(id=[model_id], only_fields=only_fields):
            return model
        raise ClearMLRequestError(f"ClearML account '{self.account}': model {model_id} was not found.",
                                  metadata={"model_id": model_id})

    def set_model_tags(self, model_id: str, tags: Sequence[str]) -> None:
        """Replace a model's tags (setting the same tags twice is harmless, so it is retried as a read)."""
        self.call("models.update", _idempotent=True, model=model_id, tags=list(tags))

    def delete_model(self, model_id: str, *, force: bool = True) -> None:
        """Delete a model record (``force``: even if a task still uses it)."""
        self.call("models.delete", model=model_id, force=force)

    # -- files -------------------------------------------------------------------------------------
    def is_own_file_url(self, url: str) -> bool:
        """Whether ``url`` is on this account's fileserver or one of its aliases (scheme, host and port
        equal, under its path, no ``..`` even percent-encoded, no credentials of its own)."""
        return self.own_file_url(url) is not None

    def own_file_url(self, url: str) -> str | None:
        """``url`` on the account's files host (an alias spelling rewritten onto it), or None if it is not
        a file of this account's fileserver (then no ClearML token may be sent with it)."""
        if not self.files_host:
            return None
        for host in (self.files_host, *self.files_host_aliases):
            rest = _under(host, url)
            if rest is not None:
                return self.files_host + rest
        return None

    def storage_options_for(self, url: str) -> dict[str, Any]:
        """The fsspec options of the longest ``storage_options`` prefix ``url`` starts with ({} if none)."""
        matches = [p for p in self.storage_options if url.startswith(p)]
        return dict(self.storage_options[max(matches, key=len)]) if matches else {}

    def download(self, url: str, dest: Path, chunk_size: int = 1024 * 1024, _renewed: bool = False, *,
                 digest: Any = None, _busy: int = 0) -> int:
        """Stream a fileserver URL to ``dest`` (written to a temporary name, renamed when whole).

        Args:
            url: A URL on this account's fileserver.
            dest: Where the file goes.
            chunk_size: Bytes per read.
            digest: A ``hashlib`` object updated with the bytes as they are written (one pass over the
                data instead of hashing the file again afterwards).

        A fileserver answering 429/502/503/504 is asked again (``retries`` times, honouring ``Retry-After``).

        Returns:
            The number of bytes written.

        Raises:
            ClearMLRequestError: The URL is not on this account's fileserver, the file is missing (404),
                or fewer bytes arrived than ``Content-Length`` announced.
            ClearMLConnectionError: The fileserver could not be reached.
        """
        own = self.own_file_url(url)
        if own is None:
            shown = redact_url_credentials(url)  # a password in the URL goes into no message or metadata
            raise ClearMLRequestError(
                f"ClearML account '{self.account}': refusing to download {shown!r}: it is not on the "
                f"account's fileserver {self.files_host}.", metadata={"url": shown})
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.get(own, stream=True, timeout=self._timeout,
                                headers={"Authorization": f"Bearer {self._bearer()}"}) as resp:
                if resp.status_code == 401 and not _renewed:
                    resp.close()
                    self._bearer(refresh=True)  # token expired or server restarted: once more, logged in again
                    return self.download(url, dest, chunk_size, _renewed=True, digest=digest, _busy=_busy)
                wait = self._retry_wait(resp, _busy) if resp.status_code in RETRY_STATUSES else None
                if wait is not None and _busy < self._retries:
                    resp.close()  # nothing of this answer was written: a fresh attempt starts from byte 0
                    time.sleep(wait)
                    return self.download(url, dest, chunk_size, _renewed=_renewed, digest=digest, _busy=_busy + 1)
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

    def _server_error(self, status: int, msg: str | None, *, endpoint: str = "", retried: int = 0,
                      read: bool = True, wait: float | None = None) -> ClearMLConnectionError:
        what = f"{endpoint} to " if endpoint else ""
        if status == 429:
            head = f"{what}{self.api_host} answered HTTP 429 (too many requests)"
        else:
            head = f"{what}{self.api_host} answered HTTP {status}{f' ({msg})' if msg else ''}"
        if wait is not None and wait > self.retry_after_max_seconds:
            tail = (f" and asked to wait {wait:.0f}s, longer than the {self.retry_after_max_seconds:.0f}s this "
                    "client waits; try again later.")
        elif not read:
            tail = (": the server is unavailable or overloaded. This call changes data, so it was not sent "
                    "again; it may or may not have taken effect: check in ClearML before running again.")
        else:
            tail = (f"{f' {retried + 1} times' if retried else ''}: the server is unavailable or overloaded. "
                    "Try again later or check the server's health.")
        error = ClearMLConnectionError(f"ClearML account '{self.account}': {head}{tail}",
                                       metadata={"endpoint": endpoint, "http_status": status, "retried": retried})
        error.retryable = status in RETRY_STATUSES
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

    def task_log_events_page(self, task_id: str, *, batch_size: int, from_timestamp: int | None = None) -> dict:
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

    def create_task_from_fields(self, **fields: Any) -> str:
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

    def delete_task_and_outputs(self, task_id: str) -> None:
        """``tasks.delete`` with ``force`` (its events and output models go with it)."""
        self.call("tasks.delete", task=task_id, force=True, delete_output_models=True, return_file_urls=False)

    def add_events_counted(self, events: list[dict]) -> dict:
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


def _under(host: str, url: str) -> str | None:
    """The part of ``url`` after ``host`` (path, query), or None if ``url`` is not a safe URL under it."""
    try:
        own, other = urlsplit(host), urlsplit(url)
        other_port, own_port = other.port, own.port
    except ValueError:  # e.g. a port that is not a number
        return None
    path = unquote(other.path)
    base = own.path.rstrip("/")
    same = (other.scheme, other.hostname, other_port) == (own.scheme, own.hostname, own_port)
    if not same or other.scheme not in ("http", "https") or other.username or other.password \
            or "\0" in path or ".." in path.replace("\\", "/").split("/") or not path.startswith(base + "/"):
        return None
    if not other.path.startswith(base + "/"):
        return None
    return other.path[len(base):] + (f"?{other.query}" if other.query else "")


def is_read_endpoint(endpoint: str) -> bool:
    """Whether ``service.action`` only reads (safe to send again after a 429/5xx answer)."""
    action = endpoint.rpartition(".")[2]
    return action.startswith("get") or action in _READ_ACTIONS


def _retry_after(resp: requests.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None if absent or unreadable."""
    value = (resp.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


def derive_web_host(api_host: str) -> str | None:
    """The web app host the ClearML SDK derives from an API host (``Session.get_app_server_host``).

    ``https://api.clear.ml`` -> ``https://app.clear.ml``, ``https://api.<domain>`` -> ``https://app.<domain>``,
    ``http://<host>:8008`` -> ``http://<host>:8080``; None when the SDK could not derive one either.
    """
    host = api_host.rstrip("/")
    if host == SAAS_API_HOST:
        return SAAS_WEB_HOST
    if "://demoapi." in host:
        return host.replace("://demoapi.", "://demoapp.", 1)
    if "://api." in host:
        return host.replace("://api.", "://app.", 1)
    try:
        port = urlsplit(host).port
    except ValueError:
        return None
    return host.replace(":8008", ":8080", 1) if port == 8008 else None


def derive_files_host(api_host: str, web_host: str | None = None) -> str | None:
    """The files host the ClearML SDK derives when none is configured (``Session.get_files_server_host``).

    From the web host (given, or derived from the API host): its port becomes 8081, ``app.`` becomes
    ``files.`` (``demoapp.`` -> ``demofiles.``), else ``:8081`` is appended; SaaS is ``https://files.clear.ml``.
    None when no web host can be derived (the SDK fails there too).
    """
    if api_host.rstrip("/") == SAAS_API_HOST:
        return SAAS_FILES_HOST
    app = (web_host or derive_web_host(api_host) or "").rstrip("/")
    if not app:
        return None
    parts = urlsplit(app)
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = parts.netloc
    if port:
        netloc = netloc.replace(f":{port}", ":8081", 1)
    elif netloc.startswith("demoapp."):
        netloc = netloc.replace("demoapp.", "demofiles.", 1)
    elif netloc.startswith("app."):
        netloc = netloc.replace("app.", "files.", 1)
    else:
        netloc += ":8081"
    return urlunsplit(parts._replace(netloc=netloc))


def loopback_aliases(files_host: str | None) -> tuple[str, ...]:
    """The other loopback spellings of a loopback files host (``localhost`` for ``127.0.0.1``, ...).

    The SDK stores URIs under the files host it was configured with, so one local server's files carry
    whichever spelling each script used. The resource accepts them for its accounts; the client alone
    compares hosts exactly.
    """
    if not files_host:
        return ()
    parts = urlsplit(files_host.rstrip("/"))
    if parts.hostname not in _LOOPBACK:
        return ()
    port = f":{parts.port}" if parts.port else ""
    spelled = [urlunsplit(parts._replace(netloc=f"[{name}]{port}" if ":" in name else f"{name}{port}"))
               for name in _LOOPBACK if name != parts.hostname]
    return tuple(spelled)


def _aliases(files_host: str | None, configured: Sequence[str]) -> tuple[str, ...]:
    """Configured aliases plus, for ClearML SaaS, the fileserver's former name the SDK still accepts."""
    found = [a.strip().rstrip("/") for a in configured if a and a.strip()]
    if files_host == SAAS_FILES_HOST:
        found.extend(SAAS_LEGACY_FILES_HOSTS)
    return tuple(dict.fromkeys(a for a in found if a != files_host))
