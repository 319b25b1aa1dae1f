"""``projects.*`` endpoints: nested names (``a/b/c``) with auto-created parents, hidden projects."""

from __future__ import annotations

from ..queries import now_iso
from ..registry import ApiError, Call, bad_request, endpoint
from .common import get_all, get_or_raise, ids_of, new_id, required

INVALID = (401, "Invalid project id")


def _normalize_name(name: str) -> str:
    parts = [p.strip() for p in str(name).split("/")]
    if not name or any(not p for p in parts):
        raise bad_request(f"Invalid project name {name!r}: empty path component")
    return "/".join(parts)


def find_by_name(call: Call, name: str) -> dict | None:
    """The company's project of exactly this name."""
    for doc in call.store.all("projects", call.company):
        if doc["name"] == name:
            return doc
    return None


def ensure_project(call: Call, name: str, **fields) -> dict:
    """Find a project by name or create it, creating every missing parent like the real server."""
    name = _normalize_name(name)
    existing = find_by_name(call, name)
    if existing is not None:
        return existing
    parent = None
    if "/" in name:
        parent = ensure_project(call, name.rsplit("/", 1)[0])
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


@endpoint("projects.create")
def create(call: Call) -> dict:
    """Create a project (parents auto-created); a duplicate name is 400/801."""
    name = _normalize_name(call.require("name"))  # registered with required_fields: 400/11
    if find_by_name(call, name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists (name={name})")
    fields = {k: v for k, v in call.data.items() if k != "name"}
    return {"id": ensure_project(call, name, **fields)["id"]}


@endpoint("projects.get_by_id")
def get_by_id(call: Call) -> dict:
    """One project."""
    return {"project": call.store.copy(get_or_raise(call, "projects", required(call, "project"), INVALID))}


@endpoint("projects.get_all")
def get_all_projects(call: Call) -> dict:
    """Projects filtered like the real server; hidden ones only with ``search_hidden`` or explicit ids.

    ``parent`` matches any ancestor (the project's ``path``) unless ``shallow_search``, which without a
    ``parent`` lists top-level projects only.
    """
    data = dict(call.data)
    data.pop("path", None)
    if not data.get("shallow_search"):
        if "parent" in data:
            data["path"] = data.pop("parent")
    elif "parent" not in data:
        data["parent"] = [None]
    docs = call.store.all("projects", call.company)
    if not data.get("search_hidden") and not data.get("id"):
        docs = [d for d in docs if "hidden" not in (d.get("system_tags") or [])]
    call = Call(endpoint=call.endpoint, data=data, company=call.company, user=call.user, store=call.store,
                requested_version=call.requested_version, extra=call.extra)
    return get_all(call, "projects", "projects", list_fields=("id", "tags", "system_tags", "parent", "path"),
                   regex_fields=("name", "basename", "description"), range_fields=("last_update",), docs=docs)


@endpoint("projects.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all`` (no statistics)."""
    return get_all_projects(call)


@endpoint("projects.update")
def update(call: Call) -> dict:
    """Update name, description, tags, system_tags or default output destination."""
    doc = get_or_raise(call, "projects", required(call, "project"), INVALID)
    fields = {k: call.data[k] for k in ("name", "description", "tags", "system_tags",
                                        "default_output_destination") if k in call.data}
    for key in ("tags", "system_tags"):
        if key in fields:
            fields[key] = sorted(set(fields[key] or []))  # stored as sorted lists on the real server
    if "name" in fields:
        fields["name"] = _normalize_name(fields["name"])
        fields["basename"] = fields["name"].split("/")[-1]
        if fields["name"] != doc["name"]:
            _rename(call, doc, fields["name"])
    doc.update(fields)
    doc["last_update"] = now_iso()
    call.store.save("projects", doc)
    return {"updated": 1, "fields": fields}


def _rename(call: Call, doc: dict, new_name: str) -> None:
    """Rename a project in place (same parent, like the real server) and every descendant's name."""
    if find_by_name(call, new_name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists (name={new_name})")
    old_parent, new_parent = doc["name"].rpartition("/")[0], new_name.rpartition("/")[0]
    if old_parent != new_parent:
        raise bad_request(f"Project name {new_name!r} would move it: use projects.move")
    old_prefix = doc["name"] + "/"
    for child in call.store.all("projects", call.company):
        if child["name"].startswith(old_prefix):
            child["name"] = new_name + "/" + child["name"][len(old_prefix):]
            child["last_update"] = now_iso()
            call.store.save("projects", child)


@endpoint("projects.delete")
def delete(call: Call) -> dict:
    """Delete a project that has no tasks or models (or with ``force``)."""
    doc = get_or_raise(call, "projects", required(call, "project"), INVALID)
    ids = {doc["id"]} | {p["id"] for p in call.store.all("projects", call.company)
                         if doc["id"] in (p.get("path") or [])}
    tasks = [t for t in call.store.all("tasks", call.company) if t.get("project") in ids]
    if tasks and not call.data.get("force"):
        raise ApiError(400, 402, f"project has associated tasks (project={doc['id']}, tasks={len(tasks)})")
    for pid in ids:
        call.store.delete("projects", pid)
    return {"deleted": len(ids), "disassociated_tasks": 0}


@endpoint("projects.get_hyper_parameters")
def get_hyper_parameters(call: Call) -> dict:
    """Hyperparameter sections/names used by the project's tasks."""
    pid = required(call, "project")
    seen = []
    for task in call.store.all("tasks", call.company):
        if task.get("project") in ids_of(pid):
            for section, params in (task.get("hyperparams") or {}).items():
                for name in params:
                    item = {"section": section, "name": name}
                    if item not in seen:
                        seen.append(item)
    return {"parameters": seen, "remaining": 0, "total": len(seen)}
