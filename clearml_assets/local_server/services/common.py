"""Helpers shared by the document services: ids, lookups, get_all, edits."""

from __future__ import annotations

import uuid
from typing import Any, Sequence

from ..queries import filter_docs, paginate, project, sort_docs
from ..registry import ApiError, Call


def new_id() -> str:
    """A new object id in the real server's format (32 hex digits)."""
    return uuid.uuid4().hex


def ids_of(value: Any) -> list[str]:
    """A field that may be one id or a list of ids, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def get_or_raise(call: Call, collection: str, obj_id: Any, code: tuple[int, str]) -> dict:
    """The caller's company's document or the real server's "invalid id" error."""
    if not isinstance(obj_id, str) or not obj_id:
        raise ApiError(400, code[0], f"{code[1]} (id={obj_id!r})")
    doc = call.store.get(collection, obj_id, call.company)
    if doc is None:
        raise ApiError(400, code[0], f"{code[1]} (id={obj_id})")
    return doc


def get_all(call: Call, collection: str, result_key: str, *, list_fields: Sequence[str],
            date_fields: Sequence[str] = (), range_fields: Sequence[str] = (),
            regex_fields: Sequence[str] = ("name",), exact_fields: Sequence[str] = (),
            exact_prefixes: Sequence[str] = (), docs: list[dict] | None = None) -> dict:
    """The shared body of ``*.get_all``: filter, order, page, project."""
    data = call.data
    rows = call.store.all(collection, call.company) if docs is None else docs
    rows = filter_docs(rows, data, regex_fields=regex_fields, list_fields=list_fields,
                       date_fields=date_fields, range_fields=range_fields, exact_fields=exact_fields,
                       exact_prefixes=exact_prefixes)
    rows = sort_docs(rows, data.get("order_by"))
    rows, scroll_id = paginate(rows, data)
    only = data.get("only_fields")
    result: dict = {result_key: [call.store.copy(project(d, only)) for d in rows]}
    if scroll_id is not None:
        result["scroll_id"] = scroll_id
    return result


def merge_tags(current: list | None, new: list | None) -> list:
    """Tags de-duplicated, order kept."""
    out: list = []
    for t in (current or []) + (new or []):
        if t not in out:
            out.append(t)
    return out


def required(call: Call, name: str) -> Any:
    """A field the endpoint's JSON schema requires: missing is the real server's 400/12 validation error.

    (Only endpoints registered with ``required_fields``, e.g. ``projects.create``, answer 400/11.)
    """
    value = call.data.get(name)
    if value is None:
        raise ApiError(400, 12, f"Validation error: data must contain ['{name}'] properties")
    return value
