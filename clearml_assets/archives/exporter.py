"""The task and project export engine: streams every endpoint to disk, then publishes atomically.

A task export is built in a hidden temporary folder next to its final place (:mod:`.publish`), written by
:class:`~.task_writer.TaskWriter`, hashed into ``manifest.json``, packed into one archive whose bytes are
checked against the manifest, and only then renamed into place (archive first, folder second). A failure
at any point removes the temporary files, so nothing that looks done is left behind. An unchanged task
(same ``last_update``, ``last_change``, ``status`` and ``last_iteration`` as recorded in the manifest,
archive present, nothing lacking) is skipped without any download.
"""

from __future__ import annotations

import csv
import json
import time
import weakref
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ArchiveError, ClearMLConnectionError
from ..spreadsheet import safe_cell
from .lookup import ArchiveLookup
from .manifest import MANIFEST_VERSION, archive_is_current, hash_folder, read_manifest, sha256_file, write_manifest
from .packing import archive_suffix, write_archive
from .paths import default_export_root, project_export_dir, safe_component, task_dir_name
from .publish import find_export, folder_lock, index_path, link_tree, staged, write_index, write_sidecar
from .task_writer import FINGERPRINT_FIELDS, TaskWriter, now_iso, task_fingerprint, write_json

TASK_JSON = "task.json"
PROJECT_JSON = "project.json"
DEFAULT_STATUSES = ("completed", "published")
PICKED = ("mAP50", "mAP50-95", "precision", "recall", "F1")


@dataclass
class TaskExportResult:
    """Outcome of one task export."""

    task_id: str
    task_name: str
    project_name: str
    folder: Path
    archive: Path
    manifest: dict[str, Any]
    skipped: bool
    seconds: float
    web_url: str | None = None

    @property
    def counts(self) -> dict[str, Any]:
        return self.manifest.get("counts", {})

    @property
    def issues(self) -> list[dict[str, Any]]:
        return self.manifest.get("issues", [])

    @property
    def picked_metrics(self) -> dict[str, Any]:
        return self.manifest.get("picked_metrics", {})


@dataclass
class ProjectExportResult:
    """Outcome of one project export."""

    project_id: str
    project_name: str
    folder: Path
    archive: Path | None
    manifest: dict[str, Any]
    tasks: list[TaskExportResult] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: bool = False
    seconds: float = 0.0


