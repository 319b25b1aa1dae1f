"""``client.tasks``: the ``tasks.*`` calls, typed (:class:`~clearml_assets.types.Task` records)."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from ..errors import ClearMLRequestError
from ..types import Task
from .paging import MAX_PAGE_SIZE, listing
from .session import ServiceClient

#: ``set_status`` targets and the call that moves a task there.
_STATUS_CALLS = {"in_progress": "tasks.started", "stopped": "tasks.stopped", "failed": "tasks.failed",
                 "completed": "tasks.completed", "published": "tasks.publish", "closed": "tasks.close"}
#: The real server cuts status reasons longer than this.
_REASON_MAX = 900
_STATUS_FIELDS = ["id", "status", "status_reason", "status_message", "execution", "last_worker", "last_update",
                  "last_worker_report", "project"]


class TasksClient(ServiceClient):
    """Tasks of one account (a dataset version is a task too)."""

    # -- reads -------------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task:
        """One task by id, every field (``Task.raw`` holds the whole document).

        Raises:
            ClearMLRequestError: No such task (the server's 400/101).
        """
        return Task.from_api(self._session.call("tasks.get_by_id", task=task_id)["task"])

    def get_many(self, ids: Sequence[str], *, only_fields: Sequence[str] | None = None,
                 search_hidden: bool = True) -> list[Task]:
        """The tasks of ``ids`` that exist (hidden ones included by default: dataset versions are hidden)."""
        if not ids:
            return []
        return list(self.iter(id=list(ids), only_fields=only_fields, search_hidden=search_hidden))

    def iter(self, *, only_fields: Sequence[str] | None = None, page_size: int = MAX_PAGE_SIZE,
             include_public: bool = False, **filters: Any) -> Iterator[Task]:
        """Every task matching ``filters`` (``tasks.get_all`` field names: ``project``, ``status``,
        ``type``, ``system_tags``, ``order_by``, ``search_hidden``, ...), paged to the end; public rows
        (``company: ""``) only with ``include_public`` or when asked for by ``id``."""
        return listing(self._session, "tasks", Task, only_fields, include_public, page_size, filters)

    def page(self, page: int, page_size: int, *, read_timeout: float | None = None, **filters: Any) -> list[Task]:
        """One page of ``tasks.get_all`` (for keyset polling that moves its own bound between pages).

        The page size is clamped to the real server's cap of 500. Public rows are kept (``Task.public``
        tells them), so a page the caller filters still says where the next page starts. ``read_timeout``
        bounds the whole call (instead of the session's deadline).
        """
        if "only_fields" in filters and "company" not in filters["only_fields"]:
            filters["only_fields"] = [*filters["only_fields"], "company"]
        rows = self._session.call("tasks.get_all", _deadline=read_timeout, page=page,
                                  page_size=max(1, min(page_size, MAX_PAGE_SIZE)), **filters).get("tasks") or []
        return [Task.from_api(row) for row in rows]

    def get_status(self, task_id: str) -> Task:
        """A task's status fields (status, reason, message, last worker, ``execution`` for its queue).

        Raises:
            ClearMLRequestError: No such task on this account.
        """
        for task in self.get_many([task_id], only_fields=_STATUS_FIELDS):
            return task
        raise ClearMLRequestError(f"ClearML account '{self._session.account}': task {task_id} was not found.",
                                  metadata={"task_id": task_id})

    def find_by_system_tag(self, system_tag: str) -> list[dict]:
        """Every task (any status, hidden or archived too) carrying ``system_tag``, oldest first."""
        return list(self._session.iter_pages(
            "tasks.get_all", "tasks", system_tags=[system_tag], search_hidden=True, order_by=["created"],
            only_fields=["id", "name", "status", "system_tags", "runtime", "project", "created", "type"]))

    def find_by_tag(self, tag: str) -> list[dict]:
        """Every task (any status, hidden too, e.g. dataset versions) carrying the user tag ``tag``."""
        return list(self._session.iter_pages(
            "tasks.get_all", "tasks", tags=[tag], search_hidden=True, order_by=["created"],
            only_fields=["id", "name", "status", "tags", "system_tags", "runtime", "project"]))

    # -- writes ------------------------------------------------------------------------------------
    def create(self, name: str, project: str, type: str = "training", **fields: Any) -> str:  # noqa: A002
        """Create a task (status ``created``) and return its id (never sent twice).

        Args:
            name: Task name.
            project: Project id.
            type: Task type (``training``, ``data_processing``, ...).
            **fields: Other ``tasks.create`` fields (``script``, ``hyperparams``, ``tags``, ...).
        """
        return self._session.call("tasks.create", name=name, type=type, project=project, **fields)["id"]

    def edit(self, task_id: str, **fields: Any) -> None:
        """``tasks.edit`` with ``force`` (created or in_progress tasks)."""
        self._session.call("tasks.edit", task=task_id, force=True, **fields)

    def update(self, task_id: str, **fields: Any) -> None:
        """``tasks.update``: name, comment, tags, system_tags (any status)."""
        self._session.call("tasks.update", task=task_id, **fields)

    def set_status(self, task_id: str, status: str, *, message: str = "", reason: str = "",
                   force: bool = True) -> None:
        """Move a task to ``status`` (``in_progress``, ``stopped``, ``failed``, ``completed``, ``published``,
        ``closed``); ``force`` skips the real server's state machine. ``reason`` is cut to the server's 900
        characters."""
        self._session.call(_STATUS_CALLS[status], task=task_id, force=force, status_message=message,
                           status_reason=reason[:_REASON_MAX])

    def stop(self, task_id: str, reason: str = "", *, force: bool = True) -> None:
        """Ask the agent running a task to stop it (``tasks.stop``)."""
        self._session.call("tasks.stop", task=task_id, force=force, status_reason=reason[:_REASON_MAX])

    def enqueue(self, task_id: str, queue_id: str, reason: str = "") -> None:
        """Put a task in a queue for an agent (never sent twice: a second enqueue would fail or requeue)."""
        self._session.call("tasks.enqueue", task=task_id, queue=queue_id, status_reason=reason[:_REASON_MAX])

    def dequeue(self, task_id: str, reason: str = "") -> None:
        """Take a queued task out of its queue."""
        self._session.call("tasks.dequeue", task=task_id, status_reason=reason[:_REASON_MAX])

    def reset(self, task_id: str) -> None:
        """``tasks.reset`` with ``force``: back to ``created``, events, metrics, runtime and output artifacts
        cleared, draft output models deleted (ready ones detached)."""
        self._session.call("tasks.reset", task=task_id, force=True, delete_output_models=True)

    def delete(self, task_id: str, *, force: bool = True, with_outputs: bool = False) -> None:
        """Delete a task (``force``: also a non-draft; ``with_outputs``: its output models go with it)."""
        extra = {"delete_output_models": True, "return_file_urls": False} if with_outputs else {}
        self._session.call("tasks.delete", task=task_id, force=force, **extra)

    def add_artifacts(self, task_id: str, artifacts: Sequence[Mapping[str, Any]], *, force: bool = True) -> None:
        """Add or replace artifacts of a task (by key and mode); the same artifacts twice change nothing,
        so the call is retried as a read."""
        self._session.call("tasks.add_or_update_artifacts", _idempotent=True, task=task_id,
                           artifacts=[dict(a) for a in artifacts], force=force)

    def add_model(self, task_id: str, name: str, model_id: str, kind: str) -> None:
        """``tasks.add_or_update_model``: attach a model as the task's ``input`` or ``output``."""
        self._session.call("tasks.add_or_update_model", task=task_id, name=name, model=model_id, type=kind)
