"""Tag rules of the real server (``services/utils.py`` ``conform_tag_fields``/``conform_output_tags``).

Clients older than API 2.3 send system tags inside ``tags``: they are split into ``system_tags`` on the way
in and merged back on the way out. Tags starting with the query operator prefix ``__$`` are refused.
"""

from __future__ import annotations

from typing import Any

from ..core import ApiError

TAGS_SPLIT_MAX = (2, 3)
SYSTEM_TAGS = {
    "model": {"active", "archived"},
    "project": {"archived", "public", "default"},
    "task": {"active", "archived", "development"},
    "queue": {"default"},
}
SYSTEM_PREFIXES = {"task": ("annotat",)}
RESULT_KEYS = ("task", "tasks", "model", "models", "project", "projects", "queue", "queues")
WRITES = ("create", "update", "edit", "validate")


def partition_tags(entity: str, tags: list, system_tags: list | None = None) -> tuple[list, list]:
    """(user tags, system tags) of an old client's ``tags``: the entity's system names (also ``-name``) and
    prefixes go to the system list."""
    names = SYSTEM_TAGS.get(entity, set())
    names = names | {"-" + n for n in names}
    prefixes = SYSTEM_PREFIXES.get(entity, ())
    tags_set = {t for t in tags if isinstance(t, str)}
    system = set(system_tags or ())
    system |= {t for t in tags_set if t in names or any(t.lower().lstrip("-").startswith(p) for p in prefixes)}
    return sorted(tags_set - system), sorted(system)


def conform_request(endpoint: str, version: tuple[int, int], data: Any) -> Any:
    """Validate written tags and split an old client's tags (in place; returns ``data``)."""
    if not isinstance(data, dict):
        return data
    action = endpoint.partition(".")[2]
    if action in WRITES:
        for key in ("tags", "system_tags"):
            values = data.get(key)
            bad = [t for t in values if isinstance(t, str) and t.startswith("__$")] if isinstance(values, list) else []
            if bad:
                raise ApiError(400, 16, f"invalid value for fields: unsupported tag prefix (values={bad})")
    if version < TAGS_SPLIT_MAX and isinstance(data.get("tags"), list) and not data.get("system_tags"):
        service = endpoint.partition(".")[0]
        entity = service[:-1] if service.endswith("s") else service
        data["tags"], data["system_tags"] = partition_tags(entity, data["tags"])
    return data


def conform_result(version: tuple[int, int], result: Any) -> Any:
    """Old clients get system tags inside ``tags`` (in place; returns ``result``)."""
    if version >= TAGS_SPLIT_MAX or not isinstance(result, dict):
        return result
    for key in RESULT_KEYS:
        docs = result.get(key)
        for doc in docs if isinstance(docs, list) else [docs]:
            if isinstance(doc, dict) and doc.get("system_tags"):
                doc["tags"] = sorted(set(doc.get("tags") or []) | set(doc["system_tags"]))
    return result
