"""The shared body of every ``*.get_all``: filter, order, page, project, and join references for ``*_ex``.

As the real server's ``GetMixin.get_many_with_join`` (``apiserver/database/model/base.py``), over the documents
the store holds in memory: :mod:`.filters` decides what matches, :mod:`.ordering` the order and the page.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..core import Call
from .filters import filter_docs
from .ordering import paginate, project, sort_docs

# Reference fields per collection (the real documents' ``reference_field``): ``*_ex`` calls expand them
# into ``{"id": ...}`` and an ``only_fields`` entry below them (``project.name``) joins the referenced document.
REFERENCES = {
    "tasks": {"project": "projects", "parent": "tasks", "execution.queue": "queues"},
    "models": {"project": "projects", "task": "tasks", "parent": "models"},
    "projects": {"parent": "projects"},
}
# Fields ordered with Mongo's numericOrdering collation (the real documents' ``_field_collation_overrides``).
NUMERIC_ORDER = {
    "tasks": ("execution.parameters.", "last_metrics.", "hyperparams."),
    "models": ("metadata.",),
}


def get_all(call: Call, collection: str, result_key: str, *, list_fields: Sequence[str],
            date_fields: Sequence[str] = (), range_fields: Sequence[str] = (),
            regex_fields: Sequence[str] = ("name",), exact_fields: Sequence[str] = (),
            exact_prefixes: Sequence[str] = (), docs: list[dict] | None = None,
            data: dict | None = None, expand: bool | None = None) -> dict:
    """The shared body of ``*.get_all``: filter, order, page, project (and join for ``*_ex``).

    ``docs`` defaults to the company's documents plus the public ones, as the real ``get_all`` has
    ``allow_public``.
    """
    data = call.data if data is None else data
    rows = call.store.all(collection, call.company, allow_public=True) if docs is None else docs
    rows = filter_docs(rows, data, regex_fields=regex_fields, list_fields=list_fields,
                       date_fields=date_fields, range_fields=range_fields, exact_fields=exact_fields,
                       exact_prefixes=exact_prefixes, released=call.store.lock.released)
    rows = sort_docs(rows, data.get("order_by"), NUMERIC_ORDER.get(collection, ()))
    rows, scroll_id = paginate(rows, data)
    only = data.get("only_fields")
    if expand is None:
        expand = call.endpoint.endswith("_ex")
    out = [call.store.copy(project(d, _own_fields(collection, only) if expand else only)) for d in rows]
    if expand:
        for row in out:
            join_references(call, collection, row, only)
    result: dict = {result_key: out}
    if scroll_id is not None:
        result["scroll_id"] = scroll_id
    return result


def _own_fields(collection: str, only: Sequence[str] | None) -> Sequence[str] | None:
    """The projection on the document itself: ``project.name`` needs the ``project`` field."""
    if not only:
        return only
    refs = REFERENCES.get(collection, {})
    own = []
    for field in only:
        ref = next((r for r in refs if field.startswith(r + ".")), None)
        own.append(ref if ref else field)
    return list(dict.fromkeys(own))


def join_references(call: Call, collection: str, row: dict, only: Sequence[str] | None) -> None:
    """Expand reference ids into ``{"id": ...}`` and join the fields asked below them (``project.name``)."""
    for ref, target in REFERENCES.get(collection, {}).items():
        *parents, leaf = ref.split(".")
        holder: Any = row
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or not isinstance(holder.get(leaf), str):
            continue
        ref_id = holder[leaf]
        joined: dict = {"id": ref_id}
        wanted = [f[len(ref) + 1:] for f in (only or []) if f.startswith(ref + ".")]
        if wanted:
            doc = call.store.get(target, ref_id, call.company, allow_public=True)
            if doc is not None:
                joined = project(doc, wanted) | {"id": ref_id}
        holder[leaf] = joined
