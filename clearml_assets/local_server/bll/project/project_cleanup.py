"""Deleting projects (clearml-server ``bll/project/project_cleanup.py``): contents detached, or deleted with their
events, and the files they leave behind listed."""

from __future__ import annotations

from ...core import ApiError, Call
from ..access import get_for_writing
from ..task.task_cleanup import delete_task_events, event_urls
from .project_queries import archived
from .sub_projects import INVALID, ids_with_children


def validate_delete(call: Call, project_id: str) -> dict:
    """Counts of the tasks and models (all, and not archived) under a project and its sub-projects; after 1.9.2
    also its pipelines with a controller and datasets with a version not archived, and its reports, which the
    tasks then leave out (they live in the pipelines' and datasets' own projects)."""
    get_for_writing(call, "projects", project_id, INVALID)
    scope = set(ids_with_children(call, [project_id]))
    if not call.release.project_delete_counts_pipelines_and_datasets:
        return {f"{prefix}{c}": n for c in ("tasks", "models")
                for prefix, n in (("", _count(call, c, scope)), ("non_archived_", _count(call, c, scope, True)))}
    pipelines, datasets = _system_projects(call, scope)
    regular = scope - set(pipelines) - set(datasets)
    tasks = [t for t in call.store.all("tasks", call.company) if t.get("project") in regular]
    reports = [t for t in tasks if "reports" in (t.get("system_tags") or [])]
    tasks = [t for t in tasks if "reports" not in (t.get("system_tags") or [])]
    return {"pipelines": len(_active_pipelines(call, pipelines)), "datasets": len(_datasets_with_data(call, datasets)),
            "tasks": len(tasks), "non_archived_tasks": sum(not archived(t) for t in tasks),
            "models": _count(call, "models", regular), "non_archived_models": _count(call, "models", regular, True),
            "reports": len(reports), "non_archived_reports": sum(not archived(t) for t in reports)}


def _count(call: Call, collection: str, scope: set[str], active_only: bool = False) -> int:
    return sum(1 for d in call.store.all(collection, call.company)
               if d.get("project") in scope and not (active_only and archived(d)))


def _system_projects(call: Call, scope: set[str]) -> tuple[list[str], list[str]]:
    """The pipeline and dataset projects under a project (not the ``.pipelines``/``.datasets`` folders)."""
    projects = [p for p in call.store.all("projects", call.company) if p["id"] in scope]
    return ([p["id"] for p in projects if "pipeline" in (p.get("system_tags") or [])
             and p.get("basename") != ".pipelines"],
            [p["id"] for p in projects if "dataset" in (p.get("system_tags") or [])
             and p.get("basename") != ".datasets"])


def _active_pipelines(call: Call, pipelines: list[str]) -> set[str]:
    """The pipeline projects with a controller task that is not archived."""
    wanted = set(pipelines)
    return {t["project"] for t in call.store.all("tasks", call.company)
            if t.get("project") in wanted and t.get("type") == "controller" and not archived(t)}


def _datasets_with_data(call: Call, datasets: list[str]) -> set[str]:
    """The dataset projects with a version (task) that is not archived."""
    wanted = set(datasets)
    return {t["project"] for t in call.store.all("tasks", call.company)
            if t.get("project") in wanted and not archived(t)}


def delete_project(call: Call, project_id: str, *, force: bool, delete_contents: bool) -> dict:
    """The real ``delete_project``: non-archived contents need ``force``; contents are detached or deleted."""
    get_for_writing(call, "projects", project_id, INVALID)
    scope = ids_with_children(call, [project_id])
    scope_set = set(scope)
    tasks = [t for t in call.store.all("tasks", call.company) if t.get("project") in scope_set]
    models = [m for m in call.store.all("models", call.company) if m.get("project") in scope_set]
    if not force:
        _refuse_active_contents(call, project_id, scope_set, tasks, models)
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
        if call.release.delete_lists_no_event_urls:
            urls["event_urls"] = set()
        result.update(deleted_models=len(models), deleted_tasks=len(tasks),
                      urls={k: sorted(v) for k, v in urls.items()})
    for pid in scope:
        call.store.delete("projects", pid)
    result["deleted"] = len(scope)
    return result


def _refuse_active_contents(call: Call, project_id: str, scope: set[str], tasks: list[dict], models: list[dict]
                            ) -> None:
    """A delete without ``force`` of a project holding what is not archived: 400 naming it (after 1.9.2 pipelines
    with a controller and datasets with a version come first, and the rest is counted without them)."""
    if call.release.project_delete_counts_pipelines_and_datasets:
        pipelines, datasets = _system_projects(call, scope)
        if _active_pipelines(call, pipelines):
            raise ApiError(400, 413, f"project has associated pipelines with active controllers: please archive "
                                     f"all the controllers or use force=true (id={project_id})")
        if _datasets_with_data(call, datasets):
            raise ApiError(400, 406, f"project has associated non-empty datasets: please delete all the dataset "
                                     f"versions or use force=true (id={project_id})")
        regular = scope - set(pipelines) - set(datasets)
        tasks = [t for t in tasks if t.get("project") in regular]
        models = [m for m in models if m.get("project") in regular]
    for docs, code, what in ((tasks, 402, "tasks"), (models, 405, "models")):
        if any(not archived(d) for d in docs):
            raise ApiError(400, code, f"project has associated {what}: use force=true to delete (id={project_id})")


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
