"""``queues.*`` endpoints, as clearml-server's queue service (the logic is in :mod:`..bll.queue`; ``tasks.enqueue``
and ``tasks.dequeue`` are in :mod:`.tasks_status`).

A queue is a document with an ordered ``entries`` list of ``{"task", "added"}``; ``get_next_task`` pops
the first entry under the store lock (the real server's atomic ``modify(pop__entries=-1)``). Enqueueing
moves the task to ``queued`` and remembers the status it came from (``enqueue_status``), which a
dequeue or a queue deletion returns it to.
"""

from __future__ import annotations


from ..bll.queue import (HIDDEN_TAGS, add_entry, default_queue, get_queue, new_queue, public_view, remove_entry,
                         reposition, touch_queue)
from ..bll.task import back_from_queue
from ..bll.workers import live_workers, stop_non_responsive
from ..core import ApiError, Call, RequestModel, bad_request, endpoint, ids_of, now_iso, required
from ..store.queries import get_all

class QueueTaskRequest(RequestModel):
    """A queue and a task in it."""

    queue: str
    task: str


class MoveRequest(QueueTaskRequest):
    """A move by ``count`` places."""

    count: int = 1


class AddTaskRequest(QueueTaskRequest):
    """``queues.add_task``: ``update_execution_queue`` records the queue in the task (after 1.9.2)."""

    update_execution_queue: bool = True


class RemoveTaskRequest(QueueTaskRequest):
    """``queues.remove_task``: ``update_task_status`` returns the task to its status before the queue (2.31)."""

    update_task_status: bool = False


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
    docs = [public_view(q, max_entries) for q in _visible(call)]
    return get_all(call, "queues", "queues", list_fields=("id", "tags", "system_tags"),
                   date_fields=("created", "last_update"), docs=docs)


@endpoint("queues.get_all")
def get_all_queues(call: Call) -> dict:
    """Queues filtered, ordered and paged; hidden (``k8s-glue``) ones only when asked for."""
    return _listing(call)