class ClearMLTaskExporter:
    """Exports ClearML tasks and projects of one account to folders plus verified archives.

    Args:
        client: The account's ``ClearMLClient``.
        account: Account name (first folder under the export root).
        export_root: Root folder (default ``$CLEARML_ASSETS_HOME/exports``).
        archive_format: ``zip`` (default) or another of ``packing.ARCHIVE_FORMATS`` (``tar.gz``, ``tar.xz``, ``tar``).
        max_workers: Tasks exported at once, and the size of this exporter's one pool that reads their
            scalars and downloads their files (at most twice this many requests in flight). The pool is
            shut down by :meth:`close` (or when the exporter is garbage-collected).
        compresslevel: Level for text entries (zip) or the whole stream (tar.gz, tar.xz).
        download: Replaces the file fetch (used by tests to inject failures).
        page_size: Page size of the ``get_all`` listings (at most the real server's 500).
        include_public: Also list rows of the public company (``company: ""``).
    """

    def __init__(self, client, account: str, export_root: Path | str | None = None, *,
                 archive_format: str = "zip", max_workers: int = 8, compresslevel: int = 1,
                 download: Callable[[str, Path], int] | None = None, page_size: int = 500,
                 include_public: bool = False):
        self.client = client
        self.account = account
        self.root = Path(export_root or default_export_root()).expanduser().resolve()
        archive_suffix(archive_format)
        self.archive_format = archive_format
        self.max_workers = max(1, int(max_workers))
        self.compresslevel = compresslevel
        self.download = download
        self.lookup = ArchiveLookup(client, account, self.root, min(page_size, 500), include_public)
        self._pool = ThreadPoolExecutor(max_workers=self.max_workers,
                                        thread_name_prefix=f"clearml-archive-{account}")
        self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)

    @property
    def pool(self) -> Executor:
        return self._pool

    def close(self) -> None:
        """Shut the download pool down."""
        self._finalizer()

    def __enter__(self) -> "ClearMLTaskExporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- lookups
    def get_task(self, task_id: str) -> dict[str, Any]:
        """The full task document; :class:`ArchiveError` if it does not exist."""
        return self.lookup.get_task(task_id)

    def project_name(self, project_id: str | None) -> str:
        """The project's name (cached); the id itself if the project cannot be read."""
        return self.lookup.project_name(project_id)

    def task_folder(self, task: dict[str, Any]) -> Path:
        """Where the task's export folder goes."""
        return self.lookup.task_folder(task)

    def resolve_project(self, key: str) -> dict[str, Any]:
        """The project whose id (or else exact name) is ``key``."""
        return self.lookup.resolve_project(key)

    def list_project_tasks(self, project_id: str, statuses: Iterable[str] = DEFAULT_STATUSES
                           ) -> list[dict[str, Any]]:
        """Every task of the project with one of ``statuses`` (paged, no cap)."""
        return self.lookup.project_tasks(project_id, statuses)

    def _archive_path(self, folder: Path) -> Path:
        return folder.parent / (folder.name + archive_suffix(self.archive_format))

    def _web_url(self, kind: str, obj_id: str, project_id: str | None = None) -> str | None:
        try:
            return self.client.web_url(kind, obj_id, project_id)
        except Exception:  # noqa: BLE001 - a link is a nicety; never fail an export for it
            return None

    # ------------------------------------------------------------------------------------------- task
    def is_current(self, task: dict[str, Any]) -> tuple[bool, Path, dict | None]:
        """Whether the task's published export matches ``task`` and lacks nothing the server holds."""
        folder = self.task_folder(task)
        manifest = read_manifest(folder)
        current = bool(manifest and manifest.get("fingerprint") == task_fingerprint(task)
                       and manifest.get("status") != "incomplete"
                       and manifest.get("archive", {}).get("format") == self.archive_format
                       and archive_is_current(folder, manifest))
        return current, folder, manifest

    def export_task(self, task_id: str, *, force: bool = False, summary: dict[str, Any] | None = None,
                    document: dict[str, Any] | None = None) -> TaskExportResult:
        """Export one task (or skip it when its published export is current).

        Args:
            task_id: The ClearML task id.
            force: Re-export even if current.
            summary: The task's row from the task listing (name, project and fingerprint fields), used
                to decide skipping without another request.
            document: The task's whole document, already read (:meth:`task_documents`): no request for it.
        """
        started = time.monotonic()
        # listing rows omit null fields, like tasks.get_by_id does
        task = document or (summary if summary and all(k in summary for k in ("id", "name", "last_update"))
                            else self.get_task(task_id))
        with folder_lock(self.task_folder(task)):
            if not force:
                current, folder, manifest = self.is_current(task)
                if current:
                    return self._result(task, folder, manifest or {}, True, started)
            if task is summary:
                task = self.get_task(task_id)
            return self._export_task(task, started)

    def task_documents(self, task_ids: list[str], chunk: int = 100) -> dict[str, dict[str, Any]]:
        """The whole documents of ``task_ids``, one ``tasks.get_all`` page of ``chunk`` ids (at most 500) instead of a
        ``tasks.get_by_id`` each. Ids it does not return (deleted, not visible, or cut off by a server that
        pages shorter) are left out: :meth:`export_task` reads those one by one."""
        found: dict[str, dict[str, Any]] = {}
        size = max(1, min(chunk, 500))
        for start in range(0, len(task_ids), size):
            ids = task_ids[start:start + size]
            rows = [t.raw for t in self.client.tasks.page(0, len(ids), id=ids)]
            found.update((r["id"], r) for r in rows if isinstance(r, dict) and r.get("id") in ids
                         and (self.lookup.include_public or r.get("company", None) != ""))
        return found

    def _result(self, task: dict, folder: Path, manifest: dict, skipped: bool, started: float
                ) -> TaskExportResult:
        task_id = str(task["id"])
        return TaskExportResult(task_id, str(task.get("name")), self.project_name(task.get("project")),
                                folder, self._archive_path(folder), manifest, skipped,
                                time.monotonic() - started, self._web_url("task", task_id, task.get("project")))

    def _export_task(self, task: dict[str, Any], started: float) -> TaskExportResult:
        task_id = str(task["id"])
        folder = self.task_folder(task)
        archive = self._archive_path(folder)
        writer = TaskWriter(self.client, self.account, self.pool, self.download)
        try:
            with staged(folder, archive) as stage:
                manifest = writer.write(task, self.project_name(task.get("project")), folder, stage.tmp,
                                        started, self._web_url("task", task_id, task.get("project")),
                                        project_chain=self.lookup.project_chain(task.get("project")))
                self._pack(stage, manifest)
        except ArchiveError:
            raise
        except Exception as exc:
            raise ArchiveError(f"export of task {task_id!r} ({self.account}) failed and was rolled "
                               f"back, nothing was published: {type(exc).__name__}: {exc}") from exc
        write_sidecar(archive, manifest["archive"]["sha256"])
        write_index(self.root, self.account, "tasks", task_id, folder)
        return self._result(task, folder, manifest, False, started)

    def _pack(self, stage, manifest: dict[str, Any]) -> None:
        """Pack the staging folder, record the archive in the manifest, publish."""
        info = write_archive(stage.tmp, stage.archive_tmp, manifest["files"], self.archive_format,
                             arcroot=stage.folder.name, compresslevel=self.compresslevel)
        info["file"] = stage.archive.name
        manifest["archive"] = info
        write_manifest(stage.tmp, manifest)
        stage.publish()

    # ---------------------------------------------------------------------------------------- project
    def export_project(self, project_key: str, *, force: bool = False,
                       statuses: Iterable[str] = DEFAULT_STATUSES) -> ProjectExportResult:
        """Export every task of a project (in parallel, reusing current task exports) and pack them.

        The project folder ``<root>/<account>/projects/<project>/.../%project/`` holds ``project.json``,
        ``metrics.csv`` (the picked metrics per task), and ``tasks/<task folder>/`` (hard links to the
        task exports); the archive beside it packs the folder.
        A task that cannot be exported (a name, a record or a file the export fails on) is listed in the
        project archive (``failed_tasks``, with its error) and makes its status ``incomplete`` instead of
        blocking it. When the server itself failed a task (unreachable, 5xx), :class:`ArchiveError` is raised
        after exporting every other task, and no project archive is published.
        """
        started = time.monotonic()
        project = self.resolve_project(project_key)
        project_id, project_name = project["id"], project.get("name") or project["id"]
        self.lookup.remember(project_id, project_name)
        statuses = tuple(statuses)
        rows = self.list_project_tasks(project_id, statuses)
        results, failures = self._export_tasks(rows, force)
        folder = project_export_dir(self.root, self.account, project_name)
        archive = self._archive_path(folder)
        fingerprint = {"statuses": sorted(statuses), "format": self.archive_format,
                       "tasks": {r.task_id: r.manifest["archive"]["sha256"] for r in results}}
        if any(f.pop("server_failed") for f in failures):
            raise ArchiveError(
                f"{len(failures)} of {len(rows)} tasks of project {project_name!r} ({self.account}) could "
                f"not be exported (first: {failures[0]['task_id']}: {failures[0]['error']}); the others "
                "were published, no project archive was written; re-run to retry",
                metadata={"failed_tasks": json.dumps(failures)[:4000]})
        with folder_lock(folder):
            current = read_manifest(folder)
            skipped = bool(not force and current and current.get("fingerprint") == fingerprint
                           and current.get("status") != "incomplete" and archive_is_current(folder, current))
            manifest = current if skipped else self._write_project(project, folder, archive, results,
                                                                   fingerprint, started, failures)
        return ProjectExportResult(project_id, project_name, folder, archive, manifest or {}, results, failures,
                                   skipped, time.monotonic() - started)

    def _export_tasks(self, rows: list[dict], force: bool) -> tuple[list[TaskExportResult], list[dict]]:
        results: list[TaskExportResult] = []
        failures: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self.max_workers,
                                thread_name_prefix=f"clearml-tasks-{self.account}") as tasks_pool:
            futures = {tasks_pool.submit(self.export_task, row["id"], force=force, summary=row): row
                       for row in rows}
            for future in as_completed(futures):
                row = futures[future]
                try:
                    results.append(_without_file_list(future.result()))
                except Exception as exc:  # noqa: BLE001 - every other task still gets exported
                    failures.append({"task_id": row["id"], "task_name": row.get("name"), "error": str(exc)[:2000],
                                     "server_failed": _server_failed(exc)})
        results.sort(key=lambda r: (r.task_name, r.task_id))
        return results, failures

    def _write_project(self, project: dict, folder: Path, archive: Path, results: list[TaskExportResult],
                       fingerprint: dict, started: float, failures: list[dict[str, Any]]) -> dict[str, Any]:
        with staged(folder, archive) as stage:
            known, rows = _link_tasks(stage.tmp, results)
            web_url = self._web_url("project", project["id"])
            write_json(stage.tmp / PROJECT_JSON, {"project": project, "account": self.account, "web_url": web_url,
                                                  "exported_at": now_iso(), "tasks": rows, "failed_tasks": failures})
            _write_metrics_csv(stage.tmp / "metrics.csv", rows)
            files = hash_folder(stage.tmp, known)
            manifest = {
                "version": MANIFEST_VERSION, "kind": "project", "account": self.account,
                "project_id": project["id"], "project_name": project.get("name"), "folder": folder.name,
                "fingerprint": fingerprint, "complete": True, "tasks": len(rows), "task_totals": _totals(rows),
                "counts": {"files": len(files), "bytes": sum(f["size"] for f in files.values()),
                           "tasks": len(rows)},
                "status": "incomplete" if failures or any(r["status"] == "incomplete" for r in rows) else
                ("ok" if all(r["status"] == "ok" for r in rows) else "with_issues"),
                "issues": [{"task_id": r["task_id"], "status": r["status"]} for r in rows if r["status"] != "ok"]
                + [{"task_id": f["task_id"], "status": "failed", "error": f["error"]} for f in failures],
                "failed_tasks": failures,
                "web_url": web_url, "exported_at": now_iso(), "seconds": round(time.monotonic() - started, 3),
                "files": files,
            }
            write_manifest(stage.tmp, manifest)
            self._pack(stage, manifest)
        write_sidecar(archive, manifest["archive"]["sha256"])
        write_index(self.root, self.account, "projects", project["id"], folder)
        return manifest


