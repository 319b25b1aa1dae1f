"""Deleting and resetting tasks (clearml-server ``bll/task/task_cleanup.py``): output models, events and the files
they leave behind, children pointed at ``__DELETED__<id>``."""

from __future__ import annotations

from ...core import ApiError, Call
from ...core.constants import DELETED_PREFIX
from ..event.event_bll import event_file_urls
from ..project.sub_projects import touch
from .task_bll import get_task
from .task_operations import change_status, dequeue


def delete_task_events(call: Call, task_id: str) -> None:
    """Remove every event of a task (or model)."""
    with call.store.writing() as conn:
        conn.execute("DELETE FROM events WHERE company=? AND task=?", (call.company, task_id))


def event_urls(call: Call, task_or_model: str) -> set[str]:
    """Debug image urls and plot image sources of a task's or model's events (the real cleanup's url scan)."""
    images, plots = event_file_urls(call, [task_or_model])
    return set(images) | set(plots)


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
    children = _orphan_children(call, tasks, task_id) if update_children else 0
    deleted = 0
    if drafts and delete_output_models:
        deleted = _delete_drafts(call, drafts, in_use, urls["event_urls"] if return_file_urls else None)
    elif drafts:
        published = published + drafts
    for model in published:
        model["task"] = DELETED_PREFIX + task_id if update_children else None
        call.store.save("models", model)
    if call.release.delete_lists_no_event_urls:
        urls["event_urls"] = set()  # after 1.9.2 the events' files are scheduled for deletion, not listed
    return {"deleted_models": deleted, "updated_models": len(published) if update_children else 0,
            "updated_children": children,
            "urls": {k: sorted(v) for k, v in urls.items()} if return_file_urls else None}


def _orphan_children(call: Call, tasks: list[dict], task_id: str) -> int:
    """Point the task's children at ``__DELETED__<id>``; returns how many."""
    children = 0
    for child in tasks:
        if child.get("parent") == task_id:
            child["parent"] = DELETED_PREFIX + task_id
            call.store.save("tasks", child)
            children += 1
    return children


def _delete_drafts(call: Call, drafts: list[dict], in_use: set, event_url_sink: set | None) -> int:
    """Delete draft output models (with their events) except those another task uses as input, which are
    detached; their events' files go to ``event_url_sink`` when given. Returns how many were deleted."""
    deleted = 0
    for model in drafts:
        if model["id"] in in_use:
            model["task"] = None
            call.store.save("models", model)
            continue
        if event_url_sink is not None:
            event_url_sink |= event_urls(call, model["id"])
        delete_task_events(call, model["id"])
        call.store.delete("models", model["id"])
        deleted += 1
    return deleted


def reset_task(call: Call, task_id: str, *, force: bool, clear_all: bool, delete_output_models: bool,
               return_file_urls: bool) -> dict:
    """Back to ``created``: output artifacts and models, runtime, metrics and events are cleared."""
    doc = get_task(call, task_id)
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


def delete_task(call: Call, task_id: str, *, force: bool, delete_output_models: bool,
                return_file_urls: bool) -> dict:
    """The real ``delete_task``: ``created`` or archived unless ``force``; events and draft outputs go."""
    doc = get_task(call, task_id)
    if doc["status"] != "created" and "archived" not in (doc.get("system_tags") or []) and not force:
        raise ApiError(400, 123, f"Task cannot be deleted due to status, use force=True "
                                 f"(task={doc['id']}, expected=created, current={doc['status']})")
    cleaned = cleanup_outputs(call, doc, force=force, update_children=True,
                              delete_output_models=delete_output_models, return_file_urls=return_file_urls)
    dequeue(call, doc)
    delete_task_events(call, doc["id"])
    call.store.delete("tasks", doc["id"])
    touch(call, doc.get("project"))
    return {"deleted": True, **cleaned}
