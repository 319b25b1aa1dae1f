"""Project names and the project tree (clearml-server ``bll/project/sub_projects.py``): ``a/b/c`` names, parents
created on demand, descendants found through each project's ``path`` (its ancestors' ids)."""

from __future__ import annotations

from typing import Any, Iterable

from ...core import ApiError, Call, new_id, now_iso
from ...core.constants import INVALID_PROJECT
from ..access import get_for_writing

INVALID = INVALID_PROJECT
MAX_DEPTH = 200
"""Projects nest at most this deep: deeper names are refused (400/407) instead of building paths no client,
web page or archive can hold."""
MAX_NAME_LENGTH = 4000


def validate_name(name: Any) -> str:
    """The real ``_validate_project_name``: empty path parts dropped; nothing left is 400/407."""
    text = str(name or "").strip()
    if len(text) > MAX_NAME_LENGTH:
        raise ApiError(400, 407, f"Invalid project name: {len(text)} characters, at most {MAX_NAME_LENGTH}")
    parts = [p for p in text.split("/") if p]
    if not parts:
        raise ApiError(400, 407, f"Invalid project name: name={name}")
    if len(parts) > MAX_DEPTH:
        raise ApiError(400, 407, f"Invalid project name: {len(parts)} levels deep, at most {MAX_DEPTH} "
                                 f"(name={text[:80]}...)")
    return "/".join(parts)


def find_by_name(call: Call, name: str) -> dict | None:
    """The company's project of exactly this name."""
    for doc in call.store.all("projects", call.company):
        if doc["name"] == name:
            return doc
    return None


def ensure_project(call: Call, name: str, **fields) -> dict:
    """Find a project by name or create it, creating every missing parent like the real server."""
    parts = validate_name(name).split("/")
    existing = {d["name"]: d for d in call.store.all("projects", call.company)}
    parent = None
    for depth in range(1, len(parts) + 1):  # a loop, not recursion: names may be deep
        path = "/".join(parts[:depth])
        doc = existing.get(path)
        if doc is None:
            doc = _new_project(call, path, parent, fields if depth == len(parts) else {})
        parent = doc
    return parent


def _new_project(call: Call, name: str, parent: dict | None, fields: dict) -> dict:
    """Create the project ``name`` under ``parent`` (None: at the top)."""
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


def children(call: Call, project_ids: Iterable[str], search_hidden: bool = True) -> dict[str, list[dict]]:
    """Every descendant of each project (by ``path``)."""
    wanted = set(project_ids)
    out: dict[str, list[dict]] = {p: [] for p in wanted}
    for doc in call.store.all("projects", call.company, allow_public=True):
        if not search_hidden and "hidden" in (doc.get("system_tags") or []):
            continue
        for ancestor in doc.get("path") or []:
            if ancestor in wanted:
                out[ancestor].append(doc)
    return out


def ids_with_children(call: Call, project_ids: Iterable[str]) -> list[str]:
    """The projects and all their descendants."""
    ids = [p for p in project_ids if p]
    found = children(call, ids)
    return list(dict.fromkeys(ids + [c["id"] for kids in found.values() for c in kids]))


def with_subprojects(call: Call, data: dict) -> dict:
    """The real ``process_include_subprojects``: ``project`` widened to the sub-projects when asked."""
    include = data.pop("include_subprojects", False)
    project = data.get("project")
    if project and include:
        data["project"] = ids_with_children(call, project if isinstance(project, list) else [project])
    return data


def target_project(call: Call) -> str | None:
    """``project`` (an id, checked) or ``project_name`` (found or created) of a move request; None: root."""
    if call.data.get("project_name"):
        return ensure_project(call, call.data["project_name"])["id"]
    project_id = call.data.get("project")
    if project_id:
        get_for_writing(call, "projects", project_id, INVALID)
    return project_id or None
