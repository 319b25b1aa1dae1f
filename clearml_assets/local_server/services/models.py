"""``models.*`` endpoints: the model registry (uri, labels, framework, tags, metadata, ready)."""

from __future__ import annotations

from ..queries import now_iso
from ..registry import ApiError, Call, bad_request, endpoint
from . import projects
from .common import get_all, get_or_raise, ids_of, merge_tags, new_id, required

INVALID = (201, "Invalid model id")
EDITABLE = ("uri", "name", "comment", "tags", "system_tags", "framework", "design", "labels", "project",
            "task", "parent", "ready", "iteration", "ui_cache")


def _model(call: Call, model_id=None) -> dict:
    return get_or_raise(call, "models", model_id if model_id is not None else required(call, "model"), INVALID)


def _save(call: Call, doc: dict) -> None:
    for key in ("tags", "system_tags"):
        doc[key] = sorted(set(doc.get(key) or []))  # stored as sorted lists on the real server
    doc.pop("iteration", None)  # not a model field: it moves the task's last_iteration instead
    doc["last_update"] = now_iso()
    call.store.save("models", doc)


def _check_name(fields: dict) -> None:
    name = fields.get("name")
    if name is not None and (not isinstance(name, str) or len(name.strip()) < 3):
        raise bad_request(f"Validation error: model name must be at least 3 characters (name={name!r})")


def _bump_task_iteration(call: Call, task_id, iteration) -> None:
    """Like the real server: a model write with ``iteration`` raises its task's last_iteration."""
    if not task_id or not isinstance(iteration, int):
        return
    task = call.store.get("tasks", task_id, call.company)
    if task is not None and iteration > (task.get("last_iteration") or 0):
        task["last_iteration"] = iteration
        task["last_update"] = now_iso()
        call.store.save("tasks", task)


def _check_refs(call: Call, fields: dict) -> None:
    if fields.get("project"):
        get_or_raise(call, "projects", fields["project"], projects.INVALID)
    if fields.get("task"):
        get_or_raise(call, "tasks", fields["task"], (101, "Invalid task id"))


@endpoint("models.create")
def create(call: Call) -> dict:
    """Register a model."""
    required(call, "uri")
    required(call, "name")
    fields = {k: call.data[k] for k in EDITABLE if k in call.data}
    _check_name(fields)
    _check_refs(call, fields)
    now = now_iso()
    doc = {"id": new_id(), "company": call.company, "user": call.user, "created": now, "last_update": now,
           "comment": "", "tags": [], "system_tags": [], "labels": {}, "design": {}, "framework": None,
           "ready": False, "project": None, "task": None, "parent": None, "metadata": {}, "last_iteration": 0,
           **fields}
    if call.data.get("metadata"):
        doc["metadata"] = {m["key"]: m for m in call.data["metadata"] if m.get("key")}
    _save(call, doc)
    return {"id": doc["id"], "created": True}


@endpoint("models.get_by_id")
def get_by_id(call: Call) -> dict:
    """One model."""
    return {"model": call.store.copy(_model(call))}


@endpoint("models.get_all")
def get_all_models(call: Call) -> dict:
    """Models filtered, ordered and paged like the real server."""
    data = call.data
    docs = call.store.all("models", call.company)
    if data.get("ready") is not None:
        docs = [d for d in docs if bool(d.get("ready")) == bool(data["ready"])]
    return get_all(call, "models", "models",
                   list_fields=("id", "tags", "system_tags", "project", "task", "user", "framework", "uri",
                                "parent"),
                   date_fields=("last_update", "last_change"), range_fields=("created", "last_iteration"),
                   regex_fields=("name", "comment"),
                   docs=docs)


