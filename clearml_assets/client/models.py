"""``client.models``: the ``models.*`` calls, typed (:class:`~clearml_assets.types.Model` records)."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from ..errors import ClearMLRequestError
from ..types import Model
from .paging import MAX_PAGE_SIZE, listing
from .session import ServiceClient


class ModelsClient(ServiceClient):
    """Models of one account."""

    def iter(self, *, only_fields: Sequence[str] | None = None, page_size: int = MAX_PAGE_SIZE,
             include_public: bool = False, **filters: Any) -> Iterator[Model]:
        """Every model matching ``filters`` (``models.get_all`` field names: ``id``, ``task``,
        ``project``, ``tags``, ``order_by``, ...), paged to the end; public rows (``company: ""``) only
        with ``include_public`` or when asked for by ``id``."""
        return listing(self._session, "models", Model, only_fields, include_public, page_size, filters)

    def get(self, model_id: str, *, only_fields: Sequence[str] | None = None) -> Model:
        """One model by id (``Model.raw`` holds the whole document unless ``only_fields`` narrows it).

        Raises:
            ClearMLRequestError: No such model on this account.
        """
        for model in self.iter(id=[model_id], only_fields=only_fields):
            return model
        raise ClearMLRequestError(f"ClearML account '{self._session.account}': model {model_id} was not found.",
                                  metadata={"model_id": model_id})

    def find_by_system_tag(self, system_tag: str) -> list[dict]:
        """Every model carrying ``system_tag``, oldest first."""
        return list(self._session.iter_pages("models.get_all", "models", system_tags=[system_tag],
                                             order_by=["created"],
                                             only_fields=["id", "name", "uri", "task", "system_tags"]))

    def create(self, **fields: Any) -> str:
        """``models.create``; returns the new model id."""
        return self._session.call("models.create", **fields)["id"]

    def edit(self, model_id: str, **fields: Any) -> None:
        """``models.edit``: any field of ``models.create`` (uri, task, project, labels...), ready or not."""
        self._session.call("models.edit", model=model_id, **fields)

    def set_tags(self, model_id: str, tags: Sequence[str]) -> None:
        """Replace a model's tags (setting the same tags twice is harmless, so it is retried as a read)."""
        self._session.call("models.update", _idempotent=True, model=model_id, tags=list(tags))

    def delete(self, model_id: str, *, force: bool = True) -> None:
        """Delete a model record (``force``: even if a task still uses it)."""
        self._session.call("models.delete", model=model_id, force=force)
