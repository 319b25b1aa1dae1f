"""User preferences (clearml-server ``services/users.py``'s ``get_preferences``/``set_preferences``): the web app
keeps its settings (table columns, themes, the workspace) in a JSON document per user."""

from __future__ import annotations

import copy
from typing import Any

from ...core import ApiError, Call


def get_preferences(call: Call) -> dict:
    """The calling user's preferences (``{}`` before any were set, or for a user with no user record)."""
    doc = call.store.get("users", call.user, call.company)
    return copy.deepcopy((doc or {}).get("preferences") or {})


def set_preferences(call: Call, changes: dict[str, Any]) -> tuple[int, dict]:
    """Apply ``changes`` as the real server's ``dpath.new``: each key (dotted at the top level only) replaces the
    value at its path, creating parents. Returns ``(updated, new preferences)``.

    Raises:
        ApiError: 400/12 for a key starting with ``$`` or a nested key holding a ``.`` (the real
            ``FieldsValueError``).
    """
    _check_keys(changes, top=True)
    doc = call.store.get("users", call.user, call.company)
    if doc is None:
        raise ApiError(400, 300, f"Invalid user id: failed loading user (id={call.user})")
    base = doc.get("preferences") or {}
    new = copy.deepcopy(base)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = new
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = copy.deepcopy(value)
    if new == base:
        return 0, new
    doc["preferences"] = new
    call.store.save("users", doc)
    return 1, new


def _check_keys(value: Any, top: bool) -> None:
    if not isinstance(value, dict):
        if isinstance(value, list):
            for item in value:
                _check_keys(item, False)
        return
    for key, item in value.items():
        if not isinstance(key, str) or key.startswith("$") or (not top and "." in key):
            raise ApiError(400, 12, f"Key {key} is invalid. Keys cannot start with '$' or contain '.'.")
        _check_keys(item, False)
