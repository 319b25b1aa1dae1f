"""Typed task, queue and worker operations the Pipes client needs, over one account's ``ClearMLClient``.

(Kept here until the client layer gains them: clientlayer request in /work/requests/clientlayer.md.)
"""

from __future__ import annotations

import re
import time
from typing import Any, Mapping



def find_or_create_project(client: Any, name: str) -> str:
    """Id of the project named exactly ``name``, created if missing."""
    projects = client.call("projects.get_all", name=f"^{re.escape(name)}$", only_fields=["id", "name"],
                           search_hidden=True).get("projects") or []
    found = next((p["id"] for p in projects if p.get("name") == name), None)
    return found or client.call("projects.create", name=name, description="")["id"]


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
        return find_or_create_project(self.client, name)

    def create_task(self, *, name: str, project_id: str, task_type: str, tags: list[str],
                    script: Mapping[str, Any], params: Mapping[str, Mapping[str, str]]) -> str:
        """A new task in status ``created`` with ``script`` and hyperparameters ``params[section][name]``."""
        hyperparams = {section: {key: {"section": section, "name": key, "value": value, "type": "str"}
                                 for key, value in values.items()} for section, values in params.items()}
        extra = {"output_dest": self.client.files_host} if self.client.files_host else {}
        return self.client.call("tasks.create", name=name, type=task_type, tags=tags, script=dict(script),
                                project=project_id, hyperparams=hyperparams,
                                system_tags=[], **extra)["id"]

    def get(self, task_id: str) -> dict:
        """The task's status fields and execution."""
        (doc,) = self.client.call("tasks.get_all", id=[task_id], only_fields=[
            "id", "status", "status_reason", "status_message", "execution", "last_worker", "last_update",
            "last_worker_report", "project"])["tasks"]
        return doc

    def started(self, task_id: str) -> None:
        self.client.call("tasks.started", task=task_id)

    def completed(self, task_id: str) -> None:
        self.client.call("tasks.completed", task=task_id, force=True, status_reason="script exited 0")

    def failed(self, task_id: str, reason: str, message: str = "failed") -> None:
        """Mark failed with ``reason`` (also when it already is: the reason is replaced by the better one)."""
        self.client.call("tasks.failed", task=task_id, force=True, status_reason=reason[:900],
                         status_message=message)

    def enqueue(self, task_id: str, queue_id: str) -> None:
        self.client.call("tasks.enqueue", task=task_id, queue=queue_id, status_reason="Dagster run")

    def dequeue(self, task_id: str, reason: str) -> None:
        self.client.call("tasks.dequeue", task=task_id, status_reason=reason[:900])

    def stop(self, task_id: str, reason: str) -> None:
        """Ask the agent to stop a running task (``tasks.stop``), or force it ``stopped`` where that is missing.

        Either way the agent sees the change on its next status check and kills the script.
        """
        try:
            self.client.call("tasks.stop", task=task_id, force=True, status_reason=reason[:900])
        except Exception:  # noqa: BLE001 - a server without tasks.stop
            self.client.call("tasks.stopped", task=task_id, force=True, status_reason=reason[:900])

    # -- log -------------------------------------------------------------------------------------
    def log_events(self, task_id: str, since_ms: int = 0, batch: int = 5000) -> list[dict]:
        """Log events from ``since_ms`` on, oldest first (all pages)."""
        out: list[dict] = []
        since = since_ms
        while True:
            page = self.client.call("events.get_task_log", task=task_id, navigate_earlier=False,
                                    from_timestamp=since, batch_size=batch, order="asc").get("events") or []
            out.extend(page)
            if len(page) < batch:
                return out
            since = max(int(e.get("timestamp") or 0) for e in page)

    def add_log(self, task_id: str, text: str, worker: str) -> None:
        """One console log event (what the agent sends for a script's output)."""
        self.client.call("events.add_batch", type="log", task=task_id, level="info", worker=worker, msg=text,
                         timestamp=int(time.time() * 1000))

    # -- queues and workers ----------------------------------------------------------------------
    def queue_id(self, name: str) -> str | None:
        """Id of the queue named exactly ``name``."""
        queues = self.client.call("queues.get_all", name=f"^{re.escape(name)}$", only_fields=["id", "name"],
                                  search_hidden=True).get("queues") or []
        return next((q["id"] for q in queues if q.get("name") == name), None)

    def live_workers(self, queue_id: str) -> list[str]:
        """Ids of the registered (not expired) workers serving ``queue_id``."""
        workers = self.client.call("workers.get_all").get("workers") or []
        return [w["id"] for w in workers if queue_id in [q.get("id") if isinstance(q, dict) else q
                                                         for q in w.get("queues") or []]]

    def live_worker_ids(self) -> set[str]:
        """Ids of every registered worker."""
        return {w["id"] for w in self.client.call("workers.get_all").get("workers") or []}
