"""``models.*`` endpoints: the model registry (uri, labels, framework, tags, metadata, ready)."""

from __future__ import annotations

from ..queries import now_iso
from ..registry import ApiError, Call, bad_request, endpoint
from . import projects
from .common import get_all, get_or_raise, ids_of, merge_tags, new_id, required
from .tasks import change_status

INVALID = (201, "Invalid model id")
DELETED_PREFIX = "__DELETED__"
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
    """Change a model's fields (the real server lets ready models change too)."""
    doc = _model(call)
    fields = {k: call.data[k] for k in EDITABLE if k in call.data}
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


def publish_model(call: Call, model_id: str, *, publish_task: bool, force_publish_task: bool) -> tuple[int, dict | None]:
    """The real server's model publishing: 400/203 when already ready; publishes its task unless told not to."""
    doc = _model(call, model_id)
    if doc.get("ready"):
        raise ApiError(400, 203, f"Model is ready (model={doc['id']})")
    published_task = None
    task = call.store.get("tasks", doc.get("task"), call.company) if doc.get("task") else None
    if publish_task and task is not None and task["status"] != "published":
        result = change_status(call, task, "published", force=force_publish_task, published=now_iso())
        published_task = {"id": task["id"], "data": result}
    doc["ready"] = True
    doc["last_change"] = now_iso()
    _save(call, doc)
    return 1, published_task


@endpoint("models.set_ready")
def set_ready(call: Call) -> dict:
    """Mark a model ready (published), publishing its task by default."""
    updated, published_task = publish_model(call, required(call, "model"),
                                            publish_task=call.data.get("publish_task", True),
                                            force_publish_task=bool(call.data.get("force_publish_task")))
    return {"updated": updated, "published_task": published_task}


@endpoint("models.publish_many")
def publish_many(call: Call) -> dict:
    """Publish several models; failures are reported per id like the real batch operations."""
    succeeded, failed = [], []
    for model_id in ids_of(required(call, "ids")):
        try:
            updated, published_task = publish_model(
                call, model_id, publish_task=call.data.get("publish_task", True),
                force_publish_task=bool(call.data.get("force_publish_task")))
        except ApiError as err:
            failed.append({"id": model_id, "error": {"codes": [err.code, err.subcode], "msg": err.msg,
                                                     "data": err.data}})
            continue
        succeeded.append({"id": model_id, "updated": bool(updated), "published_task": published_task})
    return {"succeeded": succeeded, "failed": failed}


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
    """Delete a model; in use as input, or the output of a published task, it needs ``force``."""
    doc = _model(call)
    force = bool(call.data.get("force"))
    gone = DELETED_PREFIX + doc["id"]
    users = [t for t in call.store.all("tasks", call.company)
             if any(m.get("model") == doc["id"] for m in (t.get("models") or {}).get("input") or [])]
    if users and not force:
        raise ApiError(400, 205, f"Model in use as execution model, use force=True to delete "
                                 f"(model={doc['id']}, num_tasks={len(users)})")
    now = now_iso()
    for task in users:
        for entry in task["models"]["input"]:
            if entry.get("model") == doc["id"]:
                entry["model"] = gone
        task["last_change"] = now
        call.store.save("tasks", task)
    task = call.store.get("tasks", doc.get("task"), call.company) if doc.get("task") else None
    if task is not None:
        outputs = (task.get("models") or {}).get("output") or []
        if task["status"] == "published":
            if not force:
                raise ApiError(400, 206, f"Task that created this model exists and published, use force=True "
                                         f"to delete (task={task['id']})")
            for entry in outputs:
                if entry.get("model") == doc["id"]:
                    entry["model"] = gone
            task.setdefault("output", {})["error"] = f"model deleted on {now}"
        else:
            task.setdefault("models", {})["output"] = [m for m in outputs if m.get("model") != doc["id"]]
        task["last_change"] = now
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
