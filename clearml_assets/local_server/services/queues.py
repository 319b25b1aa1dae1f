"""``queues.*`` endpoints and ``tasks.enqueue`` / ``tasks.dequeue``, as clearml-server's queue BLL.

A queue is a document with an ordered ``entries`` list of ``{"task", "added"}``; ``get_next_task`` pops
the first entry under the store lock (the real server's atomic ``modify(pop__entries=-1)``). Enqueueing
moves the task to ``queued`` and remembers the status it came from (``enqueue_status``), which a
dequeue or a queue deletion returns it to.
"""

from __future__ import annotations

import time
from typing import Any

from ..queries import now_iso
from ..registry import ApiError, Call, RequestModel, bad_request, endpoint
from . import tasks as task_service
from .common import get_all, get_or_raise, ids_of, new_id, required

INVALID = (701, "Invalid queue id")
DEFAULT_TAG = "default"
HIDDEN_TAGS = ("k8s-glue",)  # services.queues.hidden_tags of the real server's default config
METRICS_KEPT = 2000


class QueueTaskRequest(RequestModel):
    """A queue and a task in it."""

    queue: str
    task: str


class MoveRequest(QueueTaskRequest):
    """A move by ``count`` places."""

    count: int = 1


def _queue(call: Call, queue_id: Any = None) -> dict:
    return get_or_raise(call, "queues", queue_id if queue_id is not None else required(call, "queue"), INVALID)


def _new_queue(call: Call, name: str, tags: list | None = None, system_tags: list | None = None,
               metadata: dict | None = None) -> dict:
    now = now_iso()
    doc = {"id": new_id(), "company": call.company, "user": call.user, "name": name, "created": now,
           "tags": list(tags or []), "system_tags": list(system_tags or []), "metadata": metadata or {},
           "entries": [], "last_update": now, "metrics": []}
    call.store.save("queues", doc)
    return doc


def _log_metrics(call: Call, doc: dict) -> None:
    """One sample of length and average wait (the real server writes these to Elasticsearch)."""
    now = time.time()
    waits = [now - e["added_ts"] for e in doc["entries"] if "added_ts" in e]
    doc["metrics"] = (doc.get("metrics") or [])[-METRICS_KEPT:] + [
        [now, len(doc["entries"]), sum(waits) / len(waits) if waits else 0.0]]


def _touch(call: Call, doc: dict) -> None:
    doc["last_update"] = now_iso()
    _log_metrics(call, doc)
    call.store.save("queues", doc)


def _public(doc: dict, max_entries: int | None = None, only: Any = None) -> dict:
    out = {k: v for k, v in doc.items() if k not in ("metrics",)}
    out["entries"] = [{"task": e["task"], "added": e["added"]} for e in doc["entries"]]
    if max_entries:
        out["entries"] = out["entries"][:max_entries]
    return out


def default_queue(call: Call, create: bool = True) -> dict:
    """The company's queue tagged ``default`` (the real server creates it at start-up)."""
    found = [q for q in call.store.all("queues", call.company) if DEFAULT_TAG in (q.get("system_tags") or [])]
    if len(found) > 1:
        raise ApiError(400, 708, f"More than one queue is tagged as the default queue (queues={[q['id'] for q in found]})")
    if found:
        return found[0]
    if not create:
        raise ApiError(400, 707, "No queue is tagged as the default queue for this company")
    return _new_queue(call, "default", system_tags=[DEFAULT_TAG])


def _visible(call: Call) -> list[dict]:
    data = call.data
    docs = call.store.all("queues", call.company)
    default_queue(call)  # exists before the first listing, as on the real server
    docs = call.store.all("queues", call.company)
    if data.get("search_hidden") or data.get("id") or data.get("name"):
        return docs
    return [q for q in docs if not set(q.get("system_tags") or []) & set(HIDDEN_TAGS)]


def _listing(call: Call) -> dict:
    max_entries = call.data.get("max_task_entries")
    docs = [_public(q, max_entries) for q in _visible(call)]
    return get_all(call, "queues", "queues", list_fields=("id", "tags", "system_tags"),
                   date_fields=("created", "last_update"), docs=docs)


@endpoint("queues.get_all")
def get_all_queues(call: Call) -> dict:
    """Queues filtered, ordered and paged; hidden (``k8s-glue``) ones only when asked for."""
    return _listing(call)