@endpoint("queues.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all`` with each entry's task name and the live workers serving each queue."""
    result = _listing(call)
    names = {t["id"]: t.get("name") for t in call.store.all("tasks", call.company)}
    workers = live_workers(call)
    for q in result["queues"]:
        if "entries" in q:
            q["entries"] = [{**e, "task": {"id": e["task"], "name": names.get(e["task"])}} for e in q["entries"]]
        q["workers"] = [{"name": w["worker"], "ip": w.get("ip"), "task": w.get("task"),
                         **({"key": w["key"]} if call.release.worker_stats_histograms else {})}
                        for w in workers if q["id"] in (w.get("queues") or [])]
    return result


@endpoint("queues.get_by_id")
def get_by_id(call: Call) -> dict:
    """One queue (entries capped by ``max_task_entries``)."""
    return {"queue": call.store.copy(public_view(get_queue(call), call.data.get("max_task_entries")))}


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
    doc = new_queue(call, name.strip(), call.data.get("tags"), call.data.get("system_tags"),
                     call.data.get("metadata"), call.data.get("display_name"))
    return {"id": doc["id"]}


@endpoint("queues.update")
def update(call: Call) -> dict:
    """Change name, display name, tags, system_tags or metadata."""
    doc = get_queue(call)
    fields = {k: call.data[k] for k in ("name", "display_name", "tags", "system_tags", "metadata")
              if k in call.data}
    doc.update(fields)
    doc["last_update"] = now_iso()
    call.store.save("queues", doc)
    return {"updated": 1, "fields": fields}


@endpoint("queues.delete")
def delete(call: Call) -> dict:
    """Delete a queue; with entries only with ``force``, which returns each task to its pre-queue status."""
    doc = get_queue(call)
    if doc["entries"]:
        if not call.data.get("force"):
            raise ApiError(400, 702, f"Queue is not empty, use force=true to delete (id={doc['id']})")
        for entry in doc["entries"]:
            task = call.store.get("tasks", entry["task"], call.company)
            if task is not None and task["status"] == "queued":
                back_from_queue(call, task, reason="Queue was deleted", message="")
    call.store.delete("queues", doc["id"])
    return {"deleted": 1}


@endpoint("queues.add_task", request_data_model=AddTaskRequest)
def add_task(call: Call) -> dict:
    """Append a task (its status is not changed: ``tasks.enqueue`` does both); after 1.9.2 the task records the
    queue (``update_execution_queue``)."""
    with call.store.lock:
        added = add_entry(call, get_queue(call, call.model.queue), call.model.task)
        task = call.store.get("tasks", call.model.task, call.company)
        if added and task is not None and call.model.update_execution_queue and call.release.queue_add_records_queue:
            task.setdefault("execution", {})["queue"] = call.model.queue
            call.store.save("tasks", task)
        return {"added": added}


@endpoint("queues.remove_task", request_data_model=RemoveTaskRequest)
def remove_task(call: Call) -> dict:
    """Remove a task from the queue; with ``update_task_status`` it returns to its status before the queue."""
    with call.store.lock:
        removed = remove_entry(call, call.model.queue, call.model.task)
        if removed and call.model.update_task_status:
            _back_to_pre_queue(call, [call.model.task], call.model.queue, f"Task was removed from the queue "
                                                                          f"{call.model.queue}")
        return {"removed": removed}


@endpoint("queues.clear_queue", min_version="2.31")
def clear_queue(call: Call) -> dict:
    """Empty a queue; its tasks return to their status before the queue. Answers the tasks it changed."""
    with call.store.lock:
        doc = get_queue(call)
        tasks = [e["task"] for e in doc["entries"]]
        changed = _back_to_pre_queue(call, tasks, doc["id"], f"Queue {doc['id']} was cleared") if tasks else []
        doc["entries"] = []
        touch_queue(call, doc)
        return {"removed_tasks": changed}


def _back_to_pre_queue(call: Call, task_ids: list[str], queue_id: str, reason: str) -> list[str]:
    """The real ``_update_task_status_on_removal_from_queue``: the tasks that record this queue go back to the
    status they were enqueued from (``created`` by default) and forget the queue."""
    changed = []
    for task_id in task_ids:
        task = call.store.get("tasks", task_id, call.company)
        if task is None or (task.get("execution") or {}).get("queue") != queue_id:
            continue
        back_from_queue(call, task, reason=reason, message="")
        changed.append(task_id)
    return changed


@endpoint("queues.get_next_task")
def get_next_task(call: Call) -> dict:
    """Pop the first entry atomically (only if it is ``task`` when given); empty answer if none."""
    stop_non_responsive(call)
    with call.store.lock:
        doc = get_queue(call)
        task_id = call.data.get("task")
        if not doc["entries"] or (task_id and doc["entries"][0]["task"] != task_id):
            return {}
        entry = doc["entries"].pop(0)
        touch_queue(call, doc)
    data: dict = {"entry": {"task": entry["task"], "added": entry["added"]}}
    if call.data.get("get_task_info"):
        task = call.store.get("tasks", entry["task"])
        if task is not None:
            data["task_info"] = {"company": task["company"], "user": task["user"]}
    return data


def _move(call: Call, target) -> dict:
    with call.store.lock:
        doc = get_queue(call, call.model.queue)
        return {"position": reposition(call, doc, call.model.task, target)}


@endpoint("queues.move_task_forward", request_data_model=MoveRequest)
def move_task_forward(call: Call) -> dict:
    """Move a task ``count`` places towards the front."""
    return _move(call, lambda p, n: max(0, p - call.model.count))


@endpoint("queues.move_task_backward", request_data_model=MoveRequest)
def move_task_backward(call: Call) -> dict:
    """Move a task ``count`` places towards the back."""
    return _move(call, lambda p, n: max(0, p + call.model.count))


@endpoint("queues.move_task_to_front", request_data_model=QueueTaskRequest)
def move_task_to_front(call: Call) -> dict:
    """Move a task to the front."""
    return _move(call, lambda p, n: 0)


@endpoint("queues.move_task_to_back", request_data_model=QueueTaskRequest)
def move_task_to_back(call: Call) -> dict:
    """Move a task to the back (1.9.2 answers position -1, later releases the last position)."""
    return _move(call, lambda p, n: -1)


@endpoint("queues.peek_task")
def peek_task(call: Call) -> dict:
    """The first task id without popping it."""
    entries = get_queue(call)["entries"]
    return {"task": entries[0]["task"] if entries else None}


@endpoint("queues.get_num_entries")
def get_num_entries(call: Call) -> dict:
    """How many tasks wait in the queue."""
    return {"num": len(get_queue(call)["entries"])}


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
    doc = get_queue(call)
    if call.data.get("replace_metadata"):
        doc["metadata"] = {}
    for item in required(call, "metadata"):
        doc.setdefault("metadata", {})[item["key"]] = item
    call.store.save("queues", doc)
    return {"updated": 1}


@endpoint("queues.delete_metadata")
def delete_metadata(call: Call) -> dict:
    """Delete metadata items by key."""
    doc = get_queue(call)
    for key in required(call, "keys"):
        (doc.get("metadata") or {}).pop(key, None)
    call.store.save("queues", doc)
    return {"updated": 1}
