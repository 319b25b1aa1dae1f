"""``client.projects``: the ``projects.*`` calls, typed (:class:`~clearml_assets.types.Project` records)."""

from __future__ import annotations

import re
from typing import Any, Iterator, Sequence

from ..errors import ClearMLRequestError
from ..types import Project
from .paging import MAX_PAGE_SIZE, listing
from .session import ServiceClient


class ProjectsClient(ServiceClient):
    """Projects of one account (full names: ``parent/child``)."""

    def get(self, project_id: str) -> Project:
        """One project by id (``Project.raw`` holds the whole document).

        Raises:
            ClearMLRequestError: No such project (the server's 400/101).
        """
        return Project.from_api(self._session.call("projects.get_by_id", project=project_id)["project"])

    def find(self, name: str, *, search_hidden: bool = False) -> Project | None:
        """The project named exactly ``name`` (full path, ``parent/child``), or None.

        Args:
            name: The project's full name.
            search_hidden: Also find hidden projects (a dataset's ``<project>/.datasets/<name>``).
        """
        for project in self.find_many([name], search_hidden=search_hidden):
            if project.name == name:
                return project
        return None

    def find_many(self, names: Sequence[str], *, include_subprojects: bool = False,
                  search_hidden: bool = False, only_fields: Sequence[str] = ("id", "name"),
                  include_public: bool = False) -> list[Project]:
        """The projects named exactly one of ``names`` (and their subprojects), in one paged query."""
        if not names:
            return []
        suffix = "(?:/.*)?" if include_subprojects else ""
        pattern = f"^(?:{'|'.join(re.escape(n) for n in names)}){suffix}$"
        fields: dict[str, Any] = {"name": pattern, "order_by": ["name"]}
        if search_hidden:
            fields["search_hidden"] = True
        return list(listing(self._session, "projects", Project, only_fields, include_public, MAX_PAGE_SIZE, fields))

    def iter(self, *, only_fields: Sequence[str] = ("id", "name"), include_public: bool = False,
             **filters: Any) -> Iterator[Project]:
        """Every project matching ``filters`` (``projects.get_all`` field names), paged to the end; the
        public rows every company sees (ClearML's examples, ``company: ""``) only with ``include_public``."""
        filters.setdefault("order_by", ["id"])
        return listing(self._session, "projects", Project, only_fields, include_public, MAX_PAGE_SIZE, filters)

    def create(self, name: str, description: str = "", *, system_tags: Sequence[str] = ()) -> str:
        """Create a project and return its id (never sent twice: see :meth:`ClearMLSession.call`).

        Args:
            name: Full name (``parent/child``; missing parents are created without system tags).
            description: Its description.
            system_tags: Its system tags (``hidden``, ``pipeline``, ``dataset``, ``reports``...).
        """
        fields: dict[str, Any] = {"system_tags": list(system_tags)} if system_tags else {}
        return self._session.call("projects.create", name=name, description=description, **fields)["id"]

    def update(self, project_id: str, **fields: Any) -> None:
        """``projects.update``: name, description, tags, system_tags..."""
        self._session.call("projects.update", project=project_id, **fields)

    def ensure(self, name: str, description: str = "", *, system_tags: Sequence[str] = ()) -> str:
        """The id of the project named exactly ``name`` (full path; hidden ones included), created with its
        parents if missing (also when another writer creates it at the same moment); ``system_tags`` are those
        of a project it creates."""
        found = self.find(name, search_hidden=True)
        if found:
            return found.id
        try:
            return self.create(name, description, system_tags=system_tags)
        except ClearMLRequestError:  # created meanwhile by someone else
            found = self.find(name, search_hidden=True)
            if not found:
                raise
            return found.id
