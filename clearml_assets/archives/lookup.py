"""Finding what to export: tasks, projects (cached names) and the folders they go to."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import ArchiveError, ClearMLRequestError
from .paths import task_export_dir
from .system_projects import ProjectChains, system_subprojects
from .task_writer import FINGERPRINT_FIELDS


class ArchiveLookup:
    """Reads tasks and projects of one account through the client's typed archive reads.

    Args:
        client: The account's ``ClearMLClient``.
        account: Account name (for messages and folders).
        root: Export root.
        page_size: ``get_all`` page size (clamped to the real server's 500 by the client).
        include_public: Also list rows of the public company (``company: ""``).
    """

    def __init__(self, client, account: str, root: Path, page_size: int = 500, include_public: bool = False):
        self.client, self.account, self.root = client, account, root
        self.page_size, self.include_public = page_size, include_public
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self.chains = ProjectChains(client)

    def get_task(self, task_id: str) -> dict[str, Any]:
        """The full task document; :class:`ArchiveError` if it does not exist or cannot be read."""
        try:
            return self.client.tasks.get(task_id).raw
        except ClearMLRequestError as exc:  # the server failed (not 400): the task may well exist
            _raise_unless_missing(exc, f"task {task_id!r} could not be read from ClearML account {self.account!r} "
                                       f"({exc}); nothing was published, try again")
            raise ArchiveError(f"task {task_id!r} was not found on ClearML account {self.account!r} "
                               f"({exc}); check the id or remove this partition") from exc

    def remember(self, project_id: str, name: str) -> None:
        with self._lock:
            self._names[project_id] = name

    def project_name(self, project_id: str | None) -> str:
        """The project's full name (``a/b/c`` for nested projects; cached); its id if unreadable."""
        if not project_id:
            return "(no project)"
        with self._lock:
            if project_id in self._names:
                return self._names[project_id]
        with self._fetching:  # the tasks of a batch start at once: one request for their project, not one each
            with self._lock:
                if project_id in self._names:
                    return self._names[project_id]
            try:
                name = self.client.projects.get(project_id).raw.get("name")
            except ClearMLRequestError as exc:  # a deleted project (400) keeps its id; a failed answer stops it
                _raise_unless_missing(exc, f"project {project_id!r} could not be read from ClearML account "
                                           f"{self.account!r} ({exc}); nothing was published, try again")
                name = None
            self.remember(project_id, name or project_id)
        return name or project_id

    def task_folder(self, task: dict[str, Any]) -> Path:
        """Where the task's export folder goes (nested projects as nested folders)."""
        return task_export_dir(self.root, self.account, self.project_name(task.get("project")),
                               str(task.get("name") or ""), str(task["id"]))

    def project_chain(self, project_id: str | None) -> list[dict[str, Any]]:
        """The project's ``[{"name", "system_tags"}]`` and its ancestors', root first (``[]`` without one)."""
        return self.chains.chain(self.project_name(project_id)) if project_id else []

    def resolve_project(self, key: str) -> dict[str, Any]:
        """The project whose id (or else exact name, hidden ones too) is ``key``."""
        try:
            return self.client.projects.get(key).raw
        except ClearMLRequestError as exc:  # the server failed, not "no such id": never guess "not found"
            _raise_unless_missing(exc, f"project {key!r} could not be read from ClearML account {self.account!r} "
                                       f"({exc}); nothing was published, try again")
        found = [p.raw for p in self.client.projects.find_many([key], include_public=self.include_public,
                                                               search_hidden=True)]
        if not found:
            raise ArchiveError(f"project {key!r} was not found on ClearML account {self.account!r}; "
                               "use a project id (or exact name) that exists")
        return found[0]

    def project_tasks(self, project_id: str, statuses: Iterable[str]) -> list[dict[str, Any]]:
        """Every task of the project with one of ``statuses`` (every page, public rows left out), hidden ones
        (reports) and those of its system projects (its pipelines' runs, datasets' versions, reports) too."""
        return list(self.iter_project_tasks(project_id, statuses))

    def iter_project_tasks(self, project_id: str, statuses: Iterable[str]) -> Iterator[dict[str, Any]]:
        """:meth:`project_tasks` a page at a time (a project of 20,000 tasks is never listed in memory whole)."""
        fields = ["id", "name", "project", *FINGERPRINT_FIELDS]
        projects = [project_id, *system_subprojects(self.client, self.project_name(project_id))]
        return (t.raw for t in self.client.tasks.iter(project=projects, status=list(statuses), only_fields=fields,
                                                      order_by=["created"], page_size=self.page_size,
                                                      include_public=self.include_public, search_hidden=True))


def _raise_unless_missing(exc: ClearMLRequestError, message: str) -> None:
    """An :class:`ArchiveError` with ``message`` unless the server answered 400 (no such id)."""
    code = exc.metadata.get("result_code")
    if getattr(code, "value", code) != 400:
        raise ArchiveError(message) from exc
