"""Project statistics, tags and distinct values (clearml-server ``bll/project/project_queries.py``): status
counts and run time per project with its sub-projects, own contents, dataset sizes, tags, task parents."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from ....timestamps import parse_clearml_time
from ...core import Call
from ...core.constants import TASK_STATUSES
from ...store.filters import compile_pattern, list_filter_matcher, list_matcher
from ...store.ordering import numeric_key
from .sub_projects import children, ids_with_children

STATUSES = TASK_STATUSES


def archived(doc: dict) -> bool:
    return "archived" in (doc.get("system_tags") or [])


def _matches(doc: dict, filter_: Mapping[str, Any] | None) -> bool:
    """Whether ``doc`` passes a statistics filter: list queries (or list filters, objects) per field."""
    for field, value in (filter_ or {}).items():
        matcher = list_filter_matcher(value, field) if isinstance(value, dict) else list_matcher(value, field)
        if not matcher(doc.get(field)):
            return False
    return True


def _tasks_of(call: Call, project_ids: Iterable[str], filter_=None, users=None) -> list[dict]:
    ids = set(project_ids)
    return [t for t in call.store.all("tasks", call.company, allow_public=True)
            if t.get("project") in ids and _matches(t, filter_) and (not users or t.get("user") in users)]


def _only(kids: dict[str, list[dict]], allowed: Sequence[str]) -> dict[str, list[dict]]:
    """Each project's sub-projects, those in ``allowed`` only."""
    allowed_set = set(allowed)
    return {pid: [c for c in found if c["id"] in allowed_set] for pid, found in kids.items()}


def _in_projects(call: Call, docs: Iterable[dict], projects: Sequence[str], include_subprojects: bool
                 ) -> list[dict]:
    """The documents in ``projects`` (or their sub-projects too, with ``include_subprojects``)."""
    scope = set(ids_with_children(call, projects) if include_subprojects else projects)
    return [d for d in docs if d.get("project") in scope]


def project_stats(call: Call, project_ids: Sequence[str], *, state: str | None = "active",
                  include_children: bool = True, search_hidden: bool = False, filter_=None,
                  users=None, allowed: Sequence[str] | None = None) -> tuple[dict, dict]:
    """The real ``get_project_stats``: per project (with its sub-projects, those in ``allowed`` only when given)
    status counts, runtime, 24h count."""
    kids = children(call, project_ids, search_hidden) if include_children else {p: [] for p in project_ids}
    if allowed is not None:
        kids = _only(kids, allowed)
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
    """Tasks and models directly in each project (not in sub-projects); after 1.9.2 the archived ones are left out
    unless ``filter_`` says otherwise about ``archived``."""
    system_tags = list((filter_ or {}).get("system_tags") or [])
    if call.release.own_contents_leave_out_archived and not {"archived", "-archived"} & set(system_tags):
        filter_ = {**(filter_ or {}), "system_tags": ["-archived", *system_tags]}
    out = {}
    for pid in project_ids:
        tasks = _tasks_of(call, [pid], filter_, users)
        models = [m for m in call.store.all("models", call.company, allow_public=True)
                  if m.get("project") == pid and _matches(m, filter_) and (not users or m.get("user") in users)]
        out[pid] = {"own_tasks": len(tasks), "own_models": len(models)}
    return out


def _dataset_projects(call: Call, filter_, users) -> list[dict]:
    """The dataset projects (system tag ``dataset``, as the filter adds it) matching ``filter_`` and ``users``."""
    filter_ = dict(filter_ or {})
    system_tags = list(filter_.get("system_tags") or []) if isinstance(filter_.get("system_tags"), list) else []
    filter_["system_tags"] = system_tags if "dataset" in system_tags else [*system_tags, "dataset"]
    return [p for p in call.store.all("projects", call.company, allow_public=True)
            if _matches(p, filter_) and (not users or p.get("user") in users)]


def own_datasets(call: Call, project_ids: Sequence[str], filter_=None, users=None) -> dict:
    """``check_own_contents`` with ``children_type: dataset``: the dataset projects right under each project."""
    datasets = _dataset_projects(call, filter_, users)
    return {pid: {"own_datasets": sum(1 for d in datasets if d.get("parent") == pid)} for pid in project_ids}


