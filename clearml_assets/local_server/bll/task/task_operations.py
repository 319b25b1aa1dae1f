"""Task status changes (clearml-server ``bll/task/task_operations.py``): the state machine, publishing, stopping,
enqueueing and dequeueing, archiving, moving between projects."""

from __future__ import annotations

from datetime import datetime, timezone

from ....timestamps import parse_clearml_time
from ...core import ApiError, Call, bad_request, now_iso
from ...core.constants import INVALID_TASK, STATE_MACHINE, TASK_STATUSES
from ..access import get_or_raise, merge_tags
from ..project.sub_projects import touch
from ..queue import add_entry, default_queue, get_queue, new_queue, remove_entry
from .task_bll import get_task, save_task


def change_status(call: Call, doc: dict, new_status: str, *, force: bool = False, **extra) -> dict:
    """Move a task along the real server's state machine (``force`` skips the check)."""
    current = doc["status"]
    if not force and new_status != current and new_status not in STATE_MACHINE.get(current, set()):
        raise ApiError(400, 110, f"Invalid status change (current_status={current}, new_status={new_status})")
    now = now_iso()
    fields = {"status": new_status, "status_reason": call.data.get("status_reason") or "",
              "status_message": call.data.get("status_message") or "", "status_changed": now, **extra}
    doc.update(fields)
    save_task(call, doc)
    return {"updated": 1, "fields": fields}


def publish_task(call: Call, task_id: str, *, force: bool, publish_models: bool) -> dict:
    """The real ``publish_task``: state machine checked unless forced; the last output model becomes ready."""
    doc = get_task(call, task_id)
    if not force and "published" not in STATE_MACHINE.get(doc["status"], set()):
        raise ApiError(400, 110, f"Invalid status change (current_status={doc['status']}, new_status=published)")
    outputs = (doc.get("models") or {}).get("output") or []
    if outputs and publish_models:
        model = call.store.get("models", outputs[-1].get("model"), call.company)
        if model is not None and not model.get("ready"):
            model["ready"] = True
            model["last_update"] = now_iso()
            call.store.save("models", model)
    return change_status(call, doc, "published", force=True, published=now_iso())


def dequeue(call: Call, doc: dict) -> dict:
    """Take a queued task off its queue (the real ``TaskBLL.dequeue``): ``{"removed": n}``; ``{}`` when it was
    not queued."""
    queue_id = (doc.get("execution") or {}).get("queue")
    removed = 0
    if doc.get("status") == "queued" and queue_id:
        try:
            removed = remove_entry(call, queue_id, doc["id"])
        except ApiError:
            removed = 0
    doc.pop("enqueue_status", None)
    return {"removed": removed} if queue_id and doc.get("status") == "queued" else {}


def pipeline_steps(call: Call, task_id: str) -> list[str]:
    """The steps of a pipeline controller (the company's tasks whose parent it is); none for another task."""
    doc = call.store.get("tasks", task_id, call.company)
    if doc is None or doc.get("type") != "controller":
        return []
    return [t["id"] for t in call.store.all("tasks", call.company) if t.get("parent") == task_id]


def with_pipeline_steps(call: Call, task_id: str, operation, on_step=None):
    """``operation(task_id)``, after ``on_step(step_id)`` (default: ``operation``) on each of its pipeline steps
    when the request asks ``include_pipeline_steps`` (API 2.29): the controller's answer is returned."""
    if call.data.get("include_pipeline_steps"):
        for step in pipeline_steps(call, task_id):
            (on_step or operation)(step)
    return operation(task_id)


def stop_task(call: Call, task_id: str, force: bool) -> dict:
    """The real ``stop_task``: stopped at once unless a worker reported it recently (then ``stopping``)."""
    doc = get_task(call, task_id)
    updated = parse_clearml_time(doc.get("last_update"))
    by_worker = (bool(doc.get("last_worker")) and "development" not in (doc.get("system_tags") or [])
                 and updated is not None and (datetime.now(timezone.utc) - updated).total_seconds() < 600)
    if doc["status"] == "queued" or not by_worker:
        if doc["status"] == "queued":
            dequeue(call, doc)
        call.data["status_message"] = f"Stopped by {call.user}"
        return change_status(call, doc, "stopped", force=force, completed=now_iso())
    call.data["status_message"] = "stopping"
    return change_status(call, doc, doc["status"], force=force)


def set_archived(call: Call, task_id: str, archived: bool) -> bool:
    """The real ``archive_task``/``unarchive_task``: a queued task is dequeued back to the status it was
    enqueued from; the request's status_message/status_reason are recorded."""
    doc = get_task(call, task_id)
    tags = doc.get("system_tags") or []
    if archived and doc["status"] == "queued":
        previous = doc.get("enqueue_status") or "created"
        dequeue(call, doc)
        doc.setdefault("execution", {}).pop("queue", None)
        change_status(call, doc, previous, force=True)
    doc["system_tags"] = merge_tags(tags, ["archived"]) if archived else [t for t in tags if t != "archived"]
    doc["status_message"] = call.data.get("status_message") or ""
    doc["status_reason"] = call.data.get("status_reason") or ""
    save_task(call, doc)
    return True


