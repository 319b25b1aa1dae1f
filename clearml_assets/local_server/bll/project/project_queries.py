"""Project statistics, tags and distinct values (clearml-server ``bll/project/project_queries.py``): status
counts and run time per project with its sub-projects, own contents, dataset sizes, tags, task parents."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from ....timestamps import parse_clearml_time
from ...core import Call
from ...core.constants import TASK_STATUSES
from ...store.filters import list_matcher
from .sub_projects import children, ids_with_children

STATUSES = TASK_STATUSES


def archived(doc: dict) -> bool:
    return "archived" in (doc.get("system_tags") or [])


def _matches(doc: dict, filter_: Mapping[str, Any] | None) -> bool:
    for field, value in (filter_ or {}).items():
        if not list_matcher(value, field)(doc.get(field)):
            return False
    return True


def _tasks_of(call: Call, project_ids: Iterable[str], filter_=None, users=None) -> list[dict]:
    ids = set(project_ids)
    return [t for t in call.store.all("tasks", call.company, allow_public=True)
            if t.get("project") in ids and _matches(t, filter_) and (not users or t.get("user") in users)]


def project_stats(call: Call, project_ids: Sequence[str], *, state: str | None = "active",
                  include_children: bool = True, search_hidden: bool = False, filter_=None,
                  users=None) -> tuple[dict, dict]:
    """The real ``get_project_stats``: per project (with its sub-projects) status counts, runtime, 24h count."""
    kids = children(call, project_ids, search_hidden) if include_children else {p: [] for p in project_ids}
    threshold = datetime.now(timezone.utc) - timedelta(hours=24)
    states = [s for s in ("active", "archived") if not state or s == state]
    stats, sub_projects = {}, {}
    for pid in project_ids:
        scope = [pid] + [c["id"] for c in kids.get(pid, [])]
        tasks = _tasks_of(call, scope, filter_, users)
        stats[pid] = {}
        for section in states:
            chosen = [t for t in tasks if archived(t) == (section == "archived")]
            counts = dict.fromkeys(STATUSES, 0)
            runtime = recent = 0
            last_started = None
            for t in chosen:
                counts[t.get("status") or "unknown"] = counts.get(t.get("status") or "unknown", 0) + 1
                started, completed = parse_clearml_time(t.get("started")), parse_clearml_time(t.get("completed"))
                if started and completed and completed > started:
                    runtime += int((completed - started).total_seconds())
                if completed and completed > threshold:
                    recent += 1
                if started and (last_started is None or started > last_started):
                    last_started = started
            stats[pid][section] = {
                "status_count": counts, "total_tasks": sum(counts.values()), "total_runtime": runtime,
                "completed_tasks_24h": recent,
                "last_task_run": last_started.isoformat() if last_started else None,
            }
        sub_projects[pid] = sorted(({"id": c["id"], "name": c["name"]} for c in kids.get(pid, [])),
                                   key=lambda c: c["name"])
    return stats, sub_projects


def own_contents(call: Call, project_ids: Sequence[str], filter_=None, users=None) -> dict:
    """Tasks and models directly in each project (not in sub-projects)."""
    out = {}
    for pid in project_ids:
        tasks = _tasks_of(call, [pid], filter_, users)
        models = [m for m in call.store.all("models", call.company, allow_public=True)
                  if m.get("project") == pid and _matches(m, filter_) and (not users or m.get("user") in users)]
        out[pid] = {"own_tasks": len(tasks), "own_models": len(models)}
    return out


def dataset_stats(call: Call, project_ids: Sequence[str]) -> dict:
    """File count and size of the latest non-archived task with a runtime in each project."""
    out = {}
    for pid in project_ids:
        tasks = [t for t in _tasks_of(call, [pid]) if t.get("runtime") and not archived(t)]
        if tasks:
            runtime = max(tasks, key=lambda t: t.get("last_update") or "")["runtime"]
            out[pid] = {"file_count": runtime.get("ds_file_count", 0), "total_size": runtime.get("ds_total_size", 0)}
    return out


def active_user_projects(call: Call, project_ids: Sequence[str], users: Sequence[str]) -> set[str]:
    """Projects (with sub-projects counted for their ancestors) holding tasks of these users."""
    active = set()
    projects = {p["id"]: p for p in call.store.all("projects", call.company, allow_public=True)}
    for t in call.store.all("tasks", call.company, allow_public=True):
        if t.get("user") in users and t.get("project") in projects:
            active.add(t["project"])
            active.update(projects[t["project"]].get("path") or [])
    return active


def entity_tags(call: Call, collection: str, projects: Sequence[str] | None, include_system: bool,
                filter_: Mapping | None) -> dict:
    """``projects.get_task_tags``/``get_model_tags``: tags used by tasks/models under the projects."""
    scope = set(ids_with_children(call, projects)) if projects else None
    docs = (d for d in call.store.all(collection, call.company, allow_public=True)
            if scope is None or d.get("project") in scope)
    return _tags_of(docs, include_system, filter_)


def project_tags(call: Call, projects: Sequence[str] | None, include_system: bool, filter_) -> dict:
    """``projects.get_project_tags``: the projects' own tags."""
    docs = (d for d in call.store.all("projects", call.company, allow_public=True)
            if not projects or d["id"] in projects)
    return _tags_of(docs, include_system, filter_)


def _tags_of(docs: Iterable[dict], include_system: bool, filter_: Mapping | None) -> dict:
    """The sorted union of the tags (and system tags when asked) of the documents matching ``filter_``."""
    tags, system = set(), set()
    for doc in docs:
        if _matches(doc, filter_):
            tags.update(doc.get("tags") or [])
            system.update(doc.get("system_tags") or [])
    out = {"tags": sorted(tags)}
    if include_system:
        out["system_tags"] = sorted(system)
    return out


def task_parents(call: Call, projects: Sequence[str] | None, include_subprojects: bool,
                 state: str | None) -> list[dict]:
    """The real ``get_task_parents``: distinct parents of the tasks, as ``{id, name, project: {id, name}}``."""
    tasks = call.store.all("tasks", call.company)
    if projects:
        scope = set(ids_with_children(call, projects) if include_subprojects else projects)
        tasks = [t for t in tasks if t.get("project") in scope]
    else:
        tasks = [t for t in tasks if "hidden" not in (t.get("system_tags") or [])]
    if state == "archived":
        tasks = [t for t in tasks if archived(t)]
    elif state == "active":
        tasks = [t for t in tasks if not archived(t)]
    parents = []
    for pid in {t.get("parent") for t in tasks if t.get("parent")}:
        doc = call.store.get("tasks", pid, call.company, allow_public=True)
        if doc is None:
            continue
        row = {"id": doc["id"], "name": doc["name"]}
        if doc.get("project"):
            project = call.store.get("projects", doc["project"], call.company, allow_public=True)
            row["project"] = {"id": doc["project"], **({"name": project["name"]} if project else {})}
        parents.append(row)
    return sorted(parents, key=lambda p: p["name"])


def hyperparam_values(call: Call, projects: Sequence[str] | None, section: str, name: str,
                      include_subprojects: bool, allow_public: bool) -> dict:
    """Distinct values of one hyperparameter over the projects' tasks, sorted."""
    tasks = call.store.all("tasks", call.company, allow_public=allow_public)
    if projects:
        scope = set(ids_with_children(call, projects) if include_subprojects else projects)
        tasks = [t for t in tasks if t.get("project") in scope]
    values = {((t.get("hyperparams") or {}).get(section) or {}).get(name, {}).get("value") for t in tasks}
    values.discard(None)
    return {"total": len(values), "values": sorted(values)}
