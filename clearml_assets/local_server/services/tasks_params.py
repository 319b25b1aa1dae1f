"""``tasks.*`` edits of a task's parameters: hyperparameters, configuration, artifacts, input and output models,
requirements."""

from __future__ import annotations

from .. import apimodels as req
from ..bll.task import check_updatable, get_task, get_task_readable, properties_only, save_task
from ..core import ApiError, Call, bad_request, endpoint, now_iso


def _items(models: list) -> list[dict]:
    return [m.model_dump(exclude_none=True) for m in models]


@endpoint("tasks.edit_hyper_params", request_data_model=req.EditHyperParamsRequest)
def edit_hyper_params(call: Call) -> dict:
    """Add or replace hyperparameters (``replace_hyperparams``: none, section or all)."""
    m: req.EditHyperParamsRequest = call.model
    doc = get_task(call, m.task)
    params = _items(m.hyperparams)
    check_updatable(call, doc, force=m.force, allow_all=properties_only(params))
    current = doc.setdefault("hyperparams", {})
    if m.replace_hyperparams == "all":
        current.clear()
    if m.replace_hyperparams == "section":
        for section in {p["section"] for p in params}:
            current.pop(section, None)
    for p in params:
        if "name" not in p:
            raise bad_request("Validation error: hyperparams items need section and name")
        item = {k: p[k] for k in ("section", "name", "value", "type", "description") if k in p}
        current.setdefault(p["section"], {})[p["name"]] = item
    save_task(call, doc)
    return {"updated": 1}


@endpoint("tasks.get_hyper_params", request_data_model=req.GetHyperParamsRequest)
def get_hyper_params(call: Call) -> dict:
    """Hyperparameters of tasks, as lists sorted by section and name."""
    def params(task_id: str) -> list[dict]:
        sections = (get_task_readable(call, task_id).get("hyperparams") or {}).values()
        return sorted((p for section in sections for p in section.values()),
                      key=lambda p: (str(p.get("section")), str(p.get("name"))))
    return {"params": [{"task": t, "hyperparams": params(t)} for t in call.model.tasks]}


@endpoint("tasks.delete_hyper_params", request_data_model=req.DeleteHyperParamsRequest)
def delete_hyper_params(call: Call) -> dict:
    """Delete whole sections (no ``name``) or single parameters."""
    m: req.DeleteHyperParamsRequest = call.model
    doc = get_task(call, m.task)
    params = _items(m.hyperparams)
    check_updatable(call, doc, force=m.force, allow_all=properties_only(params))
    current = doc.setdefault("hyperparams", {})
    whole = {p["section"] for p in params if not p.get("name")}
    if any(p.get("name") and p["section"] in whole for p in params):
        raise ApiError(400, 15, "Cannot delete section field if the whole section was scheduled for deletion")
    deleted = 0
    for p in params:
        section = current.get(p["section"])
        if section is None:
            continue
        if not p.get("name"):
            current.pop(p["section"])
            deleted += 1
        elif section.pop(p["name"], None) is not None:
            deleted += 1
    save_task(call, doc)
    return {"deleted": deleted}


@endpoint("tasks.edit_configuration", request_data_model=req.EditConfigurationRequest)
def edit_configuration(call: Call) -> dict:
    """Add or replace configuration items."""
    m: req.EditConfigurationRequest = call.model
    doc = get_task(call, m.task)
    check_updatable(call, doc, force=m.force)
    if m.replace_configuration:
        doc["configuration"] = {}
    current = doc.setdefault("configuration", {})
    for item in _items(m.configuration):
        if not item["name"]:
            raise bad_request("Validation error: Empty configuration name is not allowed")
        current[item["name"]] = {k: item[k] for k in ("name", "value", "type", "description") if k in item}
    save_task(call, doc)
    return {"updated": 1}


@endpoint("tasks.delete_configuration", request_data_model=req.DeleteConfigurationRequest)
def delete_configuration(call: Call) -> dict:
    """Delete configuration items by name."""
    m: req.DeleteConfigurationRequest = call.model
    doc = get_task(call, m.task)
    check_updatable(call, doc, force=m.force)
    current = doc.setdefault("configuration", {})
    deleted = sum(current.pop(name, None) is not None for name in set(m.configuration))
    save_task(call, doc)
    return {"deleted": deleted}