def move_task(call: Call, task_id: str, project_id: str | None) -> None:
    doc = get_task(call, task_id)
    old = doc.get("project")
    doc["project"] = project_id
    save_task(call, doc)
    touch(call, old)


def back_from_queue(call: Call, task: dict, *, reason: str, message: str) -> dict:
    """Return a queued task to the status it was enqueued from (the real server's ``enqueue_status``)."""
    call.data["status_reason"], call.data["status_message"] = reason, message
    target = task.pop("enqueue_status", None) or "created"
    task.get("execution", {}).pop("queue", None)
    return change_status(call, task, target, force=True)


def enqueue_one(call: Call, task_id: str, queue_id: str | None, queue_name: str | None,
                force: bool = False) -> dict:
    """``tasks.enqueue`` for one task: resolve the queue, status -> queued, append, record the queue."""
    if queue_id and queue_name:
        raise bad_request("Either queue id or queue name should be provided")
    with call.store.lock:
        if queue_name:
            found = [q for q in call.store.all("queues", call.company) if q["name"] == queue_name]
            queue = found[0] if found else new_queue(call, queue_name)
        elif queue_id:
            queue = get_queue(call, queue_id)
        else:  # the real server makes each company's default queue at start-up; here on first use
            queue = default_queue(call)
        task = get_or_raise(call, "tasks", task_id, INVALID_TASK)
        previous = task["status"]
        if previous == "queued" and not force:
            raise ApiError(400, 110, "Task already in requested status (current_status=queued, new_status=queued)")
        add_entry(call, queue, task["id"])
        task["enqueue_status"] = previous
        task["system_tags"] = [t for t in task.get("system_tags") or [] if t != "development"]
        task.setdefault("execution", {})["queue"] = queue["id"]
        try:
            result = change_status(call, task, "queued", force=force)
        except ApiError:
            remove_entry(call, queue["id"], task["id"])
            task.pop("enqueue_status", None)
            raise
    result["fields"]["execution.queue"] = queue["id"]
    return {"queued": 1, **result}


def dequeue_any(call: Call, task_id: str, new_status: str | None = None, from_all_queues: bool = False) -> dict:
    """``tasks.dequeue`` after 1.9.2 (the real ``dequeue_and_change_status``): off its queue when it has one, a
    queued or running task moves to ``new_status`` (else the status it was enqueued from, else ``created``); any
    other status is left as it is (``updated: 0``), never an error."""
    if new_status and new_status not in TASK_STATUSES:
        raise bad_request(f"Invalid task status: {new_status}")
    with call.store.lock:
        task = get_task(call, task_id)
        queue_id = (task.get("execution") or {}).get("queue")
        removed = 0
        if task["status"] == "queued" and queue_id:
            try:
                removed = remove_entry(call, queue_id, task_id)
            except ApiError:
                pass  # the queue was deleted
        if from_all_queues:
            for queue in call.store.all("queues", call.company):
                if any(e["task"] == task_id for e in queue["entries"]):
                    removed += remove_entry(call, queue["id"], task_id)
        if task["status"] not in ("queued", "in_progress"):
            return {"dequeued": 1, "updated": 0}
        call.data.setdefault("status_reason", "")
        target = new_status or task.pop("enqueue_status", None) or "created"
        task.pop("enqueue_status", None)
        # execution.queue stays, as the real server's dequeue_and_change_status keeps it: the agent dequeues the
        # task it runs (new_status in_progress), and who watches the run reads the queue from there
        return {"dequeued": 1, "removed": removed, **change_status(call, task, target, force=True)}


def dequeue_one(call: Call, task_id: str) -> dict:
    """``tasks.dequeue`` for one task: off its queue and back to its pre-queue status."""
    with call.store.lock:
        task = get_or_raise(call, "tasks", task_id, INVALID_TASK)
        if task["status"] != "queued":
            raise ApiError(400, 101, f"Invalid task id (status={task['status']}, expected=queued)")
        queue_id = (task.get("execution") or {}).get("queue")
        if not queue_id:
            raise ApiError(400, 11, "Task has no queue value (field=execution.queue)")
        removed = 0
        try:
            removed = remove_entry(call, queue_id, task_id)
        except ApiError:
            pass  # the queue was deleted
        result = back_from_queue(call, task, reason=call.data.get("status_reason") or "",
                                  message=call.data.get("status_message") or "")
    return {"dequeued": 1, "removed": removed, **result}