def _without_file_list(result: TaskExportResult) -> TaskExportResult:
    """``result`` without its manifest's list of files (a project of 20,000 tasks holds 20,000 results; the
    list is read again from the published manifest when the project links the task)."""
    if "files" in result.manifest:
        result.manifest = {k: v for k, v in result.manifest.items() if k != "files"}
    return result


def _link_tasks(tmp: Path, results: list[TaskExportResult]) -> tuple[dict[str, dict], list[dict[str, Any]]]:
    known: dict[str, dict] = {}
    rows = []
    for result in results:
        rel_dir = f"tasks/{result.folder.name}"
        link_tree(result.folder, tmp / rel_dir)
        published = read_manifest(result.folder) or {}
        for rel, entry in published.get("files", {}).items():
            known[f"{rel_dir}/{rel}"] = {"size": entry["size"], "sha256": entry["sha256"]}
        rows.append({"task_id": result.task_id, "task_name": result.task_name, "folder": rel_dir,
                     "archive": result.archive.name, "archive_sha256": result.manifest["archive"]["sha256"],
                     "status": result.manifest.get("status"), "counts": result.counts,
                     "picked_metrics": result.picked_metrics, "web_url": result.web_url})
    return known, rows


def _totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        for key, value in row["counts"].items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals


def _write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task_id", "task_name", *PICKED, "status"])
        for row in rows:
            picked = row.get("picked_metrics") or {}
            writer.writerow([safe_cell(cell) for cell in (row["task_id"], row["task_name"], *(
                (picked.get(n) or {}).get("last", "") for n in PICKED), row.get("status"))])  # no live formulas


def _server_failed(exc: BaseException) -> bool:
    """Whether the server (unreachable, 5xx, refusing the keys), not the task, failed an export."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClearMLConnectionError):
            return True
        seen = seen.__cause__
    return False


__all__ = ["ClearMLTaskExporter", "TaskExportResult", "ProjectExportResult", "FINGERPRINT_FIELDS",
           "find_export", "index_path", "task_fingerprint", "sha256_file", "safe_component", "task_dir_name"]