@endpoint("tasks.get_configurations", request_data_model=req.GetConfigurationsRequest)
def get_configurations(call: Call) -> dict:
    """Configuration items of tasks (optionally only some names), sorted by name."""
    names = call.model.names
    return {"configurations": [
        {"task": t, "configuration": sorted((v for k, v in (get_task_readable(call, t).get("configuration") or {}).items()
                                             if not names or k in names), key=lambda c: str(c.get("name")))}
        for t in call.model.tasks]}


@endpoint("tasks.get_configuration_names", request_data_model=req.GetConfigurationNamesRequest)
def get_configuration_names(call: Call) -> dict:
    """Configuration item names of tasks (items with an empty value skipped unless ``skip_empty`` is false)."""
    skip_empty = call.model.skip_empty

    def names(task_id: str) -> list[str]:
        items = (get_task_readable(call, task_id).get("configuration") or {}).items()
        return sorted(k for k, v in items if not skip_empty or (v or {}).get("value"))
    return {"configurations": [{"task": t, "names": names(t)} for t in call.model.tasks]}


@endpoint("tasks.add_or_update_artifacts", request_data_model=req.AddOrUpdateArtifactsRequest)
def add_or_update_artifacts(call: Call) -> dict:
    """Upsert artifacts by (key, mode); the real service always forces (created or in_progress)."""
    m: req.AddOrUpdateArtifactsRequest = call.model
    doc = get_task(call, m.task)
    check_updatable(call, doc, force=True)
    current = doc.setdefault("execution", {}).setdefault("artifacts", [])
    position: dict[tuple, int] = {}  # (key, mode) -> index: linear in the number of artifacts, not quadratic
    for i, old in enumerate(current):
        position.setdefault((old.get("key"), old.get("mode", "output")), i)
    for art in m.artifacts:
        art = art.model_dump(exclude_none=True)
        where = position.setdefault((art["key"], art["mode"]), len(current))
        if where < len(current):
            current[where] = art
        else:
            current.append(art)
    save_task(call, doc)
    return {"updated": len(m.artifacts)}


@endpoint("tasks.delete_artifacts", request_data_model=req.DeleteArtifactsRequest)
def delete_artifacts(call: Call) -> dict:
    """Delete artifacts by (key, mode)."""
    m: req.DeleteArtifactsRequest = call.model
    doc = get_task(call, m.task)
    check_updatable(call, doc, force=True)
    current = doc.setdefault("execution", {}).setdefault("artifacts", [])
    gone = {(a.key, a.mode) for a in m.artifacts}
    kept = [a for a in current if (a.get("key"), a.get("mode", "output")) not in gone]
    doc["execution"]["artifacts"] = kept
    save_task(call, doc)
    return {"deleted": len(current) - len(kept)}


@endpoint("tasks.add_or_update_model", request_data_model=req.AddOrUpdateModelRequest)
def add_or_update_model(call: Call) -> dict:
    """Attach an input or output model by name (an output with ``iteration`` raises last_iteration)."""
    m: req.AddOrUpdateModelRequest = call.model
    doc = get_task(call, m.task)
    check_updatable(call, doc, force=True)
    entry = {"name": m.name, "model": m.model, "updated": now_iso()}
    models = doc.setdefault("models", {}).setdefault(m.type, [])
    for i, old in enumerate(models):
        if old.get("name") == entry["name"]:
            models[i] = entry
            break
    else:
        models.append(entry)
    if m.type == "output" and m.iteration is not None:
        doc["last_iteration"] = max(doc.get("last_iteration") or 0, m.iteration)
    save_task(call, doc)
    return {"updated": 1}


@endpoint("tasks.delete_models", request_data_model=req.DeleteModelsRequest)
def delete_models(call: Call) -> dict:
    """Detach models by (name, type)."""
    m: req.DeleteModelsRequest = call.model
    doc = get_task(call, m.task)
    check_updatable(call, doc, force=True)
    deleted = 0
    for item in m.models:
        lst = doc.setdefault("models", {}).setdefault(item.type, [])
        before = len(lst)
        lst[:] = [e for e in lst if e.get("name") != item.name]
        deleted += before - len(lst)
    save_task(call, doc)
    return {"updated": 1 if deleted else 0}
