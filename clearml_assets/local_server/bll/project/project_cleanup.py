"""Deleting projects (clearml-server ``bll/project/project_cleanup.py``): contents detached, or deleted with their
events, and the files they leave behind listed."""

from __future__ import annotations

from ...core import ApiError, Call
from ..access import get_for_writing
from ..task.task_cleanup import delete_task_events, event_urls
from .project_queries import archived
from .sub_projects import INVALID, ids_with_children


def validate_delete(call: Call, project_id: str) -> dict:
    """Counts of the tasks and models (all, and not archived) under a project and its sub-projects."""
    get_for_writing(call, "projects", project_id, INVALID)
    scope = set(ids_with_children(call, [project_id]))
    out = {}
    for collection in ("tasks", "models"):
        docs = [d for d in call.store.all(collection, call.company) if d.get("project") in scope]
        out[collection] = len(docs)
        out[f"non_archived_{collection}"] = sum(not archived(d) for d in docs)
    return out


def delete_project(call: Call, project_id: str, *, force: bool, delete_contents: bool) -> dict:
    """The real ``delete_project``: non-archived contents need ``force``; contents are detached or deleted."""
    get_for_writing(call, "projects", project_id, INVALID)
    scope = ids_with_children(call, [project_id])
    scope_set = set(scope)
    tasks = [t for t in call.store.all("tasks", call.company) if t.get("project") in scope_set]
    models = [m for m in call.store.all("models", call.company) if m.get("project") in scope_set]
    if not force:
        for docs, code, what in ((tasks, 402, "tasks"), (models, 405, "models")):
            if any(not archived(d) for d in docs):
                raise ApiError(400, code, f"project has associated {what}: use force=true to delete "
                                          f"(id={project_id})")
    result: dict = {"deleted": 0, "disassociated_tasks": 0, "deleted_models": 0, "deleted_tasks": 0, "urls": None}
    if not delete_contents:
        for collection, docs in (("models", models), ("tasks", tasks)):
            for doc in docs:
                doc["project"] = None
                call.store.save(collection, doc)
        result["disassociated_tasks"] = len(tasks)
    else:
        _unlink_from_outside(call, scope_set, {m["id"] for m in models}, {t["id"] for t in tasks})
        urls = _delete_contents(call, tasks, models)
        result.update(deleted_models=len(models), deleted_tasks=len(tasks),
                      urls={k: sorted(v) for k, v in urls.items()})
    for pid in scope:
        call.store.delete("projects", pid)
    result["deleted"] = len(scope)
    return result


def _unlink_from_outside(call: Call, scope: set[str], model_ids: set[str], task_ids: set[str]) -> None:
    """Tasks and models outside the deleted projects stop referring to the deleted models and tasks."""
    for t in call.store.all("tasks", call.company):
        if t.get("project") in scope:
            continue
        changed = False
        for entry in (t.get("models") or {}).get("input") or []:
            if entry.get("model") in model_ids:
                entry["model"] = None
                changed = True
        if t.get("parent") in task_ids:
            t["parent"] = None
            changed = True
        if changed:
            call.store.save("tasks", t)
    for m in call.store.all("models", call.company):
        if m.get("project") not in scope and m.get("task") in task_ids:
            m["task"] = None
            call.store.save("models", m)


def _delete_contents(call: Call, tasks: list[dict], models: list[dict]) -> dict[str, set]:
    """Delete the tasks and models with their events; returns the files they leave behind."""
    urls: dict[str, set] = {"model_urls": set(), "event_urls": set(), "artifact_urls": set()}
    for m in models:
        if m.get("uri"):
            urls["model_urls"].add(m["uri"])
        urls["event_urls"] |= event_urls(call, m["id"])
        delete_task_events(call, m["id"])
        call.store.delete("models", m["id"])
    for t in tasks:
        urls["event_urls"] |= event_urls(call, t["id"])
        urls["artifact_urls"] |= {a["uri"] for a in (t.get("execution") or {}).get("artifacts") or []
                                  if a.get("mode", "output") == "output" and a.get("uri")}
        delete_task_events(call, t["id"])
        call.store.delete("tasks", t["id"])
    return urls
