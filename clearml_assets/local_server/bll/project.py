"""Project logic (clearml-server ``bll/project``): names and paths, sub-projects, statistics, tags, deletion."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from ...timestamps import parse_clearml_time
from ..queries import list_matcher, now_iso
from ..registry import ApiError, Call
from ..services.common import get_for_writing, get_or_raise, new_id

INVALID = (401, "Invalid project id")
STATUSES = ("created", "queued", "in_progress", "stopped", "publishing", "published", "closed", "failed",
            "completed", "unknown")


def validate_name(name: Any) -> str:
    """The real ``_validate_project_name``: empty path parts dropped; nothing left is 400/407."""
    parts = [p for p in str(name or "").strip().split("/") if p]
    if not parts:
        raise ApiError(400, 407, f"Invalid project name: name={name}")
    return "/".join(parts)


def find_by_name(call: Call, name: str) -> dict | None:
    """The company's project of exactly this name."""
    for doc in call.store.all("projects", call.company):
        if doc["name"] == name:
            return doc
    return None


def ensure_project(call: Call, name: str, **fields) -> dict:
    """Find a project by name or create it, creating every missing parent like the real server."""
    name = validate_name(name)
    existing = find_by_name(call, name)
    if existing is not None:
        return existing
    parent = ensure_project(call, name.rsplit("/", 1)[0]) if "/" in name else None
    now = now_iso()
    doc = {
        "id": new_id(), "company": call.company, "user": call.user, "name": name,
        "basename": name.split("/")[-1], "description": fields.get("description") or "",
        "tags": sorted(set(fields.get("tags") or [])), "system_tags": sorted(set(fields.get("system_tags") or [])),
        "default_output_destination": fields.get("default_output_destination"),
        "created": now, "last_update": now, "parent": parent["id"] if parent else None,
        "path": (parent.get("path", []) + [parent["id"]]) if parent else [],
    }
    call.store.save("projects", doc)
    return doc


def touch(call: Call, project_id: str | None) -> None:
    """Update a project's last_update (the real server does it when its tasks change)."""
    if project_id:
        doc = call.store.get("projects", project_id, call.company)
        if doc is not None:
            doc["last_update"] = now_iso()
            call.store.save("projects", doc)


def children(call: Call, project_ids: Iterable[str], search_hidden: bool = True) -> dict[str, list[dict]]:
    """Every descendant of each project (by ``path``)."""
    wanted = set(project_ids)
    out: dict[str, list[dict]] = {p: [] for p in wanted}
    for doc in call.store.all("projects", call.company, allow_public=True):
        if not search_hidden and "hidden" in (doc.get("system_tags") or []):
            continue
        for ancestor in doc.get("path") or []:
            if ancestor in wanted:
                out[ancestor].append(doc)
    return out


def ids_with_children(call: Call, project_ids: Iterable[str]) -> list[str]:
    """The projects and all their descendants."""
    ids = [p for p in project_ids if p]
    found = children(call, ids)
    return list(dict.fromkeys(ids + [c["id"] for kids in found.values() for c in kids]))


def with_subprojects(call: Call, data: dict) -> dict:
    """The real ``process_include_subprojects``: ``project`` widened to the sub-projects when asked."""
    include = data.pop("include_subprojects", False)
    project = data.get("project")
    if project and include:
        data["project"] = ids_with_children(call, project if isinstance(project, list) else [project])
    return data


def target_project(call: Call) -> str | None:
    """``project`` (an id, checked) or ``project_name`` (found or created) of a move request; None: root."""
    if call.data.get("project_name"):
        return ensure_project(call, call.data["project_name"])["id"]
    project_id = call.data.get("project")
    if project_id:
        get_for_writing(call, "projects", project_id, INVALID)
    return project_id or None


# -- statistics -------------------------------------------------------------------------------------------
def _archived(doc: dict) -> bool:
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
            chosen = [t for t in tasks if _archived(t) == (section == "archived")]
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
        tasks = [t for t in _tasks_of(call, [pid]) if t.get("runtime") and not _archived(t)]
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


# -- tags --------------------------------------------------------------------------------------------------
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
        tasks = [t for t in tasks if _archived(t)]
    elif state == "active":
        tasks = [t for t in tasks if not _archived(t)]
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


# -- delete / move -------------------------------------------------------------------------------------
def validate_delete(call: Call, project_id: str) -> dict:
    """Counts of the tasks and models (all, and not archived) under a project and its sub-projects."""
    get_for_writing(call, "projects", project_id, INVALID)
    scope = set(ids_with_children(call, [project_id]))
    out = {}
    for collection in ("tasks", "models"):
        docs = [d for d in call.store.all(collection, call.company) if d.get("project") in scope]
        out[collection] = len(docs)
        out[f"non_archived_{collection}"] = sum(not _archived(d) for d in docs)
    return out


