"""``tasks.*`` endpoints: create, read, list, edit, clone (the logic is in :mod:`..bll.task`).

Status changes are in :mod:`.tasks_status`, parameters, configuration, artifacts and models in
:mod:`.tasks_params`.
"""

from __future__ import annotations

from .. import apimodels as req
from ..bll.access import get_or_raise
from ..bll.project import ids_with_children, with_subprojects
from ..bll.task import (MODELS_COMPAT_MAX, check_name, clone_task, get_task, get_task_readable,
                        models_prepare_for_save, move_task, new_task_doc, params_prepare_for_save, save_task,
                        set_archived, unprepare_for_version, validate_references, with_pipeline_steps)
from ..core import ApiError, Call, bad_request, endpoint, ids_of, required
from ..core.constants import INVALID_PROJECT, INVALID_TASK, TASK_STATUSES, TASK_TYPES
from ..store.queries import get_all
from . import projects
from .common import archive_many_endpoints, publicity_endpoints, update_tags_endpoint

EDITABLE = ("name", "type", "comment", "parent", "project", "tags", "system_tags", "script", "hyperparams",
            "configuration", "execution", "models", "container", "runtime", "input", "output", "status")
# Embedded documents of the real Task: tasks.edit merges their top-level keys instead of replacing them.
EMBEDDED = ("script", "execution", "output", "models")


@endpoint("tasks.create", request_data_model=req.CreateTaskRequest)
def create(call: Call) -> dict:
    """Create a task in status ``created``."""
    call.data["name"] = check_name(required(call, "name"))
    ttype = required(call, "type")
    if ttype not in TASK_TYPES:
        raise bad_request(f"Invalid task type {ttype!r}")
    if call.data.get("project"):
        get_or_raise(call, "projects", call.data["project"], INVALID_PROJECT)
    models_prepare_for_save(call.api_version, call.data)
    params_prepare_for_save(call.data)
    doc = new_task_doc(call, call.data)
    validate_references(call, doc, models=True, parent=True, project=True)
    save_task(call, doc)
    return {"id": doc["id"]}


@endpoint("tasks.validate", request_data_model=req.CreateTaskRequest)
def validate(call: Call) -> dict:
    """Check a task definition as ``tasks.create`` would, without creating it."""
    call.data["name"] = check_name(required(call, "name"))
    if required(call, "type") not in TASK_TYPES:
        raise bad_request(f"Invalid task type {call.data['type']!r}")
    data = {k: v for k, v in call.data.items() if k not in ("id", "company", "user")}
    models_prepare_for_save(call.api_version, data)
    params_prepare_for_save(data)
    validate_references(call, new_task_doc(call, data), models=True, parent=True, project=True)
    return {}


def _for_client(call: Call, row: dict) -> dict:
    return unprepare_for_version(call.api_version, row)


@endpoint("tasks.get_by_id")
def get_by_id(call: Call) -> dict:
    """One task (public ones too)."""
    return {"task": _for_client(call, call.store.copy(get_task_readable(call)))}


TASK_QUERY = dict(list_fields=("id", "tags", "system_tags", "project", "status", "type", "user", "parent"),
                  date_fields=("status_changed", "last_update", "last_change"),
                  range_fields=("created", "started", "active_duration", "last_iteration"),
                  regex_fields=("name", "comment"), exact_prefixes=("runtime.",))


@endpoint("tasks.get_all")
def get_all_tasks(call: Call) -> dict:
    """Tasks filtered, ordered and paged like the real server (hidden ones only with search_hidden)."""
    data = with_subprojects(call, dict(call.data))
    visible = None if data.get("search_hidden") or data.get("id") else _not_hidden
    result = get_all(call, "tasks", "tasks", data=data, visible=visible, **TASK_QUERY)
    if call.api_version < MODELS_COMPAT_MAX:
        result["tasks"] = [_for_client(call, row) for row in result["tasks"]]
    return result


def _not_hidden(doc: dict) -> bool:
    return "hidden" not in (doc.get("system_tags") or [])


