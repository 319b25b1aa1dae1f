"""``tasks.*`` endpoints with the real server's state machine and field semantics."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from ...timestamps import parse_clearml_time

from ..queries import now_iso
from ..registry import ApiError, Call, bad_request, endpoint
from .. import apimodels as req
from ..bll import project as project_bll
from ..bll import task as task_bll
from . import projects
from .common import (archive_many_endpoints, get_all, get_for_writing, get_or_raise, ids_of, merge_tags, new_id,
                     publicity_endpoints, required, run_batch)

INVALID = (101, "Invalid task id")
TASK_TYPES = ("training", "testing", "inference", "data_processing", "application", "monitor",
              "controller", "report", "optimizer", "service", "qc", "custom")

# The real server's allowed status changes (apiserver/bll/task/utils.py state_machine).
STATE_MACHINE = {
    "created": {"queued", "in_progress"},
    "queued": {"created", "in_progress", "stopped"},
    "in_progress": {"stopped", "failed", "created", "completed"},
    "stopped": {"closed", "created", "failed", "queued", "in_progress", "published", "publishing", "completed"},
    "closed": {"created", "failed", "published", "publishing", "stopped"},
    "failed": {"created", "stopped", "published", "queued"},
    "publishing": {"published"},
    "published": set(),
    "completed": {"published", "in_progress", "created"},
}
EDITABLE = ("name", "type", "comment", "parent", "project", "tags", "system_tags", "script", "hyperparams",
            "configuration", "execution", "models", "container", "runtime", "input", "output")
# Embedded documents of the real Task: tasks.edit merges their top-level keys instead of replacing them.
EMBEDDED = ("script", "execution", "output", "models")


def _task(call: Call, task_id=None) -> dict:
    """The task for writing: the company's own, a public one is 403/21 as on the real server."""
    return get_for_writing(call, "tasks", task_id if task_id is not None else required(call, "task"), INVALID)


def _task_read(call: Call, task_id=None) -> dict:
    """The task for reading: the company's own or a public one."""
    return get_or_raise(call, "tasks", task_id if task_id is not None else required(call, "task"), INVALID,
                        allow_public=True)


def requested_version(call: Call) -> tuple[int, int]:
    """The API version in the request path as a comparable tuple (no version: the server's own)."""
    try:
        major, minor = str(call.requested_version).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return 2, 23


def _check_name(name) -> str:
    """Task names are stripped strings of at least 3 characters on the real server."""
    if not isinstance(name, str) or len(name.strip()) < 3:
        raise bad_request(f"Validation error: task name must be a string of at least 3 characters (name={name!r})")
    return name.strip()


def _check_updatable(call: Call, doc: dict, *, force: bool | None = None, allow_all: bool = False) -> None:
    """The real server's ``get_task_for_update``: ``created`` only, or also ``in_progress`` with force."""
    if allow_all:
        return
    force = bool(call.data.get("force")) if force is None else force
    allowed = ("created", "in_progress") if force else ("created",)
    if doc["status"] not in allowed:
        raise ApiError(400, 110, f"Invalid task status (expected=created, status={doc['status']})")


def _properties_only(params: list) -> bool:
    """Hyperparameters all in the ``properties`` section may change in any status."""
    for p in params:
        if isinstance(p, dict) and str(p.get("section", "")).lower() == "properties":
            p["section"] = "properties"
    return bool(params) and all(isinstance(p, dict) and p.get("section") == "properties" for p in params)


def _save(call: Call, doc: dict, changed: bool = True) -> None:
    for key in ("tags", "system_tags"):
        doc[key] = sorted(set(doc.get(key) or []))  # stored as sorted lists on the real server
    artifacts = (doc.get("execution") or {}).get("artifacts")
    if artifacts:  # a map keyed by key/mode on the real server, returned in key order
        artifacts.sort(key=lambda a: (str(a.get("key")), str(a.get("mode", "output"))))
    now = now_iso()
    doc["last_update"] = now
    if changed:
        doc["last_change"] = now
        doc["last_changed_by"] = call.user
    call.store.save("tasks", doc)
    projects.touch(call, doc.get("project"))


