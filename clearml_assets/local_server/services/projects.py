"""``projects.*`` endpoints: nested names (``a/b/c``) with auto-created parents, hidden and public projects.

Handlers parse the request (``apimodels``) and call :mod:`..bll.project`, as clearml-server 1.9.2 does.
"""

from __future__ import annotations

from typing import Callable

from .. import apimodels as req
from ..bll import project as bll
from ..bll.access import get_for_writing
from ..bll.project import INVALID, ensure_project, find_by_name, target_project
from ..core import ApiError, Call, endpoint, ids_of, now_iso
from ..store.queries import get_all
from .common import publicity_endpoints


def move_endpoint(service: str, move_one: Callable[[Call, str, str | None], None]) -> None:
    """Register ``<service>.move``: its ``ids`` to a project given by id or name (created if missing), or to
    the root.

    Args:
        service: ``tasks`` or ``models``.
        move_one: ``move_one(call, id, project_id)`` moves one document (``project_id`` None: the root).
    """
    def move_ids(call: Call) -> dict:
        """Move the documents to the request's project (see :func:`target_project`)."""
        project_id = target_project(call)
        for obj_id in call.model.ids:
            move_one(call, obj_id, project_id)
        return {"project_id": project_id}
    endpoint(f"{service}.move", request_data_model=req.MoveRequest)(move_ids)