def delete_project(call: Call, project_id: str, *, force: bool, delete_contents: bool) -> dict:
    """The real ``delete_project``: non-archived contents need ``force``; contents are detached or deleted."""
    from ..services import tasks as task_service

    get_for_writing(call, "projects", project_id, INVALID)
    scope = ids_with_children(call, [project_id])
    scope_set = set(scope)
    tasks = [t for t in call.store.all("tasks", call.company) if t.get("project") in scope_set]
    models = [m for m in call.store.all("models", call.company) if m.get("project") in scope_set]
    if not force:
        for docs, code, what in ((tasks, 402, "tasks"), (models, 405, "models")):
            if any(not _archived(d) for d in docs):
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
        urls = {"model_urls": set(), "event_urls": set(), "artifact_urls": set()}
        model_ids = {m["id"] for m in models}
        task_ids = {t["id"] for t in tasks}
        for t in call.store.all("tasks", call.company):
            if t.get("project") in scope_set:
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
            if m.get("project") not in scope_set and m.get("task") in task_ids:
                m["task"] = None
                call.store.save("models", m)
        for m in models:
            if m.get("uri"):
                urls["model_urls"].add(m["uri"])
            urls["event_urls"] |= task_service.event_urls(call, m["id"])
            task_service.delete_task_events(call, m["id"])
            call.store.delete("models", m["id"])
        for t in tasks:
            urls["event_urls"] |= task_service.event_urls(call, t["id"])
            urls["artifact_urls"] |= {a["uri"] for a in (t.get("execution") or {}).get("artifacts") or []
                                      if a.get("mode", "output") == "output" and a.get("uri")}
            task_service.delete_task_events(call, t["id"])
            call.store.delete("tasks", t["id"])
        result.update(deleted_models=len(models), deleted_tasks=len(tasks),
                      urls={k: sorted(v) for k, v in urls.items()})
    for pid in scope:
        call.store.delete("projects", pid)
    result["deleted"] = len(scope)
    return result


def rename(call: Call, doc: dict, new_name: str) -> None:
    """Rename a project in place: the location (parent path) may not change (400/408)."""
    if new_name.rpartition("/")[0] != doc["name"].rpartition("/")[0]:
        raise ApiError(400, 408, "Cannot update project location. Use projects.move instead")
    if find_by_name(call, new_name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists (name={new_name})")
    _rebase(call, doc, new_name)


def _rebase(call: Call, doc: dict, new_name: str) -> int:
    """Give ``doc`` the name ``new_name`` and every descendant the matching new prefix; returns how many."""
    old_prefix = doc["name"] + "/"
    moved = 0
    for child in call.store.all("projects", call.company):
        if child["name"].startswith(old_prefix):
            child["name"] = new_name + "/" + child["name"][len(old_prefix):]
            child["last_update"] = now_iso()
            call.store.save("projects", child)
            moved += 1
    doc.update(name=new_name, basename=new_name.split("/")[-1], last_update=now_iso())
    call.store.save("projects", doc)
    return moved + 1


def _reparent(call: Call, doc: dict, parent: dict | None) -> None:
    """Set ``parent``/``path`` of ``doc`` and fix the paths of its descendants."""
    old_path = (doc.get("path") or []) + [doc["id"]]
    doc["parent"] = parent["id"] if parent else None
    doc["path"] = ((parent.get("path") or []) + [parent["id"]]) if parent else []
    call.store.save("projects", doc)
    new_path = doc["path"] + [doc["id"]]
    for child in call.store.all("projects", call.company):
        path = child.get("path") or []
        if path[:len(old_path)] == old_path and child["id"] != doc["id"]:
            child["path"] = new_path + path[len(old_path):]
            call.store.save("projects", child)


def move_project(call: Call, project_id: str, new_location: str | None) -> int:
    """``projects.move``: under ``new_location`` (created if missing) or to the top; returns projects moved."""
    doc = get_for_writing(call, "projects", project_id, INVALID)
    location = validate_name(new_location) if new_location and new_location.strip("/") else ""
    if location and (location == doc["name"] or location.startswith(doc["name"] + "/")):
        raise ApiError(400, 12, "Validation error: the project cannot be moved under itself")
    parent = ensure_project(call, location) if location else None
    new_name = f"{location}/{doc['basename']}" if location else doc["basename"]
    if new_name != doc["name"] and find_by_name(call, new_name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists (name={new_name})")
    _reparent(call, doc, parent)
    return _rebase(call, doc, new_name)


def merge_project(call: Call, source_id: str, destination_id: str | None) -> tuple[int, int]:
    """``projects.merge``: the source's contents and children move into the destination; the source goes."""
    source = get_for_writing(call, "projects", source_id, INVALID)
    destination = get_for_writing(call, "projects", destination_id, INVALID) if destination_id else None
    if destination and (destination["id"] == source["id"] or source["id"] in (destination.get("path") or [])):
        raise ApiError(400, 12, "Validation error: cannot merge a project into itself or its child")
    moved_entities = 0
    for collection in ("tasks", "models"):
        for doc in call.store.all(collection, call.company):
            if doc.get("project") == source["id"]:
                doc["project"] = destination["id"] if destination else None
                call.store.save(collection, doc)
                moved_entities += 1
    moved_projects = 0
    for child in [c for c in call.store.all("projects", call.company) if c.get("parent") == source["id"]]:
        _reparent(call, child, destination)
        base = destination["name"] + "/" if destination else ""
        _rebase(call, child, base + child["basename"])
        moved_projects += 1
    call.store.delete("projects", source["id"])
    return moved_entities, moved_projects


def get_readable(call: Call, project_id: Any) -> dict:
    """A project for reading (public ones too)."""
    return get_or_raise(call, "projects", project_id, INVALID, allow_public=True)
