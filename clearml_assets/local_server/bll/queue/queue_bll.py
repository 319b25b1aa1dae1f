"""Queues (clearml-server ``bll/queue/queue_bll.py``): a queue is a document with an ordered ``entries`` list of
``{"task", "added"}``, its length and wait sampled on every change; each company has a default queue."""

from __future__ import annotations

import time
from typing import Any

from ...core import ApiError, Call, new_id, now_iso, required
from ...core.constants import INVALID_QUEUE
from ..access import get_or_raise

INVALID = INVALID_QUEUE
DEFAULT_TAG = "default"
HIDDEN_TAGS = ("k8s-glue",)  # services.queues.hidden_tags of the real server's default config
METRICS_KEPT = 2000


def get_queue(call: Call, queue_id: Any = None) -> dict:
    """The company's queue (``queue`` of the request by default) or 400/701."""
    return get_or_raise(call, "queues", queue_id if queue_id is not None else required(call, "queue"), INVALID_QUEUE)


def new_queue(call: Call, name: str, tags: list | None = None, system_tags: list | None = None,
              metadata: dict | None = None, display_name: str | None = None) -> dict:
    """Create an empty queue (``display_name``: the name the web app shows, API 2.31)."""
    now = now_iso()
    doc = {"id": new_id(), "company": call.company, "user": call.user, "name": name, "created": now,
           "tags": list(tags or []), "system_tags": list(system_tags or []), "metadata": metadata or {},
           "entries": [], "last_update": now, "metrics": []}
    if display_name is not None:
        doc["display_name"] = display_name
    call.store.save("queues", doc)
    return doc


def _log_metrics(doc: dict) -> None:
    """One sample of length and average wait (the real server writes these to Elasticsearch)."""
    now = time.time()
    waits = [now - e["added_ts"] for e in doc["entries"] if "added_ts" in e]
    doc["metrics"] = (doc.get("metrics") or [])[-METRICS_KEPT:] + [
        [now, len(doc["entries"]), sum(waits) / len(waits) if waits else 0.0]]


def touch_queue(call: Call, doc: dict) -> None:
    """Store a queue after its entries changed, with a sample of its length and wait."""
    doc["last_update"] = now_iso()
    _log_metrics(doc)
    call.store.save("queues", doc)


def public_view(doc: dict, max_entries: int | None = None) -> dict:
    """A queue as the API answers it (entries without their internal timestamps, at most ``max_entries``)."""
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
    return new_queue(call, "default", system_tags=[DEFAULT_TAG])


def add_entry(call: Call, doc: dict, task_id: str) -> int:
    """Append a task to a queue (400/706 if it is already there)."""
    if any(e["task"] == task_id for e in doc["entries"]):
        raise ApiError(400, 706, f"Failed adding task to queue since task is already queued (task={task_id})")
    doc["entries"].append({"task": task_id, "added": now_iso(), "added_ts": time.time()})
    touch_queue(call, doc)
    return 1


def remove_entry(call: Call, queue_id: str, task_id: str) -> int:
    """Remove a task from a queue (400/703 if the queue does not hold it)."""
    doc = call.store.get("queues", queue_id, call.company)
    if doc is None or not any(e["task"] == task_id for e in doc["entries"]):
        raise ApiError(400, 703, f"Invalid queue id or task not in queue (task={task_id}, id={queue_id})")
    before = len(doc["entries"])
    doc["entries"] = [e for e in doc["entries"] if e["task"] != task_id]
    touch_queue(call, doc)
    return before - len(doc["entries"])


def reposition(call: Call, doc: dict, task_id: str, target) -> int:
    """Move a task within a queue to ``target(position, length)``; after 1.9.2 the position is kept within the
    queue and the answer is where the task is (1.9.2 answers the position asked for, -1 for the back)."""
    tasks = [e["task"] for e in doc["entries"]]
    if task_id not in tasks:
        raise ApiError(400, 703, f"Invalid queue id or task not in queue (task={task_id})")
    old = tasks.index(task_id)
    new = target(old, len(tasks))
    entry = doc["entries"].pop(old)
    if call.release.queue_moves_within_queue:
        new = min(max(new, 0), len(doc["entries"])) if new != -1 else len(doc["entries"])
    if new < 0 or new >= len(doc["entries"]):
        doc["entries"].append(entry)
    else:
        doc["entries"].insert(new, entry)
    touch_queue(call, doc)
    return [e["task"] for e in doc["entries"]].index(task_id) if call.release.queue_moves_within_queue else new
