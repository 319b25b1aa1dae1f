"""Renaming, moving and merging projects (clearml-server ``bll/project/project_bll.py``)."""

from __future__ import annotations

from typing import Any

from ...core import ApiError, Call, now_iso
from ..access import get_for_writing, get_or_raise
from .sub_projects import INVALID, ensure_project, find_by_name, validate_name


def rename(call: Call, doc: dict, new_name: str) -> None:
    """Rename a project in place: the location (parent path) may not change (400/408)."""
    if new_name.rpartition("/")[0] != doc["name"].rpartition("/")[0]:
        raise ApiError(400, 408, "Cannot update project location. Use projects.move instead")
    if find_by_name(call, new_name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists (name={new_name})")
    _rebase(call, doc, new_name)


def _rebase(call: Call, doc: dict, new_name: str) -> int:
    """Give ``doc`` the name ``new_name`` and every descendant the matching new prefix; returns how many."""
    old_prefix = doc["name"] + "/"
    moved = 0
    for child in call.store.all("projects", call.company):
        if child["name"].startswith(old_prefix):
            child["name"] = new_name + "/" + child["name"][len(old_prefix):]
            child["last_update"] = now_iso()
            call.store.save("projects", child)
            moved += 1
    doc.update(name=new_name, basename=new_name.split("/")[-1], last_update=now_iso())
    call.store.save("projects", doc)
    return moved + 1


def _reparent(call: Call, doc: dict, parent: dict | None) -> None:
    """Set ``parent``/``path`` of ``doc`` and fix the paths of its descendants."""
    old_path = (doc.get("path") or []) + [doc["id"]]
    doc["parent"] = parent["id"] if parent else None
    doc["path"] = ((parent.get("path") or []) + [parent["id"]]) if parent else []
    call.store.save("projects", doc)
    new_path = doc["path"] + [doc["id"]]
    for child in call.store.all("projects", call.company):
        path = child.get("path") or []
        if path[:len(old_path)] == old_path and child["id"] != doc["id"]:
            child["path"] = new_path + path[len(old_path):]
            call.store.save("projects", child)


def move_project(call: Call, project_id: str, new_location: str | None) -> int:
    """``projects.move``: under ``new_location`` (created if missing) or to the top; returns projects moved."""
    doc = get_for_writing(call, "projects", project_id, INVALID)
    location = validate_name(new_location) if new_location and new_location.strip("/") else ""
    if location and (location == doc["name"] or location.startswith(doc["name"] + "/")):
        raise ApiError(400, 12, "Validation error: the project cannot be moved under itself")
    parent = ensure_project(call, location) if location else None
    new_name = f"{location}/{doc['basename']}" if location else doc["basename"]
    if new_name != doc["name"] and find_by_name(call, new_name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists (name={new_name})")
    _reparent(call, doc, parent)
    return _rebase(call, doc, new_name)


def merge_project(call: Call, source_id: str, destination_id: str | None) -> tuple[int, int]:
    """``projects.merge``: the source's contents and children move into the destination; the source goes."""
    source = get_for_writing(call, "projects", source_id, INVALID)
    destination = get_for_writing(call, "projects", destination_id, INVALID) if destination_id else None
    if destination and (destination["id"] == source["id"] or source["id"] in (destination.get("path") or [])):
        raise ApiError(400, 12, "Validation error: cannot merge a project into itself or its child")
    moved_entities = 0
    for collection in ("tasks", "models"):
        for doc in call.store.all(collection, call.company):
            if doc.get("project") == source["id"]:
                doc["project"] = destination["id"] if destination else None
                call.store.save(collection, doc)
                moved_entities += 1
    moved_projects = 0
    for child in [c for c in call.store.all("projects", call.company) if c.get("parent") == source["id"]]:
        _reparent(call, child, destination)
        base = destination["name"] + "/" if destination else ""
        _rebase(call, child, base + child["basename"])
        moved_projects += 1
    call.store.delete("projects", source["id"])
    return moved_entities, moved_projects


def get_readable(call: Call, project_id: Any) -> dict:
    """A project for reading (public ones too)."""
    return get_or_raise(call, "projects", project_id, INVALID, allow_public=True)
