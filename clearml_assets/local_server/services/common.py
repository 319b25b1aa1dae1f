"""Endpoint factories shared by the document services: ``*.make_public``/``make_private``,
``*.archive_many``/``unarchive_many``."""

from __future__ import annotations

from typing import Callable

from .. import apimodels as req
from ..bll.access import edit_entity_tags, run_batch, set_public
from ..core import Call, Handler, RequestModel, endpoint, ids_of

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


def update_tags_endpoint(service: str, code: tuple[int, str]) -> None:
    """Register ``<service>.update_tags`` (API 2.27): add and remove tags of several tasks or models."""
    def update_tags(call: Call) -> dict:
        """Add ``add_tags`` and remove ``remove_tags`` on the documents ``ids``."""
        data = call.data
        return {"updated": edit_entity_tags(call, service, ids_of(data.get("ids")), data.get("add_tags") or [],
                                            data.get("remove_tags") or [], code)}
    endpoint(f"{service}.update_tags", min_version="2.27")(update_tags)
