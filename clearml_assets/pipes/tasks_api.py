"""The task, queue and worker operations the Pipes client needs, over one account's ``ClearMLClient``
(its typed methods: endpoint names stay in the client layer)."""

from __future__ import annotations

from typing import Any, Mapping


class TaskControl:
    """Create, enqueue, follow and stop ClearML tasks; list live workers of a queue.

    Args:
        client: A ``ClearMLClient`` of one account.
    """

    def __init__(self, client: Any):
        self.client = client

    # -- tasks -----------------------------------------------------------------------------------
    def project_id(self, name: str) -> str:
        """Id of the project named exactly ``name``, created if missing."""
        return self.client.projects.ensure(name)

    def create_task(self, *, name: str, project_id: str, task_type: str, tags: list[str],
                    script: Mapping[str, Any], params: Mapping[str, Mapping[str, str]]) -> str:
        """A new task in status ``created`` with ``script`` and hyperparameters ``params[section][name]``."""
        hyperparams = {section: {key: {"section": section, "name": key, "value": value, "type": "str"}
                                 for key, value in values.items()} for section, values in params.items()}
        extra = {"output_dest": self.client.files_host} if self.client.files_host else {}
        return self.client.tasks.create(name, project_id, task_type, tags=tags, script=dict(script),
                                        hyperparams=hyperparams, system_tags=[], **extra)

    def get(self, task_id: str) -> dict:
        """The task's status fields and execution (the API row)."""
        return dict(self.client.tasks.get_status(task_id).raw)

    def started(self, task_id: str) -> None:
        self.client.tasks.set_status(task_id, "in_progress", force=False)

    def completed(self, task_id: str) -> None:
        self.client.tasks.set_status(task_id, "completed", reason="script exited 0")

    def failed(self, task_id: str, reason: str, message: str = "failed") -> None:
        """Mark failed with ``reason`` (also when it already is: the reason is replaced by the better one)."""
        self.client.tasks.set_status(task_id, "failed", reason=reason, message=message)

    def enqueue(self, task_id: str, queue_id: str) -> None:
        self.client.tasks.enqueue(task_id, queue_id, "Dagster run")

    def dequeue(self, task_id: str, reason: str) -> None:
        self.client.tasks.dequeue(task_id, reason)

    def stop(self, task_id: str, reason: str) -> None:
        """Ask the agent to stop a running task (``tasks.stop``), or force it ``stopped`` where that is missing.

        Either way the agent sees the change on its next status check and kills the script.
        """
        try:
            self.client.tasks.stop(task_id, reason)
        except Exception:  # noqa: BLE001 - a server without tasks.stop
            self.client.tasks.set_status(task_id, "stopped", reason=reason)

    # -- log -------------------------------------------------------------------------------------
    def log_events(self, task_id: str, since_ms: int = 0, batch: int = 5000) -> list[dict]:
        """Log events from ``since_ms`` on, oldest first (every page, until one brings nothing new)."""
        out: list[dict] = []
        since, seen = since_ms, 0
        while True:
            page = self.client.events.task_log_page(task_id, from_timestamp=since, batch_size=batch).get("events") or []
            out.extend(page)
            newest = max((int(e.get("timestamp") or 0) for e in page), default=since)
            if len(page) < batch or newest <= since or len(out) == seen:
                return out
            since, seen = newest, len(out)

    def add_log(self, task_id: str, text: str, worker: str) -> None:
        """One console log event (what the agent sends for a script's output)."""
        self.client.events.add_log(task_id, text, worker=worker)

    # -- queues and workers ----------------------------------------------------------------------
    def queue_id(self, name: str) -> str | None:
        """Id of the queue named exactly ``name``."""
        queue = self.client.queues.find(name)
        return queue.id if queue else None

    def live_workers(self, queue_id: str) -> list[str]:
        """Ids of the registered (not expired) workers serving ``queue_id``."""
        return [w.id for w in self.client.workers.live() if queue_id in w.queues]

    def live_worker_ids(self) -> set[str]:
        """Ids of every registered worker."""
        return {w.id for w in self.client.workers.live()}
