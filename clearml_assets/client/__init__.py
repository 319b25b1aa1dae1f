"""The project's own ClearML REST client: one session per account and one small typed client per service.

Shaped like clearml's ``backend_api`` ``APIClient``::

    client = ClearMLClient("http://127.0.0.1:8008", key, secret, account="personal")
    client.session.check()                      # login, one cheap call, a clear error within 10 s
    task = client.tasks.get(task_id)            # a typed record (types.Task; .raw holds the document)
    page = client.events.task_log_page(task_id, batch_size=5000)
    client.files.download(url, dest)            # the account's own fileserver only

Endpoint names (``"tasks.get_all"``...) appear in this package only (and in the local server).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .events import EventsClient
from .files import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MIN_BYTES_PER_SECOND, FilesClient
from .models import ModelsClient
from .paging import MAX_PAGE_SIZE
from .projects import ProjectsClient
from .queues import QueuesClient, WorkersClient
from .reports import ReportsClient
from .session import (
    API_VERSION,
    CHECK_DEADLINE_SEC,
    DEFAULT_DEADLINE_SEC,
    DEFAULT_MAX_RESPONSE_BYTES,
    ClearMLSession,
    is_read_endpoint,
)
from .tasks import TasksClient
from .urls import derive_files_host, derive_web_host, loopback_aliases, redact_url_credentials, web_url


class ClearMLClient:
    """A thread-safe client of one ClearML account: ``session`` and a client per service.

    Args:
        api_host: API server URL, e.g. ``https://api.clear.ml`` or ``http://127.0.0.1:8008``.
        access_key: The account's access key.
        secret_key: The account's secret key (never logged or put in an error).
        files_host_aliases: Other spellings of the files host (see :class:`FilesClient`).
        storage_options: fsspec options per URL prefix (see :class:`FilesClient`).
        max_download_bytes: The largest download without a declared ``Content-Length``.
        **session_options: :class:`ClearMLSession` options (``account``, ``files_host``, ``web_host``,
            ``connect_timeout``, ``read_timeout``, ``deadline_seconds``, ``retries``, ``max_connections``,
            ``retry_after_max_seconds``, ``max_response_bytes``).
    """

    def __init__(self, api_host: str, access_key: str, secret_key: str, *, files_host_aliases: Sequence[str] = (),
                 storage_options: Mapping[str, Mapping[str, Any]] | None = None,
                 max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES, **session_options: Any):
        session = ClearMLSession(api_host, access_key, secret_key, **session_options)
        self._attach(session, FilesClient(session, aliases=files_host_aliases, storage_options=storage_options,
                                          max_download_bytes=max_download_bytes))

    @classmethod
    def of(cls, session: ClearMLSession, files: FilesClient | None = None) -> "ClearMLClient":
        """The client of an existing session (e.g. one a test wraps)."""
        client = cls.__new__(cls)
        client._attach(session, files or FilesClient(session))
        return client

    def _attach(self, session: ClearMLSession, files: FilesClient) -> None:
        self.session = session
        self.tasks = TasksClient(session)
        self.projects = ProjectsClient(session)
        self.events = EventsClient(session)
        self.models = ModelsClient(session)
        self.queues = QueuesClient(session)
        self.workers = WorkersClient(session)
        self.reports = ReportsClient(session)
        self.files = files

    def __repr__(self) -> str:
        return f"ClearMLClient(account={self.account!r}, api_host={self.api_host!r})"

    @property
    def account(self) -> str:
        """The account's name (in messages)."""
        return self.session.account

    @property
    def api_host(self) -> str:
        """The account's API server."""
        return self.session.api_host

    @property
    def web_host(self) -> str:
        """The account's web app (links)."""
        return self.session.web_host

    @property
    def files_host(self) -> str | None:
        """The account's fileserver (None when it has none)."""
        return self.session.files_host

    @property
    def calls(self) -> int:
        """API calls sent so far (benchmarks and tests read it)."""
        return self.session.calls

    def web_url(self, kind: str, obj_id: str, project_id: str | None = None) -> str:
        """A page of the account's ClearML web app: ``task``, ``project``, ``dataset`` or ``model``."""
        return web_url(self.web_host, kind, obj_id, project_id)


__all__ = [
    "API_VERSION", "CHECK_DEADLINE_SEC", "DEFAULT_DEADLINE_SEC", "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_MIN_BYTES_PER_SECOND", "MAX_PAGE_SIZE", "ClearMLClient", "ClearMLSession",
    "EventsClient", "FilesClient", "ModelsClient", "ProjectsClient", "QueuesClient", "ReportsClient", "TasksClient",
    "WorkersClient", "derive_files_host", "derive_web_host", "is_read_endpoint", "loopback_aliases",
    "redact_url_credentials",
]