@endpoint("projects.create", request_data_model=req.ProjectCreateRequest, required_fields=("name",))
def create(call: Call) -> dict:
    """Create a project (parents auto-created); a duplicate name is 400/801, an empty one 400/407."""
    name = bll.validate_name(call.model.name)
    if find_by_name(call, name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists (name={name})")
    fields = {k: v for k, v in call.data.items() if k != "name"}
    return {"id": ensure_project(call, name, **fields)["id"]}


@endpoint("projects.get_by_id", required_fields=("project",))
def get_by_id(call: Call) -> dict:
    """One project (public ones too)."""
    return {"project": call.store.copy(bll.get_readable(call, call.data["project"]))}


PROJECT_QUERY = dict(list_fields=("id", "tags", "system_tags", "parent", "path"),
                     regex_fields=("name", "basename", "description"), range_fields=("last_update",))


def _search(call: Call, data: dict, shallow: bool, search_hidden: bool, allow_public: bool = True) -> list[dict]:
    """The real ``_adjust_search_parameters`` and ``_hidden_query``; returns the candidate documents."""
    data.pop("path", None)
    if not shallow:
        if "parent" in data:
            data["path"] = data.pop("parent")
    elif "parent" not in data:
        data["parent"] = [None]
    docs = call.store.all("projects", call.company, allow_public=allow_public)
    if not search_hidden and not data.get("id"):
        docs = [d for d in docs if "hidden" not in (d.get("system_tags") or [])]
    return docs


@endpoint("projects.get_all")
def get_all_projects(call: Call) -> dict:
    """Projects filtered like the real server; hidden ones only with ``search_hidden`` or explicit ids.

    ``parent`` matches any ancestor (the project's ``path``) unless ``shallow_search``, which without a
    ``parent`` lists top-level projects only.
    """
    data = dict(call.data)
    docs = _search(call, data, bool(data.get("shallow_search")), bool(data.get("search_hidden")))
    return get_all(call, "projects", "projects", docs=docs, data=data, **PROJECT_QUERY)


@endpoint("projects.get_all_ex", request_data_model=req.ProjectsGetRequest)
def get_all_ex(call: Call) -> dict:
    """As ``get_all`` plus references joined, and on request statistics, own contents, dataset stats; after
    1.9.2 ``children_type`` (with ``children_tags``/``children_tags_filter``) keeps the projects holding such
    children, whose statistics then count those children only."""
    model: req.ProjectsGetRequest = call.model
    data = dict(call.data)
    allow_public = data["allow_public"] if "allow_public" in data else not data.get("non_public", False)
    requested = ids_of(data.get("id"))
    docs = _search(call, data, model.shallow_search, bool(model.search_hidden), bool(allow_public))
    selected = _selected(call, model, data, requested, bool(allow_public))
    if selected is not None and not data.get("id"):
        return {"projects": []}
    result = get_all(call, "projects", "projects", docs=docs, data=data, **PROJECT_QUERY)
    projects = result["projects"]
    if projects:
        _add_statistics(call, model, projects, selected)
    return result


def _selected(call: Call, model: req.ProjectsGetRequest, data: dict, requested: list[str], allow_public: bool
              ) -> list[str] | None:
    """``active_users``/``children_type``: narrows ``data["id"]`` to the projects holding such children and
    returns every project selected (None when neither is asked)."""
    children_type = model.children_type if call.api_version >= (2, 24) else None
    if not (model.active_users or children_type):
        return None
    if children_type is None and call.api_version < (2, 24):
        active = sorted(bll.active_user_projects(call, requested, model.active_users))
        ids, selected = (sorted(set(active) & set(requested)) if requested else active), active
    else:
        ids, selected = bll.selected_children(call, model.active_users, requested, allow_public, children_type,
                                              model.children_tags, model.children_tags_filter)
    data["id"] = ids
    return selected


def _stats_filter(call: Call, model: req.ProjectsGetRequest) -> tuple[dict | None, bool]:
    """The real ``_get_project_stats_filter``: with ``children_type``, the children's own filter."""
    children_type = model.children_type if call.api_version >= (2, 24) else None
    if model.include_stats_filter or not children_type:
        return model.include_stats_filter, bool(model.search_hidden)
    tags = ({"tags": model.children_tags_filter} if model.children_tags_filter else
            {"tags": model.children_tags} if model.children_tags else {})
    if children_type == "pipeline":
        return {**tags, "system_tags": ["pipeline"], "type": ["controller"]}, True
    if children_type == "report":
        return {**tags, "system_tags": ["reports"], "type": ["report"]}, True
    return tags, bool(model.search_hidden)


def _add_statistics(call: Call, model: req.ProjectsGetRequest, projects: list[dict], selected) -> None:
    """Own contents, statistics with sub-projects and dataset statistics, as asked."""
    ids = [p["id"] for p in projects]
    stats_filter, stats_hidden = _stats_filter(call, model)
    datasets = model.children_type == "dataset" and call.api_version >= (2, 24)
    if model.check_own_contents:
        own = bll.own_datasets if datasets else bll.own_contents
        contents = own(call, ids, stats_filter, model.active_users)
        for p in projects:
            p.update(contents.get(p["id"], {}))
    if model.include_stats:
        if datasets:
            stats, subs = bll.dataset_children_stats(call, ids, include_children=model.stats_with_children,
                                                     filter_=stats_filter, users=model.active_users, allowed=selected)
        else:
            stats, subs = bll.project_stats(call, ids, state=model.stats_for_state,
                                            include_children=model.stats_with_children, search_hidden=stats_hidden,
                                            filter_=stats_filter, users=model.active_users, allowed=selected)
        for p in projects:
            p["stats"], p["sub_projects"] = stats[p["id"]], subs[p["id"]]
    if model.include_dataset_stats:
        ds = bll.dataset_stats(call, ids)
        for p in projects:
            p["dataset_stats"] = ds.get(p["id"])


@endpoint("projects.update", required_fields=("project",))
def update(call: Call) -> dict:
    """Update name (same location only), description, tags, system_tags or default output destination."""
    doc = get_for_writing(call, "projects", call.data["project"], INVALID)
    fields = {k: call.data[k] for k in ("name", "description", "tags", "system_tags",
                                        "default_output_destination") if k in call.data}
    for key in ("tags", "system_tags"):
        if key in fields:
            fields[key] = sorted(set(fields[key] or []))  # stored as sorted lists on the real server
    if "name" in fields:
        fields["name"] = bll.validate_name(fields["name"])
        if fields["name"] != doc["name"]:
            bll.rename(call, doc, fields["name"])
        fields["basename"] = fields["name"].split("/")[-1]
    doc.update(fields)
    doc["last_update"] = now_iso()
    call.store.save("projects", doc)
    return {"updated": 1, "fields": fields}


@endpoint("projects.move", request_data_model=req.ProjectMoveRequest)
def move(call: Call) -> dict:
    """Move a project (with its sub-projects) under ``new_location``, or to the top."""
    return {"moved": bll.move_project(call, call.model.project, call.model.new_location)}


@endpoint("projects.merge", request_data_model=req.ProjectMergeRequest)
def merge(call: Call) -> dict:
    """Merge a project's contents and sub-projects into another; the source is deleted."""
    entities, moved = bll.merge_project(call, call.model.project, call.model.destination_project)
    return {"moved_entities": entities, "moved_projects": moved}


@endpoint("projects.validate_delete", request_data_model=req.ProjectRequest)
def validate_delete(call: Call) -> dict:
    """What a delete would touch: tasks, models, and those not archived."""
    return bll.validate_delete(call, call.model.project)


@endpoint("projects.delete", request_data_model=req.ProjectDeleteRequest)
def delete(call: Call) -> dict:
    """Delete a project and its sub-projects: non-archived contents need ``force``; with
    ``delete_contents`` its tasks and models are deleted, otherwise detached (project None)."""
    m: req.ProjectDeleteRequest = call.model
    return bll.delete_project(call, m.project, force=m.force, delete_contents=m.delete_contents)


@endpoint("projects.get_hyper_parameters", request_data_model=req.GetParamsRequest)
def get_hyper_parameters(call: Call) -> dict:
    """Hyperparameter sections/names used by the tasks (of a project and, by default, its sub-projects)."""
    m: req.GetParamsRequest = call.model
    tasks = call.store.all("tasks", call.company, allow_public=True)
    if m.project:
        scope = set(bll.ids_with_children(call, [m.project]) if m.include_subprojects else [m.project])
        tasks = [t for t in tasks if t.get("project") in scope]
    seen = sorted({(section, name) for t in tasks for section, params in (t.get("hyperparams") or {}).items()
                   for name in params})
    page = seen[m.page * m.page_size:(m.page + 1) * m.page_size]
    return {"parameters": [{"section": s, "name": n} for s, n in page],
            "remaining": max(0, len(seen) - (m.page + 1) * m.page_size), "total": len(seen)}


@endpoint("projects.get_hyperparam_values", request_data_model=req.ProjectHyperparamValuesRequest)
def get_hyperparam_values(call: Call) -> dict:
    """Distinct values of one hyperparameter over the projects' tasks."""
    m: req.ProjectHyperparamValuesRequest = call.model
    return bll.hyperparam_values(call, m.projects, m.section, m.name, m.include_subprojects, m.allow_public,
                                 pattern=m.pattern, page=m.page, page_size=m.page_size)


@endpoint("projects.get_task_tags", request_data_model=req.ProjectTagsRequest)
def get_task_tags(call: Call) -> dict:
    """Tags of the tasks under the projects (all the company's without ``projects``)."""
    m: req.ProjectTagsRequest = call.model
    return bll.entity_tags(call, "tasks", m.projects, m.include_system, m.filter)


@endpoint("projects.get_model_tags", request_data_model=req.ProjectTagsRequest)
def get_model_tags(call: Call) -> dict:
    """Tags of the models under the projects."""
    m: req.ProjectTagsRequest = call.model
    return bll.entity_tags(call, "models", m.projects, m.include_system, m.filter)


@endpoint("projects.get_project_tags", request_data_model=req.ProjectTagsRequest)
def get_project_tags(call: Call) -> dict:
    """The projects' own tags."""
    m: req.ProjectTagsRequest = call.model
    return bll.project_tags(call, m.projects, m.include_system, m.filter)


@endpoint("projects.get_task_parents", request_data_model=req.ProjectTaskParentsRequest)
def get_task_parents(call: Call) -> dict:
    """Distinct parents of the tasks under the projects, by name."""
    m: req.ProjectTaskParentsRequest = call.model
    return {"parents": bll.task_parents(call, m.projects, m.include_subprojects, m.tasks_state, m.task_name)}


@endpoint("projects.get_model_metadata_keys", request_data_model=req.GetParamsRequest, min_version="2.17")
def get_model_metadata_keys(call: Call) -> dict:
    """Metadata keys of the models (of a project and, by default, its sub-projects), paged."""
    m: req.GetParamsRequest = call.model
    return bll.model_metadata_keys(call, [m.project] if m.project else None, m.include_subprojects, m.page,
                                   m.page_size)


@endpoint("projects.get_model_metadata_values", request_data_model=req.ProjectModelMetadataValuesRequest,
          min_version="2.17")
def get_model_metadata_values(call: Call) -> dict:
    """Distinct values of one metadata key over the models, paged."""
    m: req.ProjectModelMetadataValuesRequest = call.model
    return bll.model_metadata_values(call, m.projects, m.key, m.include_subprojects, m.allow_public, m.page,
                                     m.page_size)


@endpoint("projects.get_user_names", request_data_model=req.ProjectUserNamesRequest, min_version="2.26")
def get_user_names(call: Call) -> dict:
    """The users who created tasks (or models, ``entity: model``) under the projects, by name."""
    m: req.ProjectUserNamesRequest = call.model
    collection = "models" if m.entity == "model" else "tasks"
    return {"users": bll.entity_users(call, collection, m.projects, m.include_subprojects)}


publicity_endpoints("projects", INVALID)


@endpoint("projects.get_unique_metric_variants", request_data_model=req.ProjectOrNoneRequest)
def get_unique_metric_variants(call: Call) -> dict:
    """Metric/variant pairs reported by the tasks (of a project and its sub-projects; no project: all; ``ids``:
    those tasks; ``model_metrics``: models instead), from their ``last_metrics`` as the real
    ``project_queries.get_unique_metric_variants``."""
    m: req.ProjectOrNoneRequest = call.model
    collection = "models" if call.data.get("model_metrics") else "tasks"
    docs = call.store.all(collection, call.company, allow_public=True)
    if m.project:
        scope = set(bll.ids_with_children(call, [m.project]) if m.include_subprojects else [m.project])
        docs = [t for t in docs if t.get("project") in scope]
    elif not m.include_subprojects:
        docs = [t for t in docs if not t.get("project")]
    ids = set(ids_of(call.data.get("ids")))
    if ids:
        docs = [t for t in docs if t["id"] in ids]
    found: dict[tuple, dict] = {}
    for doc in docs:
        for metric_hash, variants in (doc.get("last_metrics") or {}).items():
            for variant_hash, value in (variants or {}).items():
                key = (value.get("metric"), value.get("variant"))
                found.setdefault(key, {"metric": key[0], "metric_hash": metric_hash, "variant": key[1],
                                       "variant_hash": variant_hash})
    return {"metrics": [found[k] for k in sorted(found, key=lambda k: (str(k[0]), str(k[1])))]}