def new_task_doc(call: Call, data: dict) -> dict:
    """A task document with every field the real server keeps, from a create request."""
    now = now_iso()
    doc = {
        "id": new_id(), "company": call.company, "user": call.user, "name": data["name"],
        "type": data["type"], "status": "created", "status_reason": "", "status_message": "",
        "status_changed": now, "comment": data.get("comment") or "", "created": now, "started": None,
        "completed": None, "published": None, "last_update": now, "last_change": now,
        "last_changed_by": call.user, "last_iteration": 0, "last_metrics": {},
        "project": data.get("project"), "parent": data.get("parent"), "tags": data.get("tags") or [],
        "system_tags": data.get("system_tags") or [], "script": data.get("script") or {},
        "hyperparams": data.get("hyperparams") or {}, "configuration": data.get("configuration") or {},
        "execution": data.get("execution") or {}, "models": data.get("models") or {"input": [], "output": []},
        "container": data.get("container") or {}, "runtime": data.get("runtime") or {},
        "output": {"destination": data["output_dest"]} if data.get("output_dest") else {},
        "active_duration": None,
    }
    doc["execution"].setdefault("artifacts", [])
    doc["models"].setdefault("input", [])
    doc["models"].setdefault("output", [])
    return doc


@endpoint("tasks.create", request_data_model=req.CreateTaskRequest)
def create(call: Call) -> dict:
    """Create a task in status ``created``."""
    call.data["name"] = _check_name(required(call, "name"))
    ttype = required(call, "type")
    if ttype not in TASK_TYPES:
        raise bad_request(f"Invalid task type {ttype!r}")
    if call.data.get("project"):
        get_or_raise(call, "projects", call.data["project"], projects.INVALID)
    task_bll.models_prepare_for_save(requested_version(call), call.data)
    task_bll.params_prepare_for_save(call.data)
    doc = new_task_doc(call, call.data)
    task_bll.validate_references(call, doc, models=True, parent=True, project=True)
    _save(call, doc)
    return {"id": doc["id"]}


@endpoint("tasks.validate", request_data_model=req.CreateTaskRequest)
def validate(call: Call) -> dict:
    """Check a task definition as ``tasks.create`` would, without creating it."""
    call.data["name"] = _check_name(required(call, "name"))
    if required(call, "type") not in TASK_TYPES:
        raise bad_request(f"Invalid task type {call.data['type']!r}")
    data = {k: v for k, v in call.data.items() if k not in ("id", "company", "user")}
    task_bll.models_prepare_for_save(requested_version(call), data)
    task_bll.params_prepare_for_save(data)
    task_bll.validate_references(call, new_task_doc(call, data), models=True, parent=True, project=True)
    return {}


def _for_client(call: Call, row: dict) -> dict:
    return task_bll.unprepare_for_version(requested_version(call), row)


@endpoint("tasks.get_by_id")
def get_by_id(call: Call) -> dict:
    """One task (public ones too)."""
    return {"task": _for_client(call, call.store.copy(_task_read(call)))}


TASK_QUERY = dict(list_fields=("id", "tags", "system_tags", "project", "status", "type", "user", "parent"),
                  date_fields=("status_changed", "last_update", "last_change"),
                  range_fields=("created", "started", "active_duration", "last_iteration"),
                  regex_fields=("name", "comment"), exact_prefixes=("runtime.",))


@endpoint("tasks.get_all")
def get_all_tasks(call: Call) -> dict:
    """Tasks filtered, ordered and paged like the real server (hidden ones only with search_hidden)."""
    data = projects.with_subprojects(call, dict(call.data))
    docs = call.store.all("tasks", call.company, allow_public=True)
    if not data.get("search_hidden") and not data.get("id"):
        docs = [d for d in docs if "hidden" not in (d.get("system_tags") or [])]
    result = get_all(call, "tasks", "tasks", data=data, docs=docs, **TASK_QUERY)
    if requested_version(call) < task_bll.MODELS_COMPAT_MAX:
        result["tasks"] = [_for_client(call, row) for row in result["tasks"]]
    return result


