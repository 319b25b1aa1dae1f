"""Records of the ClearML API, parsed once where the client receives them.

Each record names the fields the Dagster glue reads and keeps the row as the server sent it in ``raw``
(an archive writes the whole task, and a field added by a newer server is not lost). Nothing here
imports Dagster or talks to a server, so SDK child processes and plain scripts can use the records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

#: Task statuses after which a task changes no more by itself.
TERMINAL_STATUSES = ("completed", "published", "failed", "stopped", "closed")


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def _str(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class _CompanyRecord:
    """A record of a company's document: the row as the server sent it, and whether it is public."""

    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    @property
    def public(self) -> bool:
        """Whether the row belongs to the public company (``company: ""``: e.g. ClearML's examples every account
        sees), not the account's own."""
        return self.raw.get("company") == ""


@dataclass(frozen=True)
class Project(_CompanyRecord):
    """A ClearML project (``projects.get_all`` / ``projects.get_by_id`` row)."""

    id: str
    name: str = ""
    system_tags: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> "Project":
        """The record of one API row (fields that were not requested are left at their defaults)."""
        return cls(id=_str(row.get("id")), name=_str(row.get("name")),
                   system_tags=_tuple(row.get("system_tags")), raw=dict(row))


@dataclass(frozen=True)
class Task(_CompanyRecord):
    """A ClearML task (``tasks.get_all`` / ``tasks.get_by_id`` row); a dataset version is a task too."""

    id: str
    name: str = ""
    status: str = ""
    project: str = ""
    type: str = ""
    tags: tuple[str, ...] = ()
    system_tags: tuple[str, ...] = ()
    last_update: str = ""
    status_changed: str = ""
    last_iteration: int | None = None
    status_reason: str = ""
    status_message: str = ""
    last_worker: str = ""
    runtime: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> "Task":
        """The record of one API row (fields that were not requested are left at their defaults)."""
        project = row.get("project")
        if isinstance(project, Mapping):  # ``only_fields: ["project.name"]`` joins the project
            project = project.get("id")
        iteration = row.get("last_iteration")
        return cls(id=_str(row.get("id")), name=_str(row.get("name")), status=_str(row.get("status")),
                   project=_str(project), type=_str(row.get("type")), tags=_tuple(row.get("tags")),
                   system_tags=_tuple(row.get("system_tags")), last_update=_str(row.get("last_update")),
                   status_changed=_str(row.get("status_changed")),
                   last_iteration=iteration if isinstance(iteration, int) else None,
                   status_reason=_str(row.get("status_reason")), status_message=_str(row.get("status_message")),
                   last_worker=_str(row.get("last_worker")), runtime=dict(row.get("runtime") or {}), raw=dict(row))

    @property
    def queue(self) -> str:
        """The queue the task is enqueued in (``execution.queue``), or ''."""
        return _str((self.raw.get("execution") or {}).get("queue"))

    @property
    def finished(self) -> bool:
        """Whether the task reached a status it does not leave by itself."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class Model(_CompanyRecord):
    """A ClearML model (``models.get_all`` row); ``metadata`` flattened to ``{key: value}``."""

    id: str
    name: str = ""
    tags: tuple[str, ...] = ()
    task: str | None = None
    project: str = ""
    uri: str = ""
    created: str = ""
    ready: bool | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> "Model":
        """The record of one API row; metadata as the server returns it (``{key: {key, value, type}}``)
        or as a list of such entries."""
        raw_meta = row.get("metadata") or {}
        entries = raw_meta.values() if isinstance(raw_meta, Mapping) else raw_meta
        metadata = {str(e.get("key")): e.get("value") for e in entries
                    if isinstance(e, Mapping) and "key" in e}
        ready = row.get("ready")
        return cls(id=_str(row.get("id")), name=_str(row.get("name")), tags=_tuple(row.get("tags")),
                   task=row.get("task") or None, project=_str(row.get("project")), uri=_str(row.get("uri")),
                   created=_str(row.get("created")), ready=ready if isinstance(ready, bool) else None,
                   metadata=metadata, raw=dict(row))


@dataclass(frozen=True)
class Queue:
    """A ClearML queue (``queues.get_all`` row)."""

    id: str
    name: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> "Queue":
        """The record of one API row."""
        return cls(id=_str(row.get("id")), name=_str(row.get("name")), raw=dict(row))


@dataclass(frozen=True)
class Worker:
    """A registered (not expired) ClearML worker (``workers.get_all`` row)."""

    id: str
    queues: tuple[str, ...] = ()
    task: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> "Worker":
        """The record of one API row (queues given as ids or as ``{id, name}`` entries)."""
        queues = tuple(_str(q.get("id") if isinstance(q, Mapping) else q) for q in row.get("queues") or ())
        task = row.get("task")
        return cls(id=_str(row.get("id")), queues=queues,
                   task=_str(task.get("id") if isinstance(task, Mapping) else task), raw=dict(row))


@dataclass(frozen=True)
class DatasetVersionSpec:
    """What an SDK child creates as one dataset version (sent to ``datasets.sdk_ops.create_version``).

    ``folder`` becomes the version's full content: files missing from it are removed relative to the
    parents, changed or new ones uploaded.
    """

    name: str
    project: str
    version: str
    folder: str
    parents: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    output_uri: str = ""

    @classmethod
    def of(cls, spec: "DatasetVersionSpec | Mapping[str, Any]") -> "DatasetVersionSpec":
        """The spec itself, or one built from a mapping with the same keys."""
        if isinstance(spec, cls):
            return spec
        return cls(name=spec["name"], project=spec["project"], version=spec["version"], folder=str(spec["folder"]),
                   parents=tuple(spec.get("parents") or ()), tags=tuple(spec.get("tags") or ()),
                   description=spec.get("description") or "", output_uri=spec.get("output_uri") or "")


@dataclass(frozen=True)
class DatasetVersionUpload:
    """What an SDK child reports after finalizing a dataset version."""

    id: str
    version: str
    delta_files: int
    delta_bytes: int
    removed_files: int
    file_count: int
    total_bytes: int
