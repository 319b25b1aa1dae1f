"""``models.*`` endpoints: the model registry (uri, labels, framework, tags, metadata, ready).

Behaviour follows clearml-server 1.9.2 (API 2.23) ``services/models.py`` and ``bll/model``.
"""

from __future__ import annotations

from .. import apimodels as req
from ..bll.access import get_for_writing, get_or_raise, merge_tags, run_batch
from ..bll.project import ids_with_children, with_subprojects
from ..bll.task import publish_task
from ..core import ApiError, Call, bad_request, endpoint, new_id, now_iso, required
from ..core.constants import DELETED_PREFIX, INVALID_MODEL, INVALID_PROJECT
from ..store.queries import get_all
from . import projects
from .common import archive_many_endpoints, publicity_endpoints, update_tags_endpoint

INVALID = INVALID_MODEL
# models.create / models.edit fields (create_fields of the real service)
CREATE_FIELDS = ("name", "tags", "system_tags", "task", "comment", "uri", "project", "parent", "framework",
                 "design", "labels", "ready", "metadata", "ui_cache")
# models.update stores the Model fields marked user_set_allowed only
UPDATE_FIELDS = ("name", "project", "created", "comment", "tags", "system_tags", "uri", "ui_cache", "metadata")
# models.update_for_task exists up to API 2.13 (ModelsBackwardsCompatibility.max_version)
COMPAT_MAX_VERSION = (2, 13)


def _model(call: Call, model_id=None) -> dict:
    """The company's own model (the real ``get_company_model_by_id``: a public model is an invalid id)."""
    return get_or_raise(call, "models", model_id if model_id is not None else required(call, "model"), INVALID)


def _save(call: Call, doc: dict) -> None:
    for key in ("tags", "system_tags"):
        doc[key] = sorted(set(doc.get(key) or []))  # stored as sorted lists on the real server
    doc.pop("iteration", None)  # not a model field: it moves the task's last_iteration instead
    call.store.save("models", doc)


def _metadata(value) -> dict:
    """Metadata as stored: a dict keyed by ``key`` (the API takes the dict or a list of items)."""
    items = value.values() if isinstance(value, dict) else (value or [])
    out = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("key"):
            raise bad_request("metadata items need a key")
        out[item["key"]] = {k: item[k] for k in ("key", "type", "value") if k in item}
    return out


def _check_fields(call: Call, fields: dict) -> dict:
    """The real ``prepare_update_fields``: name length, labels types, referenced ids, metadata shape."""
    name = fields.get("name")
    if name is not None:
        if not isinstance(name, str) or len(name.strip()) < 3:
            raise bad_request(f"Validation error: model name must be at least 3 characters (name={name!r})")
        fields["name"] = name.strip()
    labels = fields.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or any(not isinstance(k, str) for k in labels):
            raise bad_request("labels keys must be strings")
        if any(not isinstance(v, int) or isinstance(v, bool) for v in labels.values()):
            raise bad_request("labels values must be integers")
    if "uri" in fields:
        fields.setdefault("ui_cache", {})  # a new URI clears the UI cache
    if fields.get("project"):
        get_or_raise(call, "projects", fields["project"], INVALID_PROJECT)
    if fields.get("task"):
        get_for_writing(call, "tasks", fields["task"], (101, "Invalid task id"))
    if "metadata" in fields:
        fields["metadata"] = _metadata(fields["metadata"])
    return fields


def bump_task_iteration(call: Call, task_id, iteration) -> None:
    """The real ``TaskBLL.update_statistics(last_iteration_max=...)``: raise the task's last_iteration."""
    if not task_id or not isinstance(iteration, int) or isinstance(iteration, bool):
        return
    task = call.store.get("tasks", task_id, call.company)
    if task is not None and iteration > (task.get("last_iteration") or 0):
        task["last_iteration"] = iteration
        task["last_update"] = now_iso()
        call.store.save("tasks", task)


