"""Read dataset versions through ``ClearMLClient``: list, latest, next semantic version, by content hash."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..types import Task

if TYPE_CHECKING:
    from ..client import ClearMLClient

CONTENT_TAG_PREFIX = "content-sha256:"
FINALIZED_STATUSES = ("completed", "published", "closed")
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


_VERSION_FIELDS = ["id", "name", "status", "tags", "runtime", "last_update", "project"]


@dataclass(frozen=True)
class ClearMLDatasetVersion:
    """One version of a ClearML dataset (a ``data_processing`` task tagged ``dataset``)."""

    id: str
    name: str
    project_id: str
    version: str
    status: str
    tags: tuple[str, ...] = ()
    last_update: str = ""
    parents: tuple[str, ...] = field(default=())

    @classmethod
    def from_task(cls, task: Task, default_name: str = "", default_project: str = "") -> "ClearMLDatasetVersion":
        """The version a dataset task records (its semantic version is ``runtime.version``)."""
        return cls(id=task.id, name=task.name or default_name, project_id=task.project or default_project,
                   version=str(task.runtime.get("version") or ""), status=task.status, tags=task.tags,
                   last_update=task.last_update)

    @property
    def content_hash(self) -> str | None:
        """The content hash this project stored as a tag, or None (e.g. made outside Dagster)."""
        for tag in self.tags:
            if tag.startswith(CONTENT_TAG_PREFIX):
                return tag[len(CONTENT_TAG_PREFIX):]
        return None

    @property
    def finalized(self) -> bool:
        """Whether the version is done (finalized or published)."""
        return self.status in FINALIZED_STATUSES

    @property
    def data_version(self) -> str:
        """Dagster data version: the content hash, or the id for versions without one."""
        return self.content_hash or f"id:{self.id}"


def content_tag(content_hash: str) -> str:
    """The tag recording a version's content hash."""
    return f"{CONTENT_TAG_PREFIX}{content_hash}"


def parse_semver(version: str) -> tuple[int, int, int] | None:
    """``"1.2.0" -> (1, 2, 0)``; None if not ``MAJOR.MINOR.PATCH``."""
    match = _SEMVER.match(version or "")
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def next_semver(versions: list[ClearMLDatasetVersion]) -> str:
    """The next minor version after the highest existing one (``1.0.0`` for the first)."""
    parsed = [v for v in (parse_semver(x.version) for x in versions) if v]
    if not parsed:
        return "1.0.0"
    major, minor, _ = max(parsed)
    return f"{major}.{minor + 1}.0"


def dataset_project_path(project: str, name: str) -> str:
    """The hidden project ClearML keeps a dataset's versions in."""
    return f"{project}/.datasets/{name}"


def list_dataset_versions(client: "ClearMLClient", project: str, name: str, *, finalized_only: bool = True
                          ) -> list[ClearMLDatasetVersion]:
    """All versions of dataset ``project/name``, newest semantic version first.

    Args:
        client: A ``ClearMLClient``.
        project: Dataset project (as given to ``Dataset.create``).
        name: Dataset name.
        finalized_only: Only completed/published versions (drafts are never "done").
    """
    home = client.projects.find(dataset_project_path(project, name), search_hidden=True)
    if home is None:
        return []
    filters: dict[str, Any] = dict(
        project=[home.id], type=["data_processing"],
        system_tags=["__$all", "dataset", "__$not", "archived"], search_hidden=True, order_by=["-last_update"])
    if finalized_only:
        filters["status"] = list(FINALIZED_STATUSES)
    versions = [ClearMLDatasetVersion.from_task(task, name, home.id)
                for task in client.tasks.iter(only_fields=_VERSION_FIELDS, **filters) if task.name == name]
    versions.sort(key=lambda v: (parse_semver(v.version) or (-1, -1, -1), v.last_update), reverse=True)
    return versions


def get_dataset_version(client: "ClearMLClient", dataset_id: str) -> ClearMLDatasetVersion:
    """One version by id (any status)."""
    tasks = client.tasks.get_many([dataset_id], only_fields=_VERSION_FIELDS)
    if not tasks:
        raise LookupError(f"No ClearML dataset version with id {dataset_id}")
    return ClearMLDatasetVersion.from_task(tasks[0])
