"""A task's copy in the target account: the provenance tags that find it again, the result of restoring it, and
what the write steps of one copy share (:class:`CopyWrite`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import ClearMLAssetsError
from .reader import TaskArchive

PROVENANCE_PREFIX = "restored-from:"
INCOMPLETE_TAG = "restore-incomplete"
RUNTIME_KEYS = ("restore_source_account", "restore_source_server", "restore_source_task", "restore_archive_sha256")
DEFAULT_BATCH_EVENTS = 5_000
DEFAULT_BATCH_BYTES = 4 << 20


class RestoreError(ClearMLAssetsError):
    """A restore could not be finished; the target task (if any) still carries ``restore-incomplete``."""


def restore_lock_name(api_host: str, source_id: str) -> str:
    """The lock serializing restores of source task ``source_id`` into the server at ``api_host``."""
    return f"clearml_assets:restore:{api_host.rstrip('/')}|{source_id}"


def provenance_tag(source_id: str) -> str:
    """The system tag marking a restored copy of task (or model) ``source_id``."""
    return f"{PROVENANCE_PREFIX}{source_id}"


@dataclass
class RestoreResult:
    """Outcome of restoring one task archive."""

    source_task_id: str
    task_id: str
    task_name: str
    project: str
    created: bool
    resumed: bool
    unchanged: bool
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    web_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source_task_id": self.source_task_id, "task_id": self.task_id, "task_name": self.task_name,
                "project": self.project, "created": self.created, "resumed": self.resumed,
                "unchanged": self.unchanged, "counts": self.counts, "notes": self.notes,
                "seconds": round(self.seconds, 3), "web_url": self.web_url}

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the count ``name``."""
        self.counts[name] = self.counts.get(name, 0) + n


@dataclass
class CopyWrite:
    """What the write steps of one copy share: the target account's client, the archive, the copy's task and
    project ids, the storage prefix of its files, the pool its uploads and event batches run in (``per_task``
    requests in flight), the event batch bounds, and the result being filled in."""

    client: Any
    archive: TaskArchive
    task_id: str
    project_id: str
    prefix: str
    pool: ThreadPoolExecutor
    result: RestoreResult
    per_task: int
    batch_events: int = DEFAULT_BATCH_EVENTS
    batch_bytes: int = DEFAULT_BATCH_BYTES
