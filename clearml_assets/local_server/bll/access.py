"""Reading and writing documents as the real server's ``GetMixin``/``get_for_writing`` do: the caller's company's
documents, public ones where allowed, the "invalid id" errors, batch operations with per-id results."""

from __future__ import annotations

from typing import Any, Sequence

from ..core import ApiError, Call, ids_of, now_iso


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


def merge_tags(current: list | None, new: list | None) -> list:
    """Tags de-duplicated, order kept."""
    out: list = []
    for t in (current or []) + (new or []):
        if t not in out:
            out.append(t)
    return out


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


def edit_entity_tags(call: Call, collection: str, ids: Sequence[str], add: Sequence[str], remove: Sequence[str],
                     code: tuple[int, str]) -> int:
    """The real ``OrgBLL.edit_entity_tags`` (``tasks.update_tags``/``models.update_tags``): add and remove tags of
    the company's documents; returns how many updates were made (adding and removing count once each per
    document, as the two Mongo updates do).

    Raises:
        ApiError: 400/12 without ids or without tags to add or remove; the invalid-id error of a document that
            is not the company's.
    """
    if not ids:
        raise ApiError(400, 12, "Validation error (No entity ids provided for editing tags)")
    if not (add or remove):
        raise ApiError(400, 12, "Validation error (Either add tags or remove tags should be provided)")
    docs = [get_for_writing(call, collection, obj_id, code) for obj_id in dict.fromkeys(ids)]
    for doc in docs:
        tags = merge_tags(doc.get("tags"), list(add or []))
        doc["tags"] = sorted(t for t in tags if t not in set(remove or []))
        doc["last_change"] = now_iso()
        doc["last_changed_by"] = call.user
        call.store.save(collection, doc)
    return len(docs) * (bool(add) + bool(remove))
