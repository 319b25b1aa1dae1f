"""Writing a project export: every task of the project exported (current ones reused), gathered as task archives.

The project folder ``%project/`` holds ``project.json``, ``metrics.csv``, ``tasks/<task folder>.<format>`` (hard
links to the task archives, byte for byte the published ones) and ``manifest.json`` listing each of those files
with its size and sha256; the project archive packs that folder. A task archive is stored in it as it is (a zip
member of a ``.zip`` is stored, not compressed again), and each holds its own verified manifest: nothing is
hashed, compressed or written again file by file.

Memory stays flat in the number of tasks: the listing is read a page at a time, at most two windows of tasks are
queued, and each finished task's row goes to a file (:mod:`.project_rows`) from which the folder is written.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..errors import ClearMLConnectionError
from ..spreadsheet import safe_cell
from .manifest import MANIFEST_VERSION, folder_sizes
from .project_rows import TaskRows, public, task_row
from .publish import staged, write_index, write_sidecar
from .records import record_line
from .task_writer import now_iso

if TYPE_CHECKING:
    from .exporter import ClearMLTaskExporter, TaskExportResult

PROJECT_JSON = "project.json"
PICKED = ("mAP50", "mAP50-95", "precision", "recall", "F1")
WINDOW = 100  # tasks whose documents are read in one request, and queued at once


def export_tasks(exporter: "ClearMLTaskExporter", listing: Iterable[dict], force: bool, rows: TaskRows,
                 export_one: Callable[..., "TaskExportResult"] | None = None) -> list[dict[str, Any]]:
    """Export every listed task (at most two windows queued); each result's row goes to ``rows``.

    ``export_one`` exports one task in place of ``exporter.export_task`` (same arguments): the task archive's
    lock around it, the upload to an object store after it.

    Returns:
        The failures: ``{"task_id", "task_name", "error", "server_failed"}``.
    """
    failures: list[dict[str, Any]] = []
    pending: dict[Future, dict] = {}
    with ThreadPoolExecutor(max_workers=exporter.max_workers,
                            thread_name_prefix=f"clearml-tasks-{exporter.account}") as pool:
        for window in _windows(listing, WINDOW):
            documents = exporter.prefetch([r["id"] for r in window if force or not exporter.is_current(r)[0]])
            for row in window:
                pending[pool.submit(export_one or exporter.export_task, row["id"], force=force, summary=row,
                                    document=documents.pop(row["id"], None))] = row
            while len(pending) > WINDOW:
                _collect(wait(pending, return_when=FIRST_COMPLETED).done, pending, rows, failures)
        _collect(list(pending), pending, rows, failures)
    return failures


def _windows(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(items)
    while window := list(islice(iterator, size)):
        yield window


def _collect(done: Iterable[Future], pending: dict[Future, dict], rows: TaskRows, failures: list) -> None:
    for future in done:
        row = pending.pop(future)
        try:
            rows.add(task_row(future.result()))
        except Exception as exc:  # noqa: BLE001 - every other task still gets exported
            failures.append({"task_id": row["id"], "task_name": row.get("name"), "error": str(exc)[:2000],
                             "server_failed": server_failed(exc)})


def server_failed(exc: BaseException) -> bool:
    """Whether the server (unreachable, 5xx, refusing the keys), not the task, failed an export."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClearMLConnectionError):
            return True
        seen = seen.__cause__
    return False


def write_project(exporter: "ClearMLTaskExporter", project: dict, folder: Path, archive: Path, rows: TaskRows,
                  fingerprint: dict, started: float, failures: list[dict[str, Any]]) -> dict[str, Any]:
    """Write and publish the project folder and its archive; returns the manifest."""
    web_url = exporter._web_url("project", project["id"])  # noqa: SLF001 - one exporter, split in modules
    header = {"project": project, "account": exporter.account, "web_url": web_url, "exported_at": now_iso(),
              "failed_tasks": failures}
    with staged(folder, archive) as stage:
        summary = _write_rows(stage.tmp, rows, header)
        sizes = folder_sizes(stage.tmp)
        manifest = {
            "version": MANIFEST_VERSION, "kind": "project", "account": exporter.account,
            "project_id": project["id"], "project_name": project.get("name"), "folder": folder.name,
            "layout": "task_archives", "fingerprint": fingerprint, "complete": True, "tasks": len(rows),
            "task_totals": summary.totals,
            "counts": {"files": len(sizes), "bytes": sum(sizes.values()), "tasks": len(rows)},
            "status": "incomplete" if failures or "incomplete" in summary.statuses else
            ("ok" if summary.statuses <= {"ok"} else "with_issues"),
            "issues": summary.issues + [{"task_id": f["task_id"], "status": "failed", "error": f["error"]}
                                        for f in failures],
            "failed_tasks": failures, "web_url": web_url, "exported_at": now_iso(),
            "seconds": round(time.monotonic() - started, 3), "files": summary.known,
        }
        exporter._pack(stage, manifest)  # noqa: SLF001
    write_sidecar(archive, manifest["archive"]["sha256"])
    write_index(exporter.root, exporter.account, "projects", project["id"], folder)
    return manifest


class _Summary:
    """What the manifest says of the tasks: totals, statuses, issues, and the task archives' entries."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.statuses: set[str] = set()
        self.issues: list[dict[str, Any]] = []
        self.known: dict[str, dict[str, Any]] = {}

    def add(self, row: dict[str, Any]) -> None:
        for key, value in (row.get("counts") or {}).items():
            if isinstance(value, int):
                self.totals[key] = self.totals.get(key, 0) + value
        self.statuses.add(str(row.get("status")))
        if row.get("status") != "ok":
            self.issues.append({"task_id": row["task_id"], "status": row.get("status")})
        self.known[row["archive"]] = {"size": row["archive_bytes"], "sha256": row["archive_sha256"]}


def _write_rows(tmp: Path, rows: TaskRows, header: dict[str, Any]) -> _Summary:
    """``tasks/`` (a hard link to each task archive), ``project.json`` and ``metrics.csv``, one row at a time."""
    summary = _Summary()
    (tmp / "tasks").mkdir()
    head = record_line(header).rstrip("\n")
    with open(tmp / PROJECT_JSON, "w", encoding="utf-8") as project_json, \
            open(tmp / "metrics.csv", "w", encoding="utf-8", newline="") as metrics:
        project_json.write(head[:-1] + ', "tasks": [\n')  # the header's keys, then the rows as they come
        table = csv.writer(metrics)
        table.writerow(["task_id", "task_name", *PICKED, "status"])
        for n, row in enumerate(rows):
            _link(Path(row["archive_path"]), tmp / row["archive"])
            project_json.write((",\n" if n else "") + record_line(public(row)).rstrip("\n"))
            picked = row.get("picked_metrics") or {}
            table.writerow([safe_cell(cell) for cell in (row["task_id"], row["task_name"], *(
                (picked.get(name) or {}).get("last", "") for name in PICKED), row.get("status"))])
            summary.add(row)
        project_json.write("\n]}\n")
    return summary


def _link(src: Path, dest: Path) -> None:
    """Hard-link a task archive into the project folder (a copy where links are impossible)."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