def new_model_doc(call: Call, company: str, fields: dict) -> dict:
    now = now_iso()
    return {"id": new_id(), "company": company, "user": call.user, "created": now, "last_update": now,
            "comment": "", "tags": [], "system_tags": [], "labels": {}, "design": {}, "framework": None,
            "ready": True, "project": None, "task": None, "parent": None, "metadata": {}, "uri": "", **fields}


@endpoint("models.create", request_data_model=req.CreateModelRequest)
def create(call: Call) -> dict:
    """Register a model (``ready`` defaults to true, as the real CreateModelRequest; ``public`` makes it public)."""
    m: req.CreateModelRequest = call.model
    given = m.model_dump(exclude_unset=True, exclude={"public"})
    fields = _check_fields(call, {"ready": m.ready, **{k: given[k] for k in CREATE_FIELDS if k in given}})
    doc = new_model_doc(call, "" if m.public else call.company, fields)
    _save(call, doc)
    return {"id": doc["id"], "created": True}


@endpoint("models.get_by_id", required_fields=("model",))
def get_by_id(call: Call) -> dict:
    """One model (public models too)."""
    doc = get_or_raise(call, "models", call.data["model"], INVALID, allow_public=True)
    return {"model": call.store.copy(doc)}


MODEL_QUERY = dict(list_fields=("id", "tags", "system_tags", "project", "task", "user", "framework", "uri",
                                "parent"),
                   date_fields=("last_update", "last_change"), range_fields=("created", "last_iteration"),
                   regex_fields=("name", "comment"))


def _query_docs(call: Call) -> list[dict]:
    docs = call.store.all("models", call.company, allow_public=True)
    if call.data.get("ready") is not None:
        docs = [d for d in docs if bool(d.get("ready")) == bool(call.data["ready"])]
    return docs


@endpoint("models.get_all")
def get_all_models(call: Call) -> dict:
    """Models filtered, ordered and paged like the real server (public ones included; ``include_subprojects``
    widens ``project`` to its sub-projects)."""
    data = with_subprojects(call, dict(call.data))
    return get_all(call, "models", "models", docs=_query_docs(call), data=data, **MODEL_QUERY)


@endpoint("models.get_by_id_ex", required_fields=("id",), min_version="2.11")
def get_by_id_ex(call: Call) -> dict:
    """The models of ``id`` (public ones too) with references joined, as ``get_all_ex``."""
    docs = call.store.all("models", call.company, allow_public=True)
    return get_all(call, "models", "models", data=dict(call.data), docs=docs, expand=True, **MODEL_QUERY)


