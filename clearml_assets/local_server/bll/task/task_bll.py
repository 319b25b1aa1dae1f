"""Tasks (clearml-server ``bll/task/task_bll.py``): lookups for reading and writing, documents, validation,
cloning."""

from __future__ import annotations

import copy

from ...core import ApiError, Call, bad_request, new_id, now_iso, required
from ...core.constants import DELETED_PREFIX, INVALID_TASK
from ..access import get_for_writing, get_or_raise
from ..project.sub_projects import ensure_project, find_by_name, touch, validate_name
from .param_utils import params_prepare_for_save


def get_task(call: Call, task_id=None) -> dict:
    """The task for writing: the company's own, a public one is 403/21 as on the real server."""
    return get_for_writing(call, "tasks", task_id if task_id is not None else required(call, "task"), INVALID_TASK)


def get_task_readable(call: Call, task_id=None) -> dict:
    """The task for reading: the company's own or a public one."""
    return get_or_raise(call, "tasks", task_id if task_id is not None else required(call, "task"), INVALID_TASK,
                        allow_public=True)


def check_name(name) -> str:
    """Task names are stripped strings of at least 3 characters on the real server."""
    if not isinstance(name, str) or len(name.strip()) < 3:
        raise bad_request(f"Validation error: task name must be a string of at least 3 characters (name={name!r})")
    return name.strip()


def check_updatable(call: Call, doc: dict, *, force: bool | None = None, allow_all: bool = False) -> None:
    """The real server's ``get_task_for_update``: ``created`` only, or also ``in_progress`` with force."""
    if allow_all:
        return
    force = bool(call.data.get("force")) if force is None else force
    allowed = ("created", "in_progress") if force else ("created",)
    if doc["status"] not in allowed:
        raise ApiError(400, 110, f"Invalid task status (expected=created, status={doc['status']})")


def properties_only(params: list) -> bool:
    """Hyperparameters all in the ``properties`` section may change in any status."""
    for p in params:
        if isinstance(p, dict) and str(p.get("section", "")).lower() == "properties":
            p["section"] = "properties"
    return bool(params) and all(isinstance(p, dict) and p.get("section") == "properties" for p in params)


def save_task(call: Call, doc: dict, changed: bool = True) -> None:
    """Store a task as the real server does (sorted tags, artifacts in key order, update times) and touch its
    project."""
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
    touch(call, doc.get("project"))


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


def validate_references(call: Call, task: dict, *, models: bool, parent: bool, project: bool) -> None:
    """The real ``TaskBLL.validate``: the parent task, the project (always writable) and input models exist."""
    if parent and task.get("parent") and not str(task["parent"]).startswith(DELETED_PREFIX):
        if call.store.get("tasks", task["parent"], call.company, allow_public=True) is None:
            raise ApiError(400, 101, f"Invalid task id: invalid parent (parent={task['parent']})")
    if task.get("project"):
        doc = call.store.get("projects", task["project"], call.company, allow_public=True)
        if doc is not None and not doc.get("company"):
            raise ApiError(403, 21, f"forbidden (modification not allowed): cannot modify public project(s), "
                                    f"ids=('{doc['id']}',)")
        if project and doc is None:
            raise ApiError(400, 401, f"Invalid project id (id={task['project']})")
    if models:
        for entry in (task.get("models") or {}).get("input") or []:
            model_id = entry.get("model")
            if model_id and call.store.get("models", model_id, call.company, allow_public=True) is None:
                raise ApiError(400, 201, f"Invalid model id (id={model_id})")


def clone_task(call: Call, source: dict, new_doc: dict, request: dict) -> tuple[dict, dict | None]:
    """The real ``TaskBLL.clone_task``: ``new_doc`` (a fresh draft) filled from ``source`` and the overrides.

    Returns the new task and ``{"id", "name"}`` of a project created for ``new_project_name``.
    """
    params: dict = {k: v for k, v in (("hyperparams", request.get("new_task_hyperparams")),
                                      ("configuration", request.get("new_task_configuration")))
                    if v is not None}
    now = now_iso()
    input_models = [{"model": m.get("model"), "name": m.get("name"), "updated": now}
                    for m in request.get("new_task_input_models") or []]
    execution, container, input_models = _cloned_execution(source, request, params, input_models, now)
    params_prepare_for_save(params, previous=source)
    project, new_project = _clone_project(call, request)
    source_parent = source.get("parent")
    parent = (source_parent if source_parent and not str(source_parent).startswith(DELETED_PREFIX)
              else source["id"])
    system_tags = request.get("new_task_system_tags") or [
        t for t in source.get("system_tags") or [] if t not in ("development", "archived")]
    new_doc.update(
        name=request.get("new_task_name") or source["name"],
        comment=request.get("new_task_comment") or source.get("comment") or "",
        parent=request.get("new_task_parent") or parent,
        project=project or source.get("project"),
        tags=request.get("new_task_tags") or list(source.get("tags") or []),
        system_tags=system_tags, type=source["type"], script=copy.deepcopy(source.get("script") or {}),
        output={"destination": source["output"]["destination"]} if (source.get("output") or {}).get("destination")
        else {},
        models={"input": input_models or copy.deepcopy((source.get("models") or {}).get("input") or []),
                "output": []},
        container=container or copy.deepcopy(source.get("container") or {}),
        execution=execution,
        configuration=params.get("configuration") or copy.deepcopy(source.get("configuration") or {}),
        hyperparams=params.get("hyperparams") or copy.deepcopy(source.get("hyperparams") or {}),
    )
    check = bool(request.get("validate_references"))
    validate_references(call, new_doc, models=check or bool(input_models),
                        parent=check or bool(request.get("new_task_parent")),
                        project=check or bool(request.get("new_task_project")))
    return new_doc, new_project


def _cloned_execution(source: dict, request: dict, params: dict, input_models: list[dict], now: str
                      ) -> tuple[dict, dict | None, list[dict]]:
    """The clone's ``execution`` (output artifacts and queue dropped, ``execution_overrides`` applied), its
    container and input models (``overrides.model``/``docker_cmd`` when not given otherwise); legacy
    parameters of the overrides go to ``params["execution"]``."""
    execution = copy.deepcopy(source.get("execution") or {})
    container = request.get("new_task_container")
    overrides = dict(request.get("execution_overrides") or {})
    if overrides:
        model = overrides.pop("model", None)
        if not input_models and model:
            input_models = [{"model": model, "name": "input", "updated": now}]
        docker_cmd = overrides.pop("docker_cmd", None)
        if not container and docker_cmd:
            image, _, arguments = docker_cmd.partition(" ")
            container = {"image": image, "arguments": arguments}
        params["execution"] = {k: overrides.pop(k) for k in ("parameters", "model_desc") if k in overrides}
        execution.update(overrides)
    execution["artifacts"] = [a for a in execution.get("artifacts") or [] if a.get("mode", "output") != "output"]
    execution.pop("queue", None)
    if execution.get("model_labels"):
        execution["model_labels"] = {k: int(v) for k, v in execution["model_labels"].items()}
    return execution, container, input_models


def _clone_project(call: Call, request: dict) -> tuple[str | None, dict | None]:
    """The clone's project (``new_task_project``, or ``new_project_name`` found or created) and, for a project
    named, ``{"id", "name"}``."""
    project = request.get("new_task_project")
    if project or not request.get("new_project_name"):
        return project, None
    existing = find_by_name(call, validate_name(request["new_project_name"]))
    project = (existing or ensure_project(call, request["new_project_name"]))["id"]
    return project, {"id": project, "name": request["new_project_name"]}