@endpoint("tasks.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all``."""
    return get_all_tasks(call)


@endpoint("tasks.get_by_id_ex", required_fields=("id",), min_version="2.11")
def get_by_id_ex(call: Call) -> dict:
    """The tasks of ``id`` (public ones too, hidden ones too) with references joined, as ``get_all_ex``."""
    docs = call.store.all("tasks", call.company, allow_public=True)
    return get_all(call, "tasks", "tasks", data=dict(call.data), docs=docs, expand=True, **TASK_QUERY)


@endpoint("tasks.get_types")
def get_types(call: Call) -> dict:
    """The task types the company's and public tasks use: under ``projects`` and their sub-projects, else of
    every task that is not hidden (clearml-server's ``get_task_types``)."""
    wanted = ids_of(call.data.get("projects"))
    scope = set(ids_with_children(call, wanted)) if wanted else None
    docs = call.store.all("tasks", call.company, allow_public=True)
    in_scope = (lambda t: t.get("project") in scope) if scope is not None else \
        (lambda t: "hidden" not in (t.get("system_tags") or []))
    return {"types": sorted({t["type"] for t in docs if t.get("type") in TASK_TYPES and in_scope(t)})}


archive_many_endpoints("tasks", req.TaskBatchRequest, lambda call, task_id, archived: with_pipeline_steps(
    call, task_id, lambda t: set_archived(call, t, archived)))
publicity_endpoints("tasks", INVALID_TASK)
update_tags_endpoint("tasks", INVALID_TASK)


def _move(call: Call, task_id: str, project_id: str | None) -> None:
    doc = get_task(call, task_id)
    old = doc.get("project")
    doc["project"] = project_id
    save_task(call, doc)
    projects.touch(call, old)


projects.move_endpoint("tasks", move_task)


@endpoint("tasks.clone", request_data_model=req.CloneRequest)
def clone(call: Call) -> dict:
    """A new draft from a task: definition copied, outputs not; ``new_task_*``/``execution_overrides`` applied."""
    source = get_task_readable(call)
    doc = new_task_doc(call, {"name": source["name"], "type": source["type"]})
    doc, new_project = clone_task(call, source, doc, call.model.model_dump(exclude_unset=True))
    save_task(call, doc)
    return {"id": doc["id"], **({"new_project": new_project} if new_project else {})}


@endpoint("tasks.ping", request_data_model=req.TaskRequest)
def ping(call: Call) -> dict:
    """Keep-alive: refresh last_update."""
    doc = get_task(call)
    save_task(call, doc, changed=False)
    return {}


# -- edits ----------------------------------------------------------------------------------------
@endpoint("tasks.edit")
def edit(call: Call) -> dict:
    """Replace top-level fields of a task (only in ``created`` unless ``force``)."""
    doc = get_task(call)
    if doc["status"] != "created" and not call.data.get("force"):
        raise ApiError(400, 110, f"Invalid task status (expected=created, status={doc['status']})")
    data = dict(call.data)
    models_prepare_for_save(call.api_version, data)
    fields = {k: data[k] for k in EDITABLE if k in data}
    params_prepare_for_save(fields, previous=doc)
    if "output_dest" in call.data:
        fields["output"] = {**doc.get("output", {}), "destination": call.data["output_dest"]}
    if "type" in fields and fields["type"] not in TASK_TYPES:
        raise bad_request(f"Invalid task type {fields['type']!r}")
    if "status" in fields and fields["status"] not in TASK_STATUSES:
        raise bad_request(f"Invalid task status {fields['status']!r}")
    if fields.get("project"):
        get_or_raise(call, "projects", fields["project"], INVALID_PROJECT)
    if "name" in fields:
        fields["name"] = check_name(fields["name"])
    for key in EMBEDDED:
        if isinstance(fields.get(key), dict) and isinstance(doc.get(key), dict):
            fields[key] = {**doc[key], **fields[key]}
    if "execution" in fields:
        fields["execution"] = {"artifacts": [], **(fields["execution"] or {})}
    if "models" in fields:
        fields["models"] = {"input": [], "output": [], **(fields["models"] or {})}
    doc.update(fields)
    save_task(call, doc)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.update", request_data_model=req.TaskUpdateFieldsRequest)
def update(call: Call) -> dict:
    """Update name, comment, tags, system_tags or project (any status)."""
    doc = get_task(call, call.model.task)
    fields = call.model.model_dump(exclude_unset=True, include={"name", "comment", "tags", "system_tags", "project",
                                                                 "status_message", "created"})
    if "name" in fields:
        fields["name"] = check_name(fields["name"])
    if fields.get("project"):
        get_or_raise(call, "projects", fields["project"], INVALID_PROJECT)
    doc.update(fields)
    save_task(call, doc)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.set_requirements", request_data_model=req.SetRequirementsRequest)
def set_requirements(call: Call) -> dict:
    """Store the script's requirements."""
    doc = get_task(call, call.model.task)
    doc.setdefault("script", {})["requirements"] = call.model.requirements
    save_task(call, doc)
    return {"updated": 1, "fields": {"script.requirements": call.model.requirements}}
