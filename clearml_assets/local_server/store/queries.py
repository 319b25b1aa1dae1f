"""The shared body of every ``*.get_all``: filter, order, page, project, and join references for ``*_ex``.

As the real server's ``GetMixin.get_many_with_join`` (``apiserver/database/model/base.py``), over the documents
the store holds in memory: :mod:`.filters` decides what matches, :mod:`.ordering` the order and the page.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..core import Call
from .filters import filter_docs
from .ordered import lower_date_bound, ordered_matches, page_need
from .ordering import MAX_PAGE_SIZE, paginate, project, sort_docs

# Reference fields per collection (the real documents' ``reference_field``): ``*_ex`` calls expand them
# into ``{"id": ...}`` and an ``only_fields`` entry below them (``project.name``) joins the referenced document.
REFERENCES = {
    "tasks": {"project": "projects", "parent": "tasks", "execution.queue": "queues", "user": "users",
              "company": "companies", "models.input.model": "models", "models.output.model": "models"},
    "models": {"project": "projects", "task": "tasks", "parent": "models", "user": "users", "company": "companies"},
    "projects": {"parent": "projects", "user": "users", "company": "companies"},
    "queues": {"user": "users", "company": "companies"},
}
# A list on the way to a reference (``models.output`` is a list of ``{name, model}``) holds one reference per item.
# Fields ordered with Mongo's numericOrdering collation (the real documents' ``_field_collation_overrides``).
NUMERIC_ORDER = {
    "tasks": ("execution.parameters.", "last_metrics.", "hyperparams."),
    "models": ("metadata.",),
}


def get_all(call: Call, collection: str, result_key: str, *, list_fields: Sequence[str],
            date_fields: Sequence[str] = (), range_fields: Sequence[str] = (),
            regex_fields: Sequence[str] = ("name",), exact_fields: Sequence[str] = (),
            exact_prefixes: Sequence[str] = (), docs: list[dict] | None = None,
            data: dict | None = None, expand: bool | None = None,
            visible: Callable[[dict], bool] | None = None) -> dict:
    """The shared body of ``*.get_all``: filter, order, page, project (and join for ``*_ex``).

    ``docs`` defaults to the company's documents plus the public ones, as the real ``get_all`` has
    ``allow_public``, those ``visible`` accepts when given (e.g. not hidden). Without ``docs``, a page ordered by an
    indexed field (:mod:`.ordered`) is read from the index: the same answer in O(page).
    """
    data = call.data if data is None else data
    filters = dict(regex_fields=regex_fields, list_fields=list_fields, date_fields=date_fields,
                   range_fields=range_fields, exact_fields=exact_fields, exact_prefixes=exact_prefixes,
                   released=call.store.lock.released)
    rows = _indexed_rows(call, collection, data, visible, filters) if docs is None else None
    if rows is None:
        if docs is None:
            docs = call.store.all(collection, call.company, allow_public=True)
            docs = docs if visible is None else [d for d in docs if visible(d)]
        rows = filter_docs(docs, data, **filters)
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


def _indexed_rows(call: Call, collection: str, data: dict, visible: Callable[[dict], bool] | None,
                  filters: dict) -> list[dict] | None:
    """The ordered matches a ``page``/``page_size`` request reads, from an ordered index; None when no index
    serves the request (``order_by`` other than ``[<indexed field>, "id"]`` ascending, or other paging)."""
    order = data.get("order_by")
    order = order if isinstance(order, list) else [order]
    if not order or not isinstance(order[0], str) or order[1:] not in ([], ["id"]):
        return None
    index = call.store.ordered_index(collection, order[0])
    need = page_need(data, MAX_PAGE_SIZE)
    if index is None or need is None or not index.usable:
        return None
    company = call.company

    def keep(doc: dict) -> bool:
        owner = doc.get("company")
        return (owner == company or not owner) and (visible is None or visible(doc))

    bound = lower_date_bound(data.get(order[0])) if order[0] in filters["date_fields"] else None
    return ordered_matches(index, call.store.documents(collection), order[0], need, bound, keep,
                           lambda chunk: filter_docs(chunk, data, **filters))


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
    """Expand reference ids into ``{"id": ...}`` and join the fields asked below them (``project.name``,
    ``models.output.model.name``): as the real ``ProjectionHelper``, every reference a ``*_ex`` row holds."""
    for ref, target in REFERENCES.get(collection, {}).items():
        wanted = [f[len(ref) + 1:] for f in (only or []) if f.startswith(ref + ".")]
        for holder, leaf in _reference_holders(row, ref.split(".")):
            holder[leaf] = _joined(call, target, holder[leaf], wanted)


def _reference_holders(value: Any, parts: list[str]) -> list[tuple[dict, str]]:
    """The dicts holding a reference id at ``parts`` (through lists), with the key holding it."""
    if isinstance(value, list):
        return [h for item in value for h in _reference_holders(item, parts)]
    if not isinstance(value, dict) or parts[0] not in value:
        return []
    if len(parts) == 1:
        return [(value, parts[0])] if isinstance(value[parts[0]], str) else []
    return _reference_holders(value[parts[0]], parts[1:])


def _joined(call: Call, target: str, ref_id: str, wanted: list[str]) -> dict:
    """``{"id": ref_id}`` plus the ``wanted`` fields of the referenced document (when there is one)."""
    if not wanted:
        return {"id": ref_id}
    if target == "companies":  # a company is its id here (no company records): its name is the id
        doc: dict | None = {"id": ref_id, "name": ref_id} if ref_id else None
    else:
        doc = call.store.get(target, ref_id, call.company, allow_public=True)
    return project(doc, wanted) | {"id": ref_id} if doc is not None else {"id": ref_id}