@endpoint("tasks.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all``."""
    return get_all_tasks(call)


@endpoint("tasks.get_types")
def get_types(call: Call) -> dict:
    """The task types the company's and public tasks use: under ``projects`` and their sub-projects, else of
    every task that is not hidden (clearml-server's ``get_task_types``)."""
    wanted = ids_of(call.data.get("projects"))
    scope = set(project_bll.ids_with_children(call, wanted)) if wanted else None
    docs = call.store.all("tasks", call.company, allow_public=True)
    in_scope = (lambda t: t.get("project") in scope) if scope is not None else \
        (lambda t: "hidden" not in (t.get("system_tags") or []))
    return {"types": sorted({t["type"] for t in docs if t.get("type") in TASK_TYPES and in_scope(t)})}


# -- status changes -------------------------------------------------------------------------------
def change_status(call: Call, doc: dict, new_status: str, *, force: bool = False, **extra) -> dict:
    """Move a task along the real server's state machine (``force`` skips the check)."""
    current = doc["status"]
    if not force and new_status != current and new_status not in STATE_MACHINE.get(current, set()):
        raise ApiError(400, 110, f"Invalid status change (current_status={current}, new_status={new_status})")
    now = now_iso()
    fields = {"status": new_status, "status_reason": call.data.get("status_reason") or "",
              "status_message": call.data.get("status_message") or "", "status_changed": now, **extra}
    doc.update(fields)
    _save(call, doc)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.started", request_data_model=req.TaskUpdateRequest)
def started(call: Call) -> dict:
    """Mark a task started (``in_progress``)."""
    doc = _task(call)
    extra = {"started": now_iso()} if not doc.get("started") else {}
    return {**change_status(call, doc, "in_progress", force=call.model.force, **extra), "started": 1}


@endpoint("tasks.stopped", request_data_model=req.TaskUpdateRequest)
def stopped(call: Call) -> dict:
    """Mark a task stopped (the real server also sets ``completed``)."""
    return change_status(call, _task(call), "stopped", force=call.model.force, completed=now_iso())


@endpoint("tasks.failed", request_data_model=req.TaskUpdateRequest)
def failed(call: Call) -> dict:
    """Mark a task failed (a queued one leaves its queue)."""
    doc = _task(call)
    dequeue(call, doc)
    return change_status(call, doc, "failed", force=call.model.force)


@endpoint("tasks.close", request_data_model=req.TaskUpdateRequest)
def close(call: Call) -> dict:
    """Mark a stopped task closed."""
    return change_status(call, _task(call), "closed", force=call.model.force)


@endpoint("tasks.completed", request_data_model=req.CompletedRequest)
def completed(call: Call) -> dict:
    """Mark a task completed (and published with ``publish``)."""
    doc = _task(call)
    result = change_status(call, doc, "completed", force=call.model.force, completed=now_iso())
    if call.model.publish:
        result = publish_task(call, doc["id"], force=call.model.force, publish_models=True)
        return {**result, "published": 1}
    return {**result, "published": 0}


def publish_task(call: Call, task_id: str, *, force: bool, publish_models: bool) -> dict:
    """The real ``publish_task``: state machine checked unless forced; the last output model becomes ready."""
    doc = _task(call, task_id)
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


@endpoint("tasks.publish", request_data_model=req.PublishRequest)
def publish(call: Call) -> dict:
    """Publish a task (its output model becomes ready too unless ``publish_model`` is false)."""
    return publish_task(call, call.model.task, force=call.model.force, publish_models=call.model.publish_model)


@endpoint("tasks.publish_many", request_data_model=req.PublishManyRequest)
def publish_many(call: Call) -> dict:
    """Publish several tasks (per-id results)."""
    force, models = call.model.force, call.model.publish_model
    return run_batch(call.model.ids, lambda i: {
        "updated": publish_task(call, i, force=force, publish_models=models)["updated"]})


def dequeue(call: Call, doc: dict) -> dict:
    """Take a queued task off its queue (the real ``TaskBLL.dequeue``): ``{"removed": n}``; the queue service
    (``services/queues.py``) keeps the entries, so without it there is nothing to remove."""
    queue_id = (doc.get("execution") or {}).get("queue")
    removed = 0
    if doc.get("status") == "queued" and queue_id:
        try:
            from . import queues  # optional: the queue service lives in its own module
        except ImportError:
            queues = None
        if queues is not None and hasattr(queues, "remove_entry"):
            try:
                removed = queues.remove_entry(call, queue_id, doc["id"])
            except ApiError:
                removed = 0
    doc.pop("enqueue_status", None)
    return {"removed": removed} if queue_id and doc.get("status") == "queued" else {}


def stop_task(call: Call, task_id: str, force: bool) -> dict:
    """The real ``stop_task``: stopped at once unless a worker reported it recently (then ``stopping``)."""
    doc = _task(call, task_id)
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


@endpoint("tasks.stop", request_data_model=req.TaskUpdateRequest)
def stop(call: Call) -> dict:
    """Ask a running task to stop."""
    return stop_task(call, call.model.task, call.model.force)


@endpoint("tasks.stop_many", request_data_model=req.StopManyRequest)
def stop_many(call: Call) -> dict:
    """Stop several tasks (per-id results)."""
    return run_batch(call.model.ids, lambda i: {"updated": stop_task(call, i, call.model.force)["updated"]})


DELETED_PREFIX = "__DELETED__"


SOURCE_URL = re.compile(r'"source"\s*:\s*"([^"]+)"')


def event_urls(call: Call, task_or_model: str) -> set[str]:
    """Debug image urls and plot image sources of a task's or model's events (the real cleanup's url scan).

    The events layer's ``bll.events.event_file_urls`` answers when present (it knows how plots are stored);
    otherwise the event rows are read here.
    """
    try:
        from ..bll.events import event_file_urls
    except ImportError:
        event_file_urls = None
    if event_file_urls is not None:
        images, plots = event_file_urls(call, [task_or_model])
        return set(images) | set(plots)
    urls: set[str] = set()
    rows = call.store.reader().execute(
        "SELECT type, body FROM events WHERE company=? AND task=? AND type IN ('training_debug_image', 'plot')",
        (call.company, task_or_model)).fetchall()
    for kind, body in rows:
        event = json.loads(body)
        if kind == "training_debug_image":
            if event.get("url"):
                urls.add(event["url"])
            continue
        plot = event.get("plot_str")
        if plot is None and event.get("plot_data"):
            import base64
            import zlib
            plot = zlib.decompress(base64.b64decode(event["plot_data"])).decode("utf-8", "replace")
        urls.update(SOURCE_URL.findall(plot or ""))
    return urls


def cleanup_outputs(call: Call, doc: dict, *, force: bool, delete_output_models: bool,
                    update_children: bool, return_file_urls: bool = False) -> dict:
    """The real ``cleanup_task``: draft output models go, published ones need ``force``.

    Output models are the models whose ``task`` is this task. Draft models used as input by another task are
    kept (detached). With ``update_children`` (delete), children and published models point at
    ``__DELETED__<id>``; otherwise (reset) published models are detached. ``urls`` lists the files left
    behind (only with ``return_file_urls``).
    """
    task_id = doc["id"]
    tasks = call.store.all("tasks", call.company)
    if not force and any(t.get("parent") == task_id and t.get("status") == "published" for t in tasks):
        raise ApiError(400, 123, f"Task cannot be deleted: has children, use force=True (task={task_id})")
    outputs = [m for m in call.store.all("models", call.company) if m.get("task") == task_id]
    published = [m for m in outputs if m.get("ready")]
    drafts = [m for m in outputs if not m.get("ready")]
    if published and not force:
        raise ApiError(400, 123, f"Task cannot be deleted: has output models, use force=True (task={task_id})")
    in_use = {entry.get("model") for t in tasks if t["id"] != task_id
              for entry in (t.get("models") or {}).get("input") or []}
    urls = {"event_urls": set(), "artifact_urls": set(), "model_urls": set()}
    if return_file_urls:
        urls["event_urls"] = event_urls(call, task_id)
        urls["artifact_urls"] = {a["uri"] for a in (doc.get("execution") or {}).get("artifacts") or []
                                 if a.get("mode", "output") == "output" and a.get("uri")}
        urls["model_urls"] = {m["uri"] for m in drafts if m.get("uri") and m["id"] not in in_use}
    children = 0
    if update_children:
        for child in tasks:
            if child.get("parent") == task_id:
                child["parent"] = DELETED_PREFIX + task_id
                call.store.save("tasks", child)
                children += 1
    deleted = updated = 0
    if drafts and delete_output_models:
        for model in drafts:
            if model["id"] in in_use:
                model["task"] = None
                call.store.save("models", model)
                continue
            if return_file_urls:
                urls["event_urls"] |= event_urls(call, model["id"])
            delete_task_events(call, model["id"])
            call.store.delete("models", model["id"])
            deleted += 1
    elif drafts:
        published = published + drafts
    for model in published:
        if update_children:
            model["task"] = DELETED_PREFIX + task_id
            updated += 1
        else:
            model["task"] = None
        call.store.save("models", model)
    return {"deleted_models": deleted, "updated_models": updated, "updated_children": children,
            "urls": {k: sorted(v) for k, v in urls.items()} if return_file_urls else None}


def reset_task(call: Call, task_id: str, *, force: bool, clear_all: bool, delete_output_models: bool,
               return_file_urls: bool) -> dict:
    """Back to ``created``: output artifacts and models, runtime, metrics and events are cleared."""
    doc = _task(call, task_id)
    if doc["status"] == "published" and not force:
        raise ApiError(400, 110, f"Invalid task status (task={doc['id']}, status=published)")
    cleaned = cleanup_outputs(call, doc, force=force, update_children=False,
                              delete_output_models=delete_output_models, return_file_urls=return_file_urls)
    dequeued = dequeue(call, doc)
    if clear_all:
        doc["execution"] = {"artifacts": []}
        doc.pop("script", None)
    else:
        execution = doc.setdefault("execution", {})
        execution.pop("queue", None)
        execution["artifacts"] = [a for a in execution.get("artifacts", []) if a.get("mode") == "input"]
    doc["models"] = {"input": (doc.get("models") or {}).get("input", []), "output": []}
    doc.update(last_iteration=0, last_metrics={}, runtime={}, started=None, completed=None, published=None,
               active_duration=None)
    doc.get("output", {}).pop("result", None)
    doc.get("output", {}).pop("error", None)
    delete_task_events(call, doc["id"])
    call.data["status_reason"] = call.data["status_message"] = "reset"
    result = change_status(call, doc, "created", force=True)
    return {**result, "dequeued": dequeued, **cleaned}


def _reset_args(call: Call) -> dict:
    m = call.model
    return dict(force=m.force, clear_all=m.clear_all, delete_output_models=m.delete_output_models,
                return_file_urls=m.return_file_urls)


@endpoint("tasks.reset", request_data_model=req.ResetRequest)
def reset(call: Call) -> dict:
    """Reset one task (see :func:`reset_task`)."""
    result = reset_task(call, call.model.task, **_reset_args(call))
    if result["urls"] is None:
        result.pop("urls")
    return result


@endpoint("tasks.reset_many", request_data_model=req.ResetManyRequest)
def reset_many(call: Call) -> dict:
    """Reset several tasks (per-id results)."""
    args = _reset_args(call)

    def one(task_id: str) -> dict:
        res = reset_task(call, task_id, **args)
        res["dequeued"] = bool(res["dequeued"].get("removed"))
        if res["urls"] is None:
            res.pop("urls")
        return res
    return run_batch(call.model.ids, one)


def delete_task_events(call: Call, task_id: str) -> None:
    """Remove every event of a task (or model)."""
    with call.store.writing() as conn:
        conn.execute("DELETE FROM events WHERE company=? AND task=?", (call.company, task_id))


def delete_task(call: Call, task_id: str, *, force: bool, delete_output_models: bool,
                return_file_urls: bool) -> dict:
    """The real ``delete_task``: ``created`` or archived unless ``force``; events and draft outputs go."""
    doc = _task(call, task_id)
    if doc["status"] != "created" and "archived" not in (doc.get("system_tags") or []) and not force:
        raise ApiError(400, 123, f"Task cannot be deleted due to status, use force=True "
                                 f"(task={doc['id']}, expected=created, current={doc['status']})")
    cleaned = cleanup_outputs(call, doc, force=force, update_children=True,
                              delete_output_models=delete_output_models, return_file_urls=return_file_urls)
    dequeue(call, doc)
    delete_task_events(call, doc["id"])
    call.store.delete("tasks", doc["id"])
    projects.touch(call, doc.get("project"))
    return {"deleted": True, **cleaned}


def _delete_args(call: Call) -> dict:
    m = call.model
    return dict(force=m.force, delete_output_models=m.delete_output_models, return_file_urls=m.return_file_urls)


@endpoint("tasks.delete", request_data_model=req.DeleteRequest)
def delete(call: Call) -> dict:
    """Delete a task (``created`` or archived unless ``force``), its events and its draft output models."""
    return delete_task(call, call.model.task, **_delete_args(call))


@endpoint("tasks.delete_many", request_data_model=req.DeleteManyRequest)
def delete_many(call: Call) -> dict:
    """Delete several tasks (per-id results)."""
    args = _delete_args(call)
    return run_batch(call.model.ids, lambda i: delete_task(call, i, **args))


def _set_archived(call: Call, task_id: str, archived: bool) -> bool:
    """The real ``archive_task``/``unarchive_task``: a queued task is dequeued back to the status it was
    enqueued from; the request's status_message/status_reason are recorded."""
    doc = _task(call, task_id)
    tags = doc.get("system_tags") or []
    if archived and doc["status"] == "queued":
        previous = doc.get("enqueue_status") or "created"
        dequeue(call, doc)
        doc.setdefault("execution", {}).pop("queue", None)
        change_status(call, doc, previous, force=True)
    doc["system_tags"] = merge_tags(tags, ["archived"]) if archived else [t for t in tags if t != "archived"]
    doc["status_message"] = call.data.get("status_message") or ""
    doc["status_reason"] = call.data.get("status_reason") or ""
    _save(call, doc)
    return True


@endpoint("tasks.archive", request_data_model=req.ArchiveRequest)
def archive(call: Call) -> dict:
    """Add the ``archived`` system tag to tasks (every id must exist)."""
    ids = call.model.tasks
    for task_id in ids:
        _task(call, task_id)
    return {"archived": sum(_set_archived(call, task_id, True) for task_id in ids)}


archive_many_endpoints("tasks", req.TaskBatchRequest, _set_archived)
publicity_endpoints("tasks", INVALID)


def _move(call: Call, task_id: str, project_id: str | None) -> None:
    doc = _task(call, task_id)
    old = doc.get("project")
    doc["project"] = project_id
    _save(call, doc)
    projects.touch(call, old)


projects.move_endpoint("tasks", _move)


@endpoint("tasks.clone", request_data_model=req.CloneRequest)
def clone(call: Call) -> dict:
    """A new draft from a task: definition copied, outputs not; ``new_task_*``/``execution_overrides`` applied."""
    source = _task_read(call)
    doc = new_task_doc(call, {"name": source["name"], "type": source["type"]})
    doc, new_project = task_bll.clone_task(call, source, doc, call.model.model_dump(exclude_unset=True))
    _save(call, doc)
    return {"id": doc["id"], **({"new_project": new_project} if new_project else {})}


@endpoint("tasks.ping", request_data_model=req.TaskRequest)
def ping(call: Call) -> dict:
    """Keep-alive: refresh last_update."""
    doc = _task(call)
    _save(call, doc, changed=False)
    return {}


# -- edits ----------------------------------------------------------------------------------------
@endpoint("tasks.edit")
def edit(call: Call) -> dict:
    """Replace top-level fields of a task (only in ``created`` unless ``force``)."""
    doc = _task(call)
    if doc["status"] != "created" and not call.data.get("force"):
        raise ApiError(400, 110, f"Invalid task status (expected=created, status={doc['status']})")
    data = dict(call.data)
    task_bll.models_prepare_for_save(requested_version(call), data)
    fields = {k: data[k] for k in EDITABLE if k in data}
    task_bll.params_prepare_for_save(fields, previous=doc)
    if "output_dest" in call.data:
        fields["output"] = {**doc.get("output", {}), "destination": call.data["output_dest"]}
    if "type" in fields and fields["type"] not in TASK_TYPES:
        raise bad_request(f"Invalid task type {fields['type']!r}")
    if fields.get("project"):
        get_or_raise(call, "projects", fields["project"], projects.INVALID)
    if "name" in fields:
        fields["name"] = _check_name(fields["name"])
    for key in EMBEDDED:
        if isinstance(fields.get(key), dict) and isinstance(doc.get(key), dict):
            fields[key] = {**doc[key], **fields[key]}
    if "execution" in fields:
        fields["execution"] = {"artifacts": [], **(fields["execution"] or {})}
    if "models" in fields:
        fields["models"] = {"input": [], "output": [], **(fields["models"] or {})}
    doc.update(fields)
    _save(call, doc)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.update", request_data_model=req.TaskUpdateFieldsRequest)
def update(call: Call) -> dict:
    """Update name, comment, tags, system_tags or project (any status)."""
    doc = _task(call, call.model.task)
    fields = call.model.model_dump(exclude_unset=True, include={"name", "comment", "tags", "system_tags", "project",
                                                                 "status_message", "created"})
    if "name" in fields:
        fields["name"] = _check_name(fields["name"])
    if fields.get("project"):
        get_or_raise(call, "projects", fields["project"], projects.INVALID)
    doc.update(fields)
    _save(call, doc)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.set_requirements", request_data_model=req.SetRequirementsRequest)
def set_requirements(call: Call) -> dict:
    """Store the script's requirements."""
    doc = _task(call, call.model.task)
    doc.setdefault("script", {})["requirements"] = call.model.requirements
    _save(call, doc)
    return {"updated": 1, "fields": {"script.requirements": call.model.requirements}}


def _items(models: list) -> list[dict]:
    return [m.model_dump(exclude_none=True) for m in models]


@endpoint("tasks.edit_hyper_params", request_data_model=req.EditHyperParamsRequest)
def edit_hyper_params(call: Call) -> dict:
    """Add or replace hyperparameters (``replace_hyperparams``: none, section or all)."""
    m: req.EditHyperParamsRequest = call.model
    doc = _task(call, m.task)
    params = _items(m.hyperparams)
    _check_updatable(call, doc, force=m.force, allow_all=_properties_only(params))
    current = doc.setdefault("hyperparams", {})
    if m.replace_hyperparams == "all":
        current.clear()
    if m.replace_hyperparams == "section":
        for section in {p["section"] for p in params}:
            current.pop(section, None)
    for p in params:
        if "name" not in p:
            raise bad_request("Validation error: hyperparams items need section and name")
        item = {k: p[k] for k in ("section", "name", "value", "type", "description") if k in p}
        current.setdefault(p["section"], {})[p["name"]] = item
    _save(call, doc)
    return {"updated": 1}


@endpoint("tasks.get_hyper_params", request_data_model=req.GetHyperParamsRequest)
def get_hyper_params(call: Call) -> dict:
    """Hyperparameters of tasks, as lists sorted by section and name."""
    def params(task_id: str) -> list[dict]:
        sections = (_task_read(call, task_id).get("hyperparams") or {}).values()
        return sorted((p for section in sections for p in section.values()),
                      key=lambda p: (str(p.get("section")), str(p.get("name"))))
    return {"params": [{"task": t, "hyperparams": params(t)} for t in call.model.tasks]}


@endpoint("tasks.delete_hyper_params", request_data_model=req.DeleteHyperParamsRequest)
def delete_hyper_params(call: Call) -> dict:
    """Delete whole sections (no ``name``) or single parameters."""
    m: req.DeleteHyperParamsRequest = call.model
    doc = _task(call, m.task)
    params = _items(m.hyperparams)
    _check_updatable(call, doc, force=m.force, allow_all=_properties_only(params))
    current = doc.setdefault("hyperparams", {})
    whole = {p["section"] for p in params if not p.get("name")}
    if any(p.get("name") and p["section"] in whole for p in params):
        raise ApiError(400, 15, "Cannot delete section field if the whole section was scheduled for deletion")
    deleted = 0
    for p in params:
        section = current.get(p["section"])
        if section is None:
            continue
        if not p.get("name"):
            current.pop(p["section"])
            deleted += 1
        elif section.pop(p["name"], None) is not None:
            deleted += 1
    _save(call, doc)
    return {"deleted": deleted}


@endpoint("tasks.edit_configuration", request_data_model=req.EditConfigurationRequest)
def edit_configuration(call: Call) -> dict:
    """Add or replace configuration items."""
    m: req.EditConfigurationRequest = call.model
    doc = _task(call, m.task)
    _check_updatable(call, doc, force=m.force)
    if m.replace_configuration:
        doc["configuration"] = {}
    current = doc.setdefault("configuration", {})
    for item in _items(m.configuration):
        if not item["name"]:
            raise bad_request("Validation error: Empty configuration name is not allowed")
        current[item["name"]] = {k: item[k] for k in ("name", "value", "type", "description") if k in item}
    _save(call, doc)
    return {"updated": 1}


@endpoint("tasks.delete_configuration", request_data_model=req.DeleteConfigurationRequest)
def delete_configuration(call: Call) -> dict:
    """Delete configuration items by name."""
    m: req.DeleteConfigurationRequest = call.model
    doc = _task(call, m.task)
    _check_updatable(call, doc, force=m.force)
    current = doc.setdefault("configuration", {})
    deleted = sum(current.pop(name, None) is not None for name in set(m.configuration))
    _save(call, doc)
    return {"deleted": deleted}


@endpoint("tasks.get_configurations", request_data_model=req.GetConfigurationsRequest)
def get_configurations(call: Call) -> dict:
    """Configuration items of tasks (optionally only some names), sorted by name."""
    names = call.model.names
    return {"configurations": [
        {"task": t, "configuration": sorted((v for k, v in (_task_read(call, t).get("configuration") or {}).items()
                                             if not names or k in names), key=lambda c: str(c.get("name")))}
        for t in call.model.tasks]}


@endpoint("tasks.get_configuration_names", request_data_model=req.GetConfigurationNamesRequest)
def get_configuration_names(call: Call) -> dict:
    """Configuration item names of tasks (items with an empty value skipped unless ``skip_empty`` is false)."""
    skip_empty = call.model.skip_empty

    def names(task_id: str) -> list[str]:
        items = (_task_read(call, task_id).get("configuration") or {}).items()
        return sorted(k for k, v in items if not skip_empty or (v or {}).get("value"))
    return {"configurations": [{"task": t, "names": names(t)} for t in call.model.tasks]}


@endpoint("tasks.add_or_update_artifacts", request_data_model=req.AddOrUpdateArtifactsRequest)
def add_or_update_artifacts(call: Call) -> dict:
    """Upsert artifacts by (key, mode); the real service always forces (created or in_progress)."""
    m: req.AddOrUpdateArtifactsRequest = call.model
    doc = _task(call, m.task)
    _check_updatable(call, doc, force=True)
    current = doc.setdefault("execution", {}).setdefault("artifacts", [])
    position: dict[tuple, int] = {}  # (key, mode) -> index: linear in the number of artifacts, not quadratic
    for i, old in enumerate(current):
        position.setdefault((old.get("key"), old.get("mode", "output")), i)
    for art in m.artifacts:
        art = art.model_dump(exclude_none=True)
        where = position.setdefault((art["key"], art["mode"]), len(current))
        if where < len(current):
            current[where] = art
        else:
            current.append(art)
    _save(call, doc)
    return {"updated": len(m.artifacts)}


@endpoint("tasks.delete_artifacts", request_data_model=req.DeleteArtifactsRequest)
def delete_artifacts(call: Call) -> dict:
    """Delete artifacts by (key, mode)."""
    m: req.DeleteArtifactsRequest = call.model
    doc = _task(call, m.task)
    _check_updatable(call, doc, force=True)
    current = doc.setdefault("execution", {}).setdefault("artifacts", [])
    gone = {(a.key, a.mode) for a in m.artifacts}
    kept = [a for a in current if (a.get("key"), a.get("mode", "output")) not in gone]
    doc["execution"]["artifacts"] = kept
    _save(call, doc)
    return {"deleted": len(current) - len(kept)}


@endpoint("tasks.add_or_update_model", request_data_model=req.AddOrUpdateModelRequest)
def add_or_update_model(call: Call) -> dict:
    """Attach an input or output model by name (an output with ``iteration`` raises last_iteration)."""
    m: req.AddOrUpdateModelRequest = call.model
    doc = _task(call, m.task)
    _check_updatable(call, doc, force=True)
    entry = {"name": m.name, "model": m.model, "updated": now_iso()}
    models = doc.setdefault("models", {}).setdefault(m.type, [])
    for i, old in enumerate(models):
        if old.get("name") == entry["name"]:
            models[i] = entry
            break
    else:
        models.append(entry)
    if m.type == "output" and m.iteration is not None:
        doc["last_iteration"] = max(doc.get("last_iteration") or 0, m.iteration)
    _save(call, doc)
    return {"updated": 1}


@endpoint("tasks.delete_models", request_data_model=req.DeleteModelsRequest)
def delete_models(call: Call) -> dict:
    """Detach models by (name, type)."""
    m: req.DeleteModelsRequest = call.model
    doc = _task(call, m.task)
    _check_updatable(call, doc, force=True)
    deleted = 0
    for item in m.models:
        lst = doc.setdefault("models", {}).setdefault(item.type, [])
        before = len(lst)
        lst[:] = [e for e in lst if e.get("name") != item.name]
        deleted += before - len(lst)
    _save(call, doc)
    return {"updated": 1 if deleted else 0}
