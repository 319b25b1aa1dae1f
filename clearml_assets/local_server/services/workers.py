"""``workers.*`` endpoints, as clearml-server's worker BLL.

The real server keeps a worker entry in Redis with an expiry of its ``register_timeout`` seconds
(default 600), renewed by every ``status_report``; a worker that stops reporting disappears from
``workers.get_all``. Here the entry is a document with an ``expires`` time, filtered on read.
A status report naming a task stamps ``last_worker`` / ``last_worker_report`` on it.
"""

from __future__ import annotations

import time
from typing import Any

from ..bll.access import get_or_raise
from ..bll.workers import alive, live_workers, stats, stop_non_responsive
from ..core import ApiError, Call, RequestModel, endpoint, now_iso
from ..core.constants import INVALID_TASK
from ..store.filters import compile_pattern

DEFAULT_TIMEOUT = 600


class RegisterRequest(RequestModel):
    """``workers.register``."""

    worker: str
    timeout: int = DEFAULT_TIMEOUT
    queues: list[str] = []
    tags: list[str] | None = None
    system_tags: list[str] | None = None


class WorkerRequest(RequestModel):
    """A worker id."""

    worker: str


class StatusReportRequest(RequestModel):
    """``workers.status_report``."""

    worker: str
    timestamp: int | None = None
    task: str | None = None
    queue: str | None = None
    queues: list[str] | None = None
    machine_stats: dict[str, Any] | None = None
    tags: list[str] | None = None
    system_tags: list[str] | None = None


def _key(call: Call, worker: str) -> str:
    return f"worker_{call.company}_{call.user}_{worker}"


def _save(call: Call, doc: dict) -> None:
    doc["expires"] = time.time() + doc["register_timeout"]
    call.store.save("workers", doc)


def _user(call: Call) -> dict:
    user = call.store.get("users", call.user) or {}
    return {"id": call.user, "name": user.get("name") or call.user}


def _check_queues(call: Call, queues: list[str]) -> None:
    missing = [q for q in queues if call.store.get("queues", q, call.company) is None]
    if missing:
        raise ApiError(400, 701, f"Invalid queue id (ids={missing})")


def register_worker(call: Call, worker: str, timeout: int = DEFAULT_TIMEOUT, queues: list[str] | None = None,
                    tags: list | None = None, system_tags: list | None = None) -> dict:
    """Create (or replace) a worker entry."""
    if not timeout or timeout <= 0:
        raise ApiError(400, 1002, f"Worker registration failed: invalid timeout (timeout={timeout}, worker={worker})")
    queues = list(queues or [])
    _check_queues(call, queues)
    now, ts = now_iso(), time.time()
    doc = {"id": _key(call, worker), "key": _key(call, worker), "worker": worker, "company": call.company,
           "company_entry": {"id": call.company, "name": call.company}, "user": _user(call),
           "ip": call.extra.get("ip") or "127.0.0.1", "queues": queues, "queue": None, "task": None,
           "project": None, "register_time": now, "register_timeout": int(timeout),
           "last_activity_time": now, "last_activity_ts": ts, "last_report_time": None,
           "tags": list(tags or []), "system_tags": list(system_tags or [])}
    _save(call, doc)
    return doc


@endpoint("workers.register", request_data_model=RegisterRequest)
def register(call: Call) -> dict:
    """Register a worker serving ``queues`` for ``timeout`` seconds after its last report."""
    m = call.model
    register_worker(call, m.worker, m.timeout, m.queues, m.tags, m.system_tags)
    return {}


@endpoint("workers.unregister", request_data_model=WorkerRequest)
def unregister(call: Call) -> dict:
    """Remove a worker; an unknown one is taken as already gone (the real default ``auto_unregister: true``)."""
    doc = call.store.get("workers", _key(call, call.model.worker), call.company)
    if doc is not None:
        call.store.delete("workers", doc["id"])
    return {}


@endpoint("workers.status_report", request_data_model=StatusReportRequest)
def status_report(call: Call) -> dict:
    """Renew a worker's registration and record what it runs (an unknown worker is registered)."""
    m = call.model
    doc = call.store.get("workers", _key(call, m.worker), call.company)
    if doc is None or not alive(doc):
        doc = register_worker(call, m.worker)  # apiserver.workers.auto_register
    now = now_iso()
    doc.update(last_activity_time=now, last_activity_ts=time.time(), last_report_time=now, queue=m.queue)
    if m.tags is not None:
        doc["tags"] = m.tags
    if m.system_tags is not None:
        doc["system_tags"] = m.system_tags
    if m.queues:
        doc["queues"] = m.queues
    if m.machine_stats:
        stats.log_stats(call, doc, m.timestamp, m.task, m.machine_stats)
    doc["task"] = doc["project"] = None
    if m.task:
        task = get_or_raise(call, "tasks", m.task, INVALID_TASK)
        task.update(last_worker=m.worker, last_worker_report=now, last_update=now, last_change=now)
        call.store.save("tasks", task)
        doc["task"] = {"id": task["id"], "name": task.get("name")}
        project = call.store.get("projects", task.get("project"), call.company) if task.get("project") else None
        if project is not None:
            doc["project"] = {"id": project["id"], "name": project.get("name")}
    _save(call, doc)
    return {}