def dataset_children_stats(call: Call, project_ids: Sequence[str], *, include_children: bool = True, filter_=None,
                           users=None, allowed: Sequence[str] | None = None) -> tuple[dict, dict]:
    """``include_stats`` with ``children_type: dataset``: per project (with its sub-projects, hidden ones too) the
    count and the tags of the dataset projects under it (the real ``get_project_dataset_stats``)."""
    kids = children(call, project_ids, True) if include_children else {p: [] for p in project_ids}
    if allowed is not None:
        kids = _only(kids, allowed)
    datasets = _dataset_projects(call, filter_, users)
    stats = {}
    for pid in project_ids:
        scope = {pid, *(c["id"] for c in kids.get(pid, []))}
        found = [d for d in datasets if d.get("parent") in scope]
        tags = sorted({t for d in found for t in d.get("tags") or []})
        stats[pid] = {"datasets": {"count": len(found), "tags": tags}}
    subs = {pid: sorted(({"id": c["id"], "name": c["name"]} for c in kids.get(pid, [])), key=lambda c: c["name"])
            for pid in project_ids}
    return stats, subs


def dataset_stats(call: Call, project_ids: Sequence[str]) -> dict:
    """File count and size of the latest non-archived task with a runtime in each project."""
    out = {}
    for pid in project_ids:
        tasks = [t for t in _tasks_of(call, [pid]) if t.get("runtime") and not archived(t)]
        if tasks:
            runtime = max(tasks, key=lambda t: t.get("last_update") or "")["runtime"]
            out[pid] = {"file_count": runtime.get("ds_file_count", 0), "total_size": runtime.get("ds_total_size", 0)}
    return out


CHILD_PROJECT_TAGS = {"pipeline": ("pipeline", ".pipelines"), "dataset": ("dataset", ".datasets")}


def selected_children(call: Call, users: Sequence[str] | None, project_ids: Sequence[str] | None,
                      allow_public: bool, children_type: str | None, tags: Sequence | None,
                      tags_filter: Mapping | None) -> tuple[list[str], list[str]]:
    """The real ``get_projects_with_selected_children``: the projects holding children of ``children_type``
    (pipeline or dataset projects, reports) whose tags match, else those holding tasks or models of ``users``
    (or made by them), with their ancestors; returns those among ``project_ids`` (all without) and all of them."""
    projects = {p["id"]: p for p in call.store.all("projects", call.company, allow_public=allow_public)}
    scope = set(ids_with_children(call, project_ids)) if project_ids else None
    if children_type:
        tag_match = (list_filter_matcher(tags_filter, "tags") if tags_filter else
                     list_matcher(tags, "tags") if tags else (lambda _tags: True))
        found = _typed_children(call, projects, children_type, allow_public,
                                lambda doc, where: ((not users or doc.get("user") in users)
                                                    and tag_match(doc.get("tags"))
                                                    and (scope is None or where in scope)))
    else:
        found = {pid for pid, p in projects.items() if p.get("user") in users and (scope is None or pid in scope)}
        for collection in ("tasks", "models"):
            found |= {d["project"] for d in call.store.all(collection, call.company, allow_public=allow_public)
                      if d.get("project") and d.get("user") in users and (scope is None or d["project"] in scope)}
    selected = {a for pid in found if pid in projects for a in [pid, *(projects[pid].get("path") or [])]}
    return sorted(selected & set(project_ids) if project_ids else selected), sorted(selected)


def _typed_children(call: Call, projects: dict[str, dict], children_type: str, allow_public: bool,
                    chosen) -> set[str]:
    """The pipeline or dataset projects (their parents' ids), or the reports' projects, that ``chosen(doc,
    where)`` keeps."""
    if children_type in CHILD_PROJECT_TAGS:
        tag, folder = CHILD_PROJECT_TAGS[children_type]
        return {p["id"] for p in projects.values() if tag in (p.get("system_tags") or [])
                and p.get("basename") != folder and chosen(p, p.get("parent"))}
    return {t["project"] for t in call.store.all("tasks", call.company, allow_public=allow_public)
            if t.get("project") and "reports" in (t.get("system_tags") or []) and chosen(t, t["project"])}


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
                 state: str | None, name: str | None = None) -> list[dict]:
    """The real ``get_task_parents``: distinct parents of the tasks, as ``{id, name, project: {id, name}}``; with
    ``name``, those whose name matches it (a regex, as any ``name`` query)."""
    tasks = call.store.all("tasks", call.company)
    if projects:
        tasks = _in_projects(call, tasks, projects, include_subprojects)
    else:
        tasks = [t for t in tasks if "hidden" not in (t.get("system_tags") or [])]
    if state == "archived":
        tasks = [t for t in tasks if archived(t)]
    elif state == "active":
        tasks = [t for t in tasks if not archived(t)]
    parents = []
    pattern = compile_pattern(name, "task_name") if name else None
    for pid in {t.get("parent") for t in tasks if t.get("parent")}:
        doc = call.store.get("tasks", pid, call.company, allow_public=True)
        if doc is None or (pattern is not None and not pattern.search(str(doc.get("name") or ""))):
            continue
        row = {"id": doc["id"], "name": doc["name"]}
        if doc.get("project"):
            project = call.store.get("projects", doc["project"], call.company, allow_public=True)
            row["project"] = {"id": doc["project"], **({"name": project["name"]} if project else {})}
        parents.append(row)
    return sorted(parents, key=lambda p: p["name"])