@endpoint("models.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all``."""
    return get_all_models(call)


@endpoint("models.edit")
def edit(call: Call) -> dict:
    """Change a model's fields (a ready model only with ``force``, except tags)."""
    doc = _model(call)
    fields = {k: call.data[k] for k in EDITABLE if k in call.data}
    if doc.get("ready") and not call.data.get("force") and set(fields) - {"tags", "system_tags", "comment",
                                                                         "name", "ui_cache"}:
        raise ApiError(400, 203, f"Model is ready (model={doc['id']})")
    _check_name(fields)
    _check_refs(call, fields)
    doc.update(fields)
    _save(call, doc)
    _bump_task_iteration(call, doc.get("task"), call.data.get("iteration"))
    return {"updated": 1, "fields": fields}


@endpoint("models.update")
def update(call: Call) -> dict:
    """Update name, comment, tags, system_tags, ready, project, iteration or metadata."""
    doc = _model(call)
    fields = {k: call.data[k] for k in ("name", "comment", "tags", "system_tags", "ready", "project",
                                        "iteration", "ui_cache") if k in call.data}
    _check_name(fields)
    _check_refs(call, fields)
    doc.update(fields)
    if call.data.get("metadata") is not None:
        doc["metadata"] = {m["key"]: m for m in call.data["metadata"] if m.get("key")}
    _save(call, doc)
    _bump_task_iteration(call, doc.get("task"), call.data.get("iteration"))
    return {"updated": 1, "fields": fields}


@endpoint("models.update_for_task")
def update_for_task(call: Call) -> dict:
    """Gone since API 2.13 on the real server: 301/1, use ``tasks.add_or_update_model``."""
    raise ApiError(301, 1, "This endpoint is no longer supported for the requested API version: "
                           "use tasks.add_or_update_model")


@endpoint("models.set_ready")
def set_ready(call: Call) -> dict:
    """Mark a model ready (published)."""
    doc = _model(call)
    doc["ready"] = True
    _save(call, doc)
    return {"updated": 1, "published_task": None}


@endpoint("models.publish_many")
def publish_many(call: Call) -> dict:
    """Mark several models ready."""
    succeeded = []
    for model_id in ids_of(required(call, "ids")):
        doc = _model(call, model_id)
        doc["ready"] = True
        _save(call, doc)
        succeeded.append({"id": model_id, "updated": 1})
    return {"succeeded": succeeded, "failed": []}


@endpoint("models.archive_many")
def archive_many(call: Call) -> dict:
    """Add the ``archived`` system tag to models."""
    succeeded = []
    for model_id in ids_of(required(call, "ids")):
        doc = _model(call, model_id)
        doc["system_tags"] = merge_tags(doc.get("system_tags"), ["archived"])
        _save(call, doc)
        succeeded.append({"id": model_id, "archived": True})
    return {"succeeded": succeeded, "failed": []}


@endpoint("models.delete")
def delete(call: Call) -> dict:
    """Delete a model (detached from tasks that use it)."""
    doc = _model(call)
    for task in call.store.all("tasks", call.company):
        for kind in ("input", "output"):
            lst = (task.get("models") or {}).get(kind) or []
            kept = [m for m in lst if m.get("model") != doc["id"]]
            if len(kept) != len(lst):
                task["models"][kind] = kept
                call.store.save("tasks", task)
    call.store.delete("models", doc["id"])
    return {"deleted": True, "url": doc.get("uri")}


@endpoint("models.add_or_update_metadata")
def add_or_update_metadata(call: Call) -> dict:
    """Upsert metadata items ``{key, type, value}``."""
    doc = _model(call)
    items = required(call, "metadata")
    if call.data.get("replace_metadata"):
        doc["metadata"] = {}
    meta = doc.setdefault("metadata", {})
    for item in items:
        if not item.get("key"):
            raise bad_request("metadata items need a key")
        meta[item["key"]] = {k: item[k] for k in ("key", "type", "value") if k in item}
    _save(call, doc)
    return {"updated": 1}


@endpoint("models.delete_metadata")
def delete_metadata(call: Call) -> dict:
    """Delete metadata items by key."""
    doc = _model(call)
    meta = doc.setdefault("metadata", {})
    for key in required(call, "keys"):
        meta.pop(key, None)
    _save(call, doc)
    return {"updated": 1}
