"""A project export's task rows, kept in a file as the tasks finish: memory stays flat in the number of tasks.

A project of 20,000 tasks used to hold 20,000 export results (and their manifests) until its folder was
written. Each finished task's row (what ``project.json`` and ``metrics.csv`` say about it, and where its export
is) goes to a JSON lines file beside the project folder instead; memory keeps only each row's sort key and
offset. The rows are read back in (task name, id) order to write the project folder, and as the export's
``tasks`` (:class:`TaskRowResults`, a sequence of lightweight results read from the file).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any, Iterator, Sequence, overload

#: Row fields that say where the task's export is (not written into ``project.json``).
PRIVATE = ("folder_path", "archive_path", "skipped", "seconds", "project_name")


def task_row(result: Any) -> dict[str, Any]:
    """The row of one task export result (``TaskExportResult``)."""
    archive = result.manifest.get("archive") or {}
    return {"task_id": result.task_id, "task_name": result.task_name, "folder": result.folder.name,
            "archive": f"tasks/{result.archive.name}", "archive_sha256": archive.get("sha256"),
            "archive_bytes": archive.get("size"), "status": result.manifest.get("status"), "counts": result.counts,
            "picked_metrics": result.picked_metrics, "web_url": result.web_url,
            "folder_path": str(result.folder), "archive_path": str(result.archive), "skipped": result.skipped,
            "seconds": result.seconds, "project_name": result.project_name}


def public(row: dict[str, Any]) -> dict[str, Any]:
    """What ``project.json`` holds of a row."""
    return {k: v for k, v in row.items() if k not in PRIVATE}


class TaskRows:
    """Rows appended by any thread to a file in ``parent``; read back in (task name, id) order.

    The file is an unnamed temporary file on the export's file system: it goes when this object (or the last
    :class:`TaskRowResults` over it) is garbage-collected, by :meth:`close`, or with the process.
    """

    def __init__(self, parent: Path):
        parent.mkdir(parents=True, exist_ok=True)
        self._handle = tempfile.TemporaryFile(dir=parent)  # noqa: SIM115 - closed by close() or the finalizer
        self._lock = threading.Lock()
        self._index: list[tuple[str, str, int, int]] = []
        self._sorted = True
        self._finalizer = weakref.finalize(self, self._handle.close)

    def add(self, row: dict[str, Any]) -> None:
        data = json.dumps(row, ensure_ascii=False, default=str).encode("utf-8")
        with self._lock:
            offset = self._handle.seek(0, os.SEEK_END)
            self._handle.write(data)
            self._index.append((str(row.get("task_name") or ""), str(row["task_id"]), offset, len(data)))
            self._sorted = False

    def __len__(self) -> int:
        return len(self._index)

    def _ordered(self) -> list[tuple[str, str, int, int]]:
        with self._lock:
            if not self._sorted:
                self._index.sort()
                self._sorted = True
                self._handle.flush()
            return self._index

    def row(self, position: int) -> dict[str, Any]:
        """The row at ``position`` in (task name, id) order."""
        _, _, offset, length = self._ordered()[position]
        with self._lock:
            self._handle.seek(offset)
            return json.loads(self._handle.read(length))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for position in range(len(self._ordered())):
            yield self.row(position)

    def digest(self) -> str:
        """sha256 over every (task id, archive sha256), in order: the project's fingerprint of its tasks."""
        digest = hashlib.sha256()
        for row in self:
            digest.update(f"{row['task_id']}:{row.get('archive_sha256')}\n".encode())
        return digest.hexdigest()

    def close(self) -> None:
        self._finalizer()


class TaskRowResults(Sequence):
    """A project export's task results, read from its :class:`TaskRows` (one lightweight result per row).

    Args:
        rows: The rows (kept open as long as this sequence lives).
        make: Builds a result (``TaskExportResult``) from a row.
    """

    def __init__(self, rows: TaskRows, make):
        self._rows, self._make = rows, make

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._make(self._rows.row(i)) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._make(self._rows.row(index))

    def __iter__(self) -> Iterator[Any]:
        return (self._make(row) for row in self._rows)
