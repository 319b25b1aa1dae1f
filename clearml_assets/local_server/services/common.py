"""Helpers shared by the document services: ids, lookups, get_all, public rows, edits."""

from __future__ import annotations

import uuid
from typing import Any, Callable, Sequence

from .. import apimodels as req
from ..queries import filter_docs, paginate, project, sort_docs
from ..registry import ApiError, Call, Handler, RequestModel, endpoint

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


def new_id() -> str:
    """A new object id in the real server's format (32 hex digits)."""
    return uuid.uuid4().hex


def ids_of(value: Any) -> list[str]:
    """A field that may be one id or a list of ids, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def get_or_raise(call: Call, collection: str, obj_id: Any, code: tuple[int, str],
                 allow_public: bool = False) -> dict:
    """The caller's company's document (or a public one if allowed) or the real server's "invalid id" error."""
    if not isinstance(obj_id, str) or not obj_id:
        raise ApiError(400, code[0], f"{code[1]} (id={obj_id!r})")
    doc = call.store.get(collection, obj_id, call.company, allow_public=allow_public)
    if doc is None:
        raise ApiError(400, code[0], f"{code[1]} (id={obj_id})")
    return doc


def get_for_writing(call: Call, collection: str, obj_id: Any, code: tuple[int, str]) -> dict:
    """As the real ``get_for_writing``: a public document is found but refused with 403/21."""
    doc = get_or_raise(call, collection, obj_id, code, allow_public=True)
    if not doc.get("company"):
        raise ApiError(403, 21, f"forbidden (modification not allowed): cannot modify public "
                                f"{collection.rstrip('s')}(s), ids=('{doc['id']}',)")
    return doc


def set_public(call: Call, collection: str, ids: Sequence[str], code: tuple[int, str], enabled: bool) -> dict:
    """``*.make_public``/``make_private``: move documents to the public company ``""`` and back.

    Only the company's own documents become public; only public documents that came from this company
    (``company_origin``) become private again. Any other id is the real server's invalid-id error.
    """
    ids = ids_of(ids)
    docs = [call.store.get(collection, i) for i in ids]
    if enabled:
        ok = [d for d in docs if d is not None and d.get("company") == call.company]
    else:
        ok = [d for d in docs if d is not None and not d.get("company") and d.get("company_origin") == call.company]
    if len(ok) < len(ids):
        missing = sorted(set(ids) - {d["id"] for d in ok})
        raise ApiError(400, code[0], f"{code[1]}: ids={tuple(missing)}")
    for doc in ok:
        if enabled:
            doc.update(company="", company_origin=call.company)
        else:
            doc["company"] = call.company
            doc.pop("company_origin", None)
        call.store.save(collection, doc)
    return {"updated": len(ok)}


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
                       exact_prefixes=exact_prefixes)
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


def run_batch(ids: Any, func) -> dict:
    """The real ``run_batch_operation``: ``func(id)`` per id; an ApiError lands in ``failed`` with its codes."""
    succeeded, failed = [], []
    for obj_id in ids_of(ids):
        try:
            succeeded.append({"id": obj_id, **func(obj_id)})
        except ApiError as err:
            failed.append({"id": obj_id, "error": {"codes": [err.code, err.subcode], "msg": err.msg,
                                                    "data": err.data}})
    return {"succeeded": succeeded, "failed": failed}


def publicity_endpoints(service: str, code: tuple[int, str]) -> None:
    """Register ``<service>.make_public`` and ``<service>.make_private`` (see :func:`set_public`).

    Args:
        service: The service, named as its collection (``tasks``, ``models``, ``projects``).
        code: The service's invalid-id error (subcode, message).
    """
    for action, enabled in (("make_public", True), ("make_private", False)):
        endpoint(f"{service}.{action}", request_data_model=req.MakePublicRequest)(
            _publicity_handler(service, code, enabled))


def _publicity_handler(collection: str, code: tuple[int, str], enabled: bool) -> Handler:
    def handler(call: Call) -> dict:
        """Move the company's documents to the public company, or bring its public ones back."""
        return set_public(call, collection, call.model.ids, code, enabled)
    return handler


ArchiveSetter = Callable[[Call, str, bool], bool]


def archive_many_endpoints(service: str, request_model: type[RequestModel], set_archived: ArchiveSetter) -> None:
    """Register ``<service>.archive_many`` and ``<service>.unarchive_many``: a batch of ``set_archived``.

    Args:
        service: ``tasks`` or ``models``.
        request_model: The calls' request model (``ids`` and the service's extra fields).
        set_archived: ``set_archived(call, id, archived)``, True when the document changed.
    """
    for action, key, archived in (("archive_many", "archived", True), ("unarchive_many", "unarchived", False)):
        endpoint(f"{service}.{action}", request_data_model=request_model)(
            _archive_handler(set_archived, key, archived))


def _archive_handler(set_archived: ArchiveSetter, key: str, archived: bool) -> Handler:
    def handler(call: Call) -> dict:
        """Add or remove the ``archived`` system tag of each id (per-id results)."""
        return run_batch(call.model.ids, lambda i: {key: set_archived(call, i, archived)})
    return handler
