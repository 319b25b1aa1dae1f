"""Task logic (clearml-server ``bll/task``): legacy parameter/model fields of old API versions, validation,
cloning."""

from __future__ import annotations

import copy
from typing import Any, Sequence

from ..queries import now_iso
from ..registry import ApiError, Call

LEGACY_TYPE = "legacy"
DEFAULT_SECTION = "Args"
TF_DEFINE = "TF_DEFINE"
DELETED_PREFIX = "__DELETED__"
# execution.model / output.model of API < 2.13 are models.input[0] / models.output[-1]
MODELS_COMPAT_MAX = (2, 13)
# execution.parameters / model_desc of API < 2.9 are the "legacy" typed hyperparams / configuration items
LEGACY_PARAMS_MAX = (2, 9)
LEGACY_FIELDS = ((("execution", "parameters"), "hyperparams", DEFAULT_SECTION),
                 (("execution", "model_desc"), "configuration", None))


def _split_name(full_name: str, default_section: str | None) -> tuple[str | None, str]:
    if default_section is None:
        return None, full_name
    section, _, name = full_name.partition("/")
    if section != TF_DEFINE:
        return default_section, full_name
    if not name:
        raise ApiError(400, 12, "Validation error: Parameter name cannot be empty")
    return section, name


def _without_legacy(data: dict, with_sections: bool) -> tuple[dict, int]:
    """``data`` without its legacy-typed items (empty sections dropped) and how many went."""
    removed = 0
    out: dict = {}
    for key, value in (data or {}).items():
        if with_sections:
            kept = {k: p for k, p in (value or {}).items() if (p or {}).get("type") != LEGACY_TYPE}
            removed += len(value or {}) - len(kept)
            if kept:
                out[key] = kept
        elif (value or {}).get("type") == LEGACY_TYPE:
            removed += 1
        else:
            out[key] = value
    return out, removed


def params_prepare_for_save(fields: dict, previous: dict | None = None) -> None:
    """The real ``params_prepare_for_save``: ``execution.parameters``/``model_desc`` become legacy-typed items
    of ``hyperparams`` (section ``Args``, or ``TF_DEFINE`` for ``TF_DEFINE/x``) and ``configuration``."""
    execution = fields.get("execution")
    if not isinstance(execution, dict):
        return
    for (_, old), new, default_section in LEGACY_FIELDS:
        legacy = execution.get(old)
        if legacy is None:
            continue
        if not fields.get(new) and previous and previous.get(new):
            kept, removed = _without_legacy(copy.deepcopy(previous[new]), default_section is not None)
            if not legacy and not removed:
                execution.pop(old)
                continue
            fields[new] = kept
        for full_name, value in (legacy or {}).items():
            section, name = _split_name(full_name, default_section)
            item = {"name": name, "type": LEGACY_TYPE, "value": str(value)}
            target = fields.setdefault(new, {})
            if section is not None:
                item["section"] = section
                target.setdefault(section, {})[name] = item
            else:
                target[name] = item
        execution.pop(old)
    for key in ("hyperparams", "configuration"):
        for section, value in (fields.get(key) or {}).items():
            if not section or (key == "hyperparams" and isinstance(value, dict) and any(not k for k in value)):
                raise ApiError(400, 12, f"Validation error: Empty {'section' if key == 'hyperparams' else 'configuration'}"
                                        f" name is not allowed")


def models_prepare_for_save(version: tuple[int, int], fields: dict) -> None:
    """API < 2.13: ``execution.model``/``output.model`` become ``models.input``/``models.output``."""
    if version >= MODELS_COMPAT_MAX:
        return
    for mode, (parent, key) in (("input", ("execution", "model")), ("output", ("output", "model"))):
        holder = fields.get(parent)
        if not isinstance(holder, dict) or holder.get(key) is None:
            continue
        value = holder.pop(key)
        models = fields.setdefault("models", {})
        models[mode] = [{"name": mode, "model": value, "updated": now_iso()}] if value else []


def unprepare_for_version(version: tuple[int, int], task: dict) -> dict:
    """A task as an old client expects it: legacy fields copied back (< 2.9), models in execution (< 2.13)."""
    if version < LEGACY_PARAMS_MAX:
        for (parent, old), new, with_sections in ((("execution", "parameters"), "hyperparams", True),
                                                  (("execution", "model_desc"), "configuration", False)):
            data = task.get(new) or {}
            items = ([p for section in data.values() for p in (section or {}).values()] if with_sections
                     else list(data.values()))
            legacy = [p for p in items if isinstance(p, dict) and p.get("type") == LEGACY_TYPE]
            if legacy:
                task.setdefault(parent, {})[old] = {
                    (f"{TF_DEFINE}/{p['name']}" if p.get("section") == TF_DEFINE else p["name"]): p.get("value")
                    for p in legacy}
    if version < MODELS_COMPAT_MAX:
        models = task.get("models") or {}
        if models.get("input"):
            task.setdefault("execution", {})["model"] = models["input"][0].get("model")
        if models.get("output"):
            task.setdefault("output", {})["model"] = models["output"][-1].get("model")
    return task


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
    from . import project as project_bll

    params: dict = {k: v for k, v in (("hyperparams", request.get("new_task_hyperparams")),
                                      ("configuration", request.get("new_task_configuration")))
                    if v is not None}
    input_models = request.get("new_task_input_models")
    now = now_iso()
    if input_models:
        input_models = [{"model": m.get("model"), "name": m.get("name"), "updated": now} for m in input_models]
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
    params_prepare_for_save(params, previous=source)
    execution["artifacts"] = [a for a in execution.get("artifacts") or [] if a.get("mode", "output") != "output"]
    execution.pop("queue", None)
    if execution.get("model_labels"):
        execution["model_labels"] = {k: int(v) for k, v in execution["model_labels"].items()}
    project = request.get("new_task_project")
    new_project = None
    if not project and request.get("new_project_name"):
        existing = project_bll.find_by_name(call, project_bll.validate_name(request["new_project_name"]))
        project = (existing or project_bll.ensure_project(call, request["new_project_name"]))["id"]
        new_project = {"id": project, "name": request["new_project_name"]}
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