@endpoint("models.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all``, with references expanded/joined; ``include_stats`` adds ``stats.labels_count``."""
    data = with_subprojects(call, dict(call.data))
    result = get_all(call, "models", "models", docs=_query_docs(call), data=data, **MODEL_QUERY)
    if call.data.get("include_stats"):
        for row in result["models"]:
            doc = call.store.get("models", row["id"], call.company, allow_public=True) or {}
            row["stats"] = {"labels_count": len(doc.get("labels") or {})}
    return result


@endpoint("models.get_frameworks", request_data_model=req.GetFrameworksRequest)
def get_frameworks(call: Call) -> dict:
    """Frameworks of the company's models (optionally under some projects and their sub-projects), sorted."""
    projects_ = call.model.projects
    wanted = set(ids_with_children(call, projects_)) if projects_ else set()
    docs = call.store.all("models", call.company, allow_public=True)
    return {"frameworks": sorted({d["framework"] for d in docs if d.get("framework")
                                  and (not wanted or d.get("project") in wanted)})}


@endpoint("models.edit", required_fields=("model",))
def edit(call: Call) -> dict:
    """Change a model's fields; embedded dicts merge; ``iteration`` raises its task's last_iteration."""
    doc = _model(call)
    fields = _check_fields(call, {k: call.data[k] for k in CREATE_FIELDS if k in call.data})
    bump_task_iteration(call, doc.get("task") or fields.get("task"), call.data.get("iteration"))
    if not fields:
        return {"updated": 0}
    if any(k in fields for k in ("uri", "framework", "design", "labels", "ready", "metadata", "system_tags",
                                 "tags")):
        doc["last_update"] = now_iso()
    doc.update(fields)
    _save(call, doc)
    return {"updated": 1, "fields": fields}


def update_model(call: Call, model_id: str, data: dict) -> dict:
    """The real ``_update_model``: only user-settable fields are stored; ``task``+``iteration`` bump the task."""
    doc = _model(call, model_id)
    _check_fields(call, {k: data[k] for k in ("name", "project", "task", "labels") if k in data})
    bump_task_iteration(call, data.get("task"), data.get("iteration"))
    fields = {k: data[k] for k in UPDATE_FIELDS if k in data}
    if "metadata" in fields:
        fields["metadata"] = _metadata(fields["metadata"])
    if "uri" in fields:
        fields.setdefault("ui_cache", {})
    if not fields:
        return {"updated": 0, "fields": {}}
    doc.update(fields)
    if any(k in fields for k in ("uri", "metadata", "system_tags", "tags")):
        doc["last_update"] = now_iso()
    _save(call, doc)
    return {"updated": 1, "fields": fields}


@endpoint("models.update", required_fields=("model",))
def update(call: Call) -> dict:
    """Update name, comment, tags, system_tags, created, uri, ui_cache, project or metadata."""
    return update_model(call, call.data["model"], call.data)


@endpoint("models.update_for_task", required_fields=("task",))
def update_for_task(call: Call) -> dict:
    """The pre-2.13 way to set a task's output model; from API 2.14 on the real 301/1."""
    if call.api_version > COMPAT_MAX_VERSION:
        raise ApiError(301, 1, "This endpoint is no longer supported for the requested API version: "
                               "use tasks.add_or_update_model")
    task_id = call.data["task"]
    uri, override = call.data.get("uri"), call.data.get("override_model_id")
    if not (uri or override) or (uri and override):
        raise ApiError(400, 11, "Validation error (missing required fields): exactly one field is required: "
                                "fields=(uri, override_model_id)")
    task = get_for_writing(call, "tasks", task_id, (101, "Invalid task id"))
    if task["status"] not in ("created", "in_progress"):
        raise ApiError(400, 110, f"Invalid task status (model can only be updated for tasks in the "
                                 f"['created', 'in_progress'] states, id={task_id}, company={call.company})")
    if override:
        model = _model(call, override)
    else:
        data = {"name": task["name"], "comment": f"Created by task `{task['name']}` ({task['id']})",
                **call.data}
        outputs = (task.get("models") or {}).get("output") or []
        if outputs:
            model_id = outputs[-1]["model"]
            return {**update_model(call, model_id, data), "id": model_id, "created": False}
        execution = task.get("execution") or {}
        inputs = (task.get("models") or {}).get("input") or []
        fields = _check_fields(call, {k: data[k] for k in CREATE_FIELDS if k in data})
        model = new_model_doc(call, call.company, {
            "project": task.get("project"), "framework": execution.get("framework"),
            "parent": inputs[0]["model"] if inputs else None, "design": execution.get("model_desc") or {},
            "labels": execution.get("model_labels") or {}, "ready": task["status"] == "published", **fields})
        _save(call, model)
    bump_task_iteration(call, task_id, call.data.get("iteration"))
    task.setdefault("models", {})["output"] = [{"model": model["id"], "name": "output", "updated": now_iso()}]
    call.store.save("tasks", task)
    return {"id": model["id"], "created": True}


def publish_model(call: Call, model_id: str, *, publish_task_too: bool, force_publish_task: bool) -> tuple[int, dict | None]:
    """The real ``ModelBLL.publish_model``: 400/203 when already ready; publishes its task unless told not to."""
    doc = _model(call, model_id)
    if doc.get("ready"):
        raise ApiError(400, 203, f"Model is ready (company={call.company}, model={doc['id']})")
    published_task = None
    task = call.store.get("tasks", doc.get("task"), call.company) if doc.get("task") else None
    if publish_task_too and task is not None and task["status"] != "published":
        result = publish_task(call, task["id"], force=force_publish_task, publish_models=False)
        published_task = {"id": task["id"], "data": result}
    doc["ready"] = True
    doc["last_update"] = now_iso()
    _save(call, doc)
    return 1, published_task


@endpoint("models.set_ready", request_data_model=req.PublishModelRequest)
def set_ready(call: Call) -> dict:
    """Mark a model ready (published), publishing its task by default."""
    m: req.PublishModelRequest = call.model
    updated, published_task = publish_model(call, m.model, publish_task_too=m.publish_task,
                                            force_publish_task=m.force_publish_task)
    return {"updated": updated, "published_task": published_task}


@endpoint("models.publish_many", request_data_model=req.ModelsPublishManyRequest)
def publish_many(call: Call) -> dict:
    """Publish several models; failures are reported per id like the real batch operations."""
    m: req.ModelsPublishManyRequest = call.model

    def one(model_id: str) -> dict:
        updated, published_task = publish_model(call, model_id, publish_task_too=m.publish_task,
                                                force_publish_task=m.force_publish_task)
        return {"updated": bool(updated), "published_task": published_task}
    return run_batch(m.ids, one)


def _set_archived(call: Call, model_id: str, archived: bool) -> bool:
    doc = _model(call, model_id)
    tags = doc.get("system_tags") or []
    if archived == ("archived" in tags):
        return False
    doc["system_tags"] = merge_tags(tags, ["archived"]) if archived else [t for t in tags if t != "archived"]
    doc["last_update"] = now_iso()
    _save(call, doc)
    return True


archive_many_endpoints("models", req.BatchRequest, _set_archived)


def delete_model(call: Call, model_id: str, force: bool) -> dict:
    """The real ``ModelBLL.delete_model``: in use as input, or output of a published task, needs ``force``."""
    doc = _model(call, model_id)
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


@endpoint("models.delete", request_data_model=req.DeleteModelRequest)
def delete(call: Call) -> dict:
    """Delete a model; in use as input, or the output of a published task, it needs ``force``."""
    return delete_model(call, call.model.model, call.model.force)


@endpoint("models.delete_many", request_data_model=req.ModelsDeleteManyRequest)
def delete_many(call: Call) -> dict:
    """Delete several models (per-id results)."""
    return run_batch(call.model.ids, lambda i: delete_model(call, i, call.model.force))


publicity_endpoints("models", INVALID)
update_tags_endpoint("models", INVALID)


def _move(call: Call, model_id: str, project_id: str | None) -> None:
    doc = _model(call, model_id)
    doc["project"] = project_id
    doc["last_update"] = now_iso()
    _save(call, doc)


projects.move_endpoint("models", _move)


@endpoint("models.add_or_update_metadata", request_data_model=req.AddOrUpdateMetadataRequest)
def add_or_update_metadata(call: Call) -> dict:
    """Upsert metadata items ``{key, type, value}``."""
    m: req.AddOrUpdateMetadataRequest = call.model
    doc = _model(call, m.model)
    items = _metadata([i.model_dump(exclude_unset=True) for i in m.metadata])
    if m.replace_metadata:
        doc["metadata"] = {}
    doc.setdefault("metadata", {}).update(items)
    doc["last_update"] = now_iso()
    _save(call, doc)
    return {"updated": 1}


@endpoint("models.delete_metadata", request_data_model=req.DeleteMetadataRequest)
def delete_metadata(call: Call) -> dict:
    """Delete metadata items by key."""
    doc = _model(call, call.model.model)
    meta = doc.setdefault("metadata", {})
    for key in call.model.keys:
        meta.pop(key, None)
    doc["last_update"] = now_iso()
    _save(call, doc)
    return {"updated": 1}