@endpoint("queues.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all`` with each entry's task name and the live workers serving each queue."""
    from .workers import live_workers

    result = _listing(call)
    names = {t["id"]: t.get("name") for t in call.store.all("tasks", call.company)}
    workers = live_workers(call)
    for q in result["queues"]:
        if "entries" in q:
            q["entries"] = [{**e, "task": {"id": e["task"], "name": names.get(e["task"])}} for e in q["entries"]]
        q["workers"] = [{"name": w["worker"], "ip": w.get("ip"), "task": w.get("task")}
                        for w in workers if q["id"] in (w.get("queues") or [])]
    return result


@endpoint("queues.get_by_id")
def get_by_id(call: Call) -> dict:
    """One queue (entries capped by ``max_task_entries``)."""
    return {"queue": call.store.copy(_public(_queue(call), call.data.get("max_task_entries")))}


@endpoint("queues.get_default")
def get_default(call: Call) -> dict:
    """The default queue's id and name."""
    q = default_queue(call)
    return {"id": q["id"], "name": q["name"]}


@endpoint("queues.create")
def create(call: Call) -> dict:
    """A new, empty queue (names need not be unique, as on the real server)."""
    name = required(call, "name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request(f"Validation error: queue name must be a non-empty string (name={name!r})")
    doc = _new_queue(call, name.strip(), call.data.get("tags"), call.data.get("system_tags"),
                     call.data.get("metadata"))
    return {"id": doc["id"]}


@endpoint("queues.update")
def update(call: Call) -> dict:
    """Change name, tags, system_tags or metadata."""
    doc = _queue(call)
    fields = {k: call.data[k] for k in ("name", "tags", "system_tags", "metadata") if k in call.data}
    doc.update(fields)
    doc["last_update"] = now_iso()
    call.store.save("queues", doc)
    return {"updated": 1, "fields": fields}


@endpoint("queues.delete")
def delete(call: Call) -> dict:
    """Delete a queue; with entries only with ``force``, which returns each task to its pre-queue status."""
    doc = _queue(call)
    if doc["entries"]:
        if not call.data.get("force"):
            raise ApiError(400, 702, f"Queue is not empty, use force=true to delete (id={doc['id']})")
        for entry in doc["entries"]:
            task = call.store.get("tasks", entry["task"], call.company)
            if task is not None and task["status"] == "queued":
                _back_from_queue(call, task, reason="Queue was deleted", message="")
    call.store.delete("queues", doc["id"])
    return {"deleted": 1}


def add_entry(call: Call, doc: dict, task_id: str) -> int:
    """Append a task to a queue (400/706 if it is already there)."""
    if any(e["task"] == task_id for e in doc["entries"]):
        raise ApiError(400, 706, f"Failed adding task to queue since task is already queued (task={task_id})")
    doc["entries"].append({"task": task_id, "added": now_iso(), "added_ts": time.time()})
    _touch(call, doc)
    return 1


def remove_entry(call: Call, queue_id: str, task_id: str) -> int:
    """Remove a task from a queue (400/703 if the queue does not hold it)."""
    doc = call.store.get("queues", queue_id, call.company)
    if doc is None or not any(e["task"] == task_id for e in doc["entries"]):
        raise ApiError(400, 703, f"Invalid queue id or task not in queue (task={task_id}, id={queue_id})")
    before = len(doc["entries"])
    doc["entries"] = [e for e in doc["entries"] if e["task"] != task_id]
    _touch(call, doc)
    return before - len(doc["entries"])


@endpoint("queues.add_task", request_data_model=QueueTaskRequest)
def add_task(call: Call) -> dict:
    """Append a task (its status is not changed: ``tasks.enqueue`` does both)."""
    with call.store.lock:
        return {"added": add_entry(call, _queue(call, call.model.queue), call.model.task)}


@endpoint("queues.remove_task", request_data_model=QueueTaskRequest)
def remove_task(call: Call) -> dict:
    """Remove a task from the queue."""
    with call.store.lock:
        return {"removed": remove_entry(call, call.model.queue, call.model.task)}


@endpoint("queues.get_next_task")
def get_next_task(call: Call) -> dict:
    """Pop the first entry atomically (only if it is ``task`` when given); empty answer if none."""
    from .workers import stop_non_responsive

    stop_non_responsive(call)
    with call.store.lock:
        doc = _queue(call)
        task_id = call.data.get("task")
        if not doc["entries"] or (task_id and doc["entries"][0]["task"] != task_id):
            return {}
        entry = doc["entries"].pop(0)
        _touch(call, doc)
    data: dict = {"entry": {"task": entry["task"], "added": entry["added"]}}
    if call.data.get("get_task_info"):
        task = call.store.get("tasks", entry["task"])
        if task is not None:
            data["task_info"] = {"company": task["company"], "user": task["user"]}
    return data


def _move(call: Call, position_of) -> dict:
    with call.store.lock:
        doc = _queue(call, call.model.queue)
        tasks = [e["task"] for e in doc["entries"]]
        if call.model.task not in tasks:
            raise ApiError(400, 703, f"Invalid queue id or task not in queue (task={call.model.task})")
        old = tasks.index(call.model.task)
        new = position_of(old)
        entry = doc["entries"].pop(old)
        if new < 0 or new >= len(doc["entries"]):
            doc["entries"].append(entry)
        else:
            doc["entries"].insert(new, entry)
        _touch(call, doc)
    return {"position": new}


@endpoint("queues.move_task_forward", request_data_model=MoveRequest)
def move_task_forward(call: Call) -> dict:
    """Move a task ``count`` places towards the front."""
    return _move(call, lambda p: max(0, p - call.model.count))


@endpoint("queues.move_task_backward", request_data_model=MoveRequest)
def move_task_backward(call: Call) -> dict:
    """Move a task ``count`` places towards the back."""
    return _move(call, lambda p: max(0, p + call.model.count))


@endpoint("queues.move_task_to_front", request_data_model=QueueTaskRequest)
def move_task_to_front(call: Call) -> dict:
    """Move a task to the front."""
    return _move(call, lambda p: 0)


@endpoint("queues.move_task_to_back", request_data_model=QueueTaskRequest)
def move_task_to_back(call: Call) -> dict:
    """Move a task to the back (position -1, as the real server answers)."""
    return _move(call, lambda p: -1)


@endpoint("queues.peek_task")
def peek_task(call: Call) -> dict:
    """The first task id without popping it."""
    entries = _queue(call)["entries"]
    return {"task": entries[0]["task"] if entries else None}


@endpoint("queues.get_num_entries")
def get_num_entries(call: Call) -> dict:
    """How many tasks wait in the queue."""
    return {"num": len(_queue(call)["entries"])}


@endpoint("queues.get_queue_metrics")
def get_queue_metrics(call: Call) -> dict:
    """Average waiting time and queue length per ``interval`` seconds between ``from_date`` and ``to_date``."""
    interval = max(1, int(required(call, "interval")))
    start, end = float(required(call, "from_date")), float(required(call, "to_date"))
    wanted = ids_of(call.data.get("queue_ids")) or [q["id"] for q in call.store.all("queues", call.company)]
    out = []
    for queue_id in wanted:
        doc = call.store.get("queues", queue_id, call.company)
        buckets: dict[int, list] = {}
        for ts, length, wait in (doc or {}).get("metrics") or []:
            if start <= ts <= end:
                buckets.setdefault(int(ts // interval) * interval, []).append((length, wait))
        dates = sorted(buckets)
        out.append({"queue": queue_id, "dates": [d * 1000 for d in dates],
                    "avg_waiting_times": [sum(w for _, w in buckets[d]) / len(buckets[d]) for d in dates],
                    "queue_lengths": [max(n for n, _ in buckets[d]) for d in dates]})
    return {"queues": out}


@endpoint("queues.add_or_update_metadata")
def add_or_update_metadata(call: Call) -> dict:
    """Upsert metadata items by key."""
    doc = _queue(call)
    if call.data.get("replace_metadata"):
        doc["metadata"] = {}
    for item in required(call, "metadata"):
        doc.setdefault("metadata", {})[item["key"]] = item
    call.store.save("queues", doc)
    return {"updated": 1}


@endpoint("queues.delete_metadata")
def delete_metadata(call: Call) -> dict:
    """Delete metadata items by key."""
    doc = _queue(call)
    for key in required(call, "keys"):
        (doc.get("metadata") or {}).pop(key, None)
    call.store.save("queues", doc)
    return {"updated": 1}


# -- tasks.enqueue / tasks.dequeue ------------------------------------------------------------------
def _back_from_queue(call: Call, task: dict, *, reason: str, message: str) -> dict:
    """Return a queued task to the status it was enqueued from (the real server's ``enqueue_status``)."""
    call.data["status_reason"], call.data["status_message"] = reason, message
    target = task.pop("enqueue_status", None) or "created"
    task.get("execution", {}).pop("queue", None)
    return task_service.change_status(call, task, target, force=True)


def enqueue_one(call: Call, task_id: str, queue_id: str | None, queue_name: str | None,
                force: bool = False) -> dict:
    """``tasks.enqueue`` for one task: resolve the queue, status -> queued, append, record the queue."""
    if queue_id and queue_name:
        raise bad_request("Either queue id or queue name should be provided")
    with call.store.lock:
        if queue_name:
            found = [q for q in call.store.all("queues", call.company) if q["name"] == queue_name]
            queue = found[0] if found else _new_queue(call, queue_name)
        elif queue_id:
            queue = _queue(call, queue_id)
        else:
            queue = default_queue(call, create=False)
        task = get_or_raise(call, "tasks", task_id, task_service.INVALID)
        previous = task["status"]
        if previous == "queued" and not force:
            raise ApiError(400, 110, f"Task already in requested status (current_status=queued, new_status=queued)")
        add_entry(call, queue, task["id"])
        task["enqueue_status"] = previous
        task["system_tags"] = [t for t in task.get("system_tags") or [] if t != "development"]
        task.setdefault("execution", {})["queue"] = queue["id"]
        try:
            result = task_service.change_status(call, task, "queued", force=force)
        except ApiError:
            remove_entry(call, queue["id"], task["id"])
            task.pop("enqueue_status", None)
            raise
    result["fields"]["execution.queue"] = queue["id"]
    return {"queued": 1, **result}


@endpoint("tasks.enqueue")
def enqueue(call: Call) -> dict:
    """Put a task on a queue (by id, by name creating it, or the default queue)."""
    result = enqueue_one(call, required(call, "task"), call.data.get("queue"), call.data.get("queue_name"),
                         bool(call.data.get("force")))
    if call.data.get("verify_watched_queue"):
        from .workers import live_workers

        queue_id = result["fields"]["execution.queue"]
        result["queue_watched"] = any(queue_id in (w.get("queues") or []) for w in live_workers(call))
    return result


def dequeue_one(call: Call, task_id: str) -> dict:
    """``tasks.dequeue`` for one task: off its queue and back to its pre-queue status."""
    with call.store.lock:
        task = get_or_raise(call, "tasks", task_id, task_service.INVALID)
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
        result = _back_from_queue(call, task, reason=call.data.get("status_reason") or "",
                                  message=call.data.get("status_message") or "")
    return {"dequeued": 1, "removed": removed, **result}


@endpoint("tasks.dequeue")
def dequeue(call: Call) -> dict:
    """Take a queued task off its queue."""
    return dequeue_one(call, required(call, "task"))


def _batch(call: Call, func, key: str) -> dict:
    succeeded, failed = [], []
    for task_id in ids_of(required(call, "ids")):
        try:
            res = func(task_id)
            succeeded.append({"id": task_id, key: bool(res.get(key)), **{k: v for k, v in res.items() if k != key}})
        except ApiError as exc:
            failed.append({"id": task_id, "error": {"codes": [exc.code, exc.subcode], "msg": exc.msg,
                                                    "data": exc.data}})
    return {"succeeded": succeeded, "failed": failed}


@endpoint("tasks.enqueue_many")
def enqueue_many(call: Call) -> dict:
    """``tasks.enqueue`` for each of ``ids``."""
    return _batch(call, lambda t: enqueue_one(call, t, call.data.get("queue"), call.data.get("queue_name")),
                  "queued")


@endpoint("tasks.dequeue_many")
def dequeue_many(call: Call) -> dict:
    """``tasks.dequeue`` for each of ``ids``."""
    return _batch(call, lambda t: dequeue_one(call, t), "dequeued")