def _queue_entry(call: Call, queue_id: str | None) -> dict | None:
    if not queue_id:
        return None
    queue = call.store.get("queues", queue_id, call.company)
    if queue is None:
        return {"id": queue_id}
    entry: dict = {"id": queue_id, "name": queue.get("name"), "num_tasks": len(queue["entries"])}
    if queue.get("display_name") is not None:
        entry["display_name"] = queue["display_name"]
    if queue["entries"]:
        first = call.store.get("tasks", queue["entries"][0]["task"], call.company) or {}
        entry["next_task"] = {"id": queue["entries"][0]["task"], "name": first.get("name")}
    return entry


def _tag_match(have: list, wanted: list | None) -> bool:
    if not wanted:
        return True
    include = [t for t in wanted if not t.startswith("-")]
    exclude = [t[1:] for t in wanted if t.startswith("-")]
    # the real server unions the workers of each included tag (any), then drops each excluded tag's
    return (not include or any(t in have for t in include)) and not any(t in have for t in exclude)


def _response_entry(call: Call, doc: dict) -> dict:
    out = {k: doc.get(k) for k in ("key", "user", "ip", "project", "register_time", "register_timeout",
                                   "last_activity_time", "last_report_time", "tags", "system_tags")}
    out.update(id=doc["worker"], company=doc["company_entry"], queue=_queue_entry(call, doc.get("queue")),
               queues=[_queue_entry(call, q) for q in doc.get("queues") or []])
    if doc.get("task"):
        task = call.store.get("tasks", doc["task"]["id"], call.company) or {}
        out["task"] = {**doc["task"], "running_time": int((task.get("active_duration") or 0) * 1000),
                       "last_iteration": task.get("last_iteration")}
    else:
        out["task"] = None
    return out


@endpoint("workers.get_all")
def get_all(call: Call) -> dict:
    """Live workers (active within ``last_seen`` seconds, default 3600), filtered by tags."""
    stop_non_responsive(call)
    last_seen = call.data.get("last_seen", 3600)
    docs = [d for d in live_workers(call, last_seen)
            if _tag_match(d.get("tags") or [], call.data.get("tags"))
            and _tag_match(d.get("system_tags") or [], call.data.get("system_tags"))]
    return {"workers": [_response_entry(call, d) for d in docs]}


@endpoint("workers.get_runtime_properties")
def get_runtime_properties(call: Call) -> dict:
    """Runtime properties a worker set (the agent reads them at start)."""
    doc = call.store.get("workers", _key(call, call.data.get("worker") or ""), call.company) or {}
    return {"runtime_properties": list((doc.get("runtime_properties") or {}).values())}


@endpoint("workers.set_runtime_properties")
def set_runtime_properties(call: Call) -> dict:
    """Store runtime properties ``[{"key", "value", "expiry"}]`` on a worker."""
    doc = call.store.get("workers", _key(call, call.data.get("worker") or ""), call.company)
    if doc is None:
        raise ApiError(400, 1001, f"Invalid worker id (worker={call.data.get('worker')})")
    props = doc.setdefault("runtime_properties", {})
    for item in call.data.get("runtime_properties") or []:
        props[item["key"]] = {"key": item["key"], "value": item.get("value")}
    call.store.save("workers", doc)
    return {"added": len(call.data.get("runtime_properties") or [])}


# -- machine statistics (the logic is in :mod:`..bll.workers.stats`) -----------------------------------
@endpoint("workers.get_metric_keys")
def get_metric_keys(call: Call) -> dict:
    """The machine-stat keys the workers reported, by category (``cpu``: ``cpu_usage``, ...)."""
    return {"categories": stats.metric_keys(call, call.data.get("worker_ids") or [])}


@endpoint("workers.get_stats")
def get_stats(call: Call) -> dict:
    """Per worker, each requested key aggregated per ``interval`` seconds (see :mod:`..bll.workers.stats`)."""
    data = call.data
    start, end = float(data.get("from_date") or 0), float(data.get("to_date") or time.time())
    items, wanted = data.get("items") or [], data.get("worker_ids") or []
    if call.release.worker_stats_histograms:
        return {"workers": stats.worker_stats(call, items, start, end, data.get("interval"), wanted,
                                              bool(data.get("split_by_resource")))}
    return {"workers": stats.worker_stats_1_9_2(call, items, start, end, data.get("interval"), wanted,
                                                bool(data.get("split_by_variant")))}


@endpoint("workers.get_activity_report")
def get_activity_report(call: Call) -> dict:
    """Per ``interval`` seconds: how many workers reported (total) and how many of them ran a task (active)."""
    start, end = float(call.data.get("from_date") or 0), float(call.data.get("to_date") or time.time())
    return stats.activity_report(call, start, end, call.data.get("interval"))


@endpoint("workers.get_count", min_version="2.26")
def get_count(call: Call) -> dict:
    """How many workers are registered (seen within ``last_seen`` seconds, with these tags, ids matching)."""
    data = call.data
    return {"count": stats.count_workers(call, live_workers(call), data.get("last_seen"), data.get("tags"),
                                         data.get("system_tags"), data.get("worker_pattern"), _tag_match,
                                         compile_pattern)}