def hyperparam_values(call: Call, projects: Sequence[str] | None, section: str, name: str,
                      include_subprojects: bool, allow_public: bool, pattern: str | None = None, page: int = 0,
                      page_size: int = 500) -> dict:
    """Distinct values of one hyperparameter over the projects' tasks, in numeric order, one page of them (the
    real ``get_task_hyperparam_distinct_values``: ``total`` counts the page); with ``pattern``, the values matching
    it, ignoring case."""
    tasks = call.store.all("tasks", call.company, allow_public=allow_public)
    if projects:
        tasks = _in_projects(call, tasks, projects, include_subprojects)
    values = {((t.get("hyperparams") or {}).get(section) or {}).get(name, {}).get("value") for t in tasks}
    values.discard(None)
    if pattern:
        compiled = compile_pattern(pattern, "pattern", ignore_case=True)
        values = {v for v in values if compiled.search(str(v))}
    page_values = sorted(values, key=numeric_key)[page * page_size:(page + 1) * page_size]
    return {"total": len(page_values), "values": page_values}


def entity_users(call: Call, collection: str, projects: Sequence[str] | None, include_subprojects: bool
                 ) -> list[dict]:
    """``projects.get_user_names``: the users who created tasks (or models) under the projects (all the company's
    without ``projects``), as ``{id, name}`` sorted by name."""
    docs = call.store.all(collection, call.company, allow_public=True)
    if projects:
        docs = _in_projects(call, docs, projects, include_subprojects)
    users = []
    for user_id in {d.get("user") for d in docs if d.get("user")}:
        doc = call.store.get("users", user_id)
        if doc is not None:
            users.append({"id": user_id, "name": doc.get("name") or user_id})
    return sorted(users, key=lambda u: (u["name"], u["id"]))


def _models_in(call: Call, projects: Sequence[str] | None, include_subprojects: bool, allow_public: bool = True
               ) -> list[dict]:
    """The real ``_get_project_constraint`` over models: no projects means top-level models only unless sub-projects
    are included (then every model)."""
    models = call.store.all("models", call.company, allow_public=allow_public)
    if include_subprojects:
        if not projects:
            return models
        scope = set(ids_with_children(call, projects))
    else:
        scope = set(projects) if projects else {None}
    return [m for m in models if m.get("project") in scope]


def model_metadata_keys(call: Call, projects: Sequence[str] | None, include_subprojects: bool, page: int,
                        page_size: int) -> dict:
    """``projects.get_model_metadata_keys`` (API 2.17): the metadata keys of the models, sorted, one page."""
    keys = sorted({k for m in _models_in(call, projects, include_subprojects) for k in (m.get("metadata") or {})})
    chosen = keys[page * page_size:(page + 1) * page_size]
    return {"total": len(keys), "remaining": max(0, len(keys) - (len(chosen) + page * page_size)), "keys": chosen}


def model_metadata_values(call: Call, projects: Sequence[str] | None, key: str, include_subprojects: bool,
                          allow_public: bool, page: int, page_size: int) -> dict:
    """``projects.get_model_metadata_values`` (API 2.17): the distinct values of one metadata key, in numeric
    order, one page (``total`` counts the page, as the real aggregation)."""
    values = {((m.get("metadata") or {}).get(key) or {}).get("value")
              for m in _models_in(call, projects, include_subprojects, allow_public)
              if key in (m.get("metadata") or {})}
    values.discard(None)
    chosen = sorted(values, key=numeric_key)[page * page_size:(page + 1) * page_size]
    return {"total": len(chosen), "values": chosen}
