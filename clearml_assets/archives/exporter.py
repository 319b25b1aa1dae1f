"""The task and project export engine: streams every endpoint to disk, then publishes atomically.

A task export is built in a hidden temporary folder next to its final place (:mod:`.publish`), written by
:class:`~.task_writer.TaskWriter`, hashed into ``manifest.json``, packed into one archive whose bytes are
checked against the manifest, and only then renamed into place (archive first, folder second). A failure
at any point removes the temporary files, so nothing that looks done is left behind. An unchanged task
(same ``last_update``, ``last_change``, ``status`` and ``last_iteration`` as recorded in the manifest,
archive present, nothing lacking) is skipped without any download.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import ArchiveError
from .lookup import ArchiveLookup
from .manifest import archive_is_current, read_manifest, sha256_file, write_manifest
from .packing import archive_suffix, pack_folder
from .paths import default_export_root, project_export_dir, safe_component, task_dir_name
from .project_export import export_tasks, write_project
from .project_rows import TaskRowResults, TaskRows
from .publish import find_export, folder_lock, index_path, staged, write_index, write_sidecar
from .task_writer import FINGERPRINT_FIELDS, TaskWriter, task_fingerprint

TASK_JSON = "task.json"
DEFAULT_STATUSES = ("completed", "published")


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
    tasks: Sequence[TaskExportResult] = field(default_factory=list)
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
        max_workers: Tasks exported at once; this exporter's one pool, which reads their scalars, plots and
            debug images and downloads their files, has twice as many threads (a task's own thread mostly waits
            for them; the account's ``max_connections`` bounds the requests in flight). The pool is shut down by
            :meth:`close` (or when the exporter is garbage-collected).
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
        self._pool = ThreadPoolExecutor(max_workers=2 * self.max_workers,
                                        thread_name_prefix=f"clearml-archive-{account}")
        self._created_models: dict[str, list[dict]] = {}  # by task, read for a batch (:meth:`prefetch`)
        self._models_lock = threading.Lock()
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
        with self._models_lock:
            created = self._created_models.pop(task_id, None)
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
            return self._export_task(task, started, created)

    def task_documents(self, task_ids: list[str], chunk: int = 100) -> dict[str, dict[str, Any]]:
        """The whole documents of ``task_ids``, one ``tasks.get_all`` page of ``chunk`` ids (at most 500) instead of a
        ``tasks.get_by_id`` each. Ids it does not return (deleted, not visible, or cut off by a server that
        pages shorter) are left out: :meth:`export_task` reads those one by one."""
        found: dict[str, dict[str, Any]] = {}
        for ids in _chunks(task_ids, chunk):
            rows = [t.raw for t in self.client.tasks.page(0, len(ids), id=ids)]
            found.update((r["id"], r) for r in rows if isinstance(r, dict) and r.get("id") in ids
                         and (self.lookup.include_public or r.get("company", None) != ""))
        return found

    def prefetch(self, task_ids: list[str], chunk: int = 100) -> dict[str, dict[str, Any]]:
        """Read what the exports of ``task_ids`` need for a batch at once: their documents (returned, see
        :meth:`task_documents`) and the models each created (kept for its export), one query per ``chunk`` ids
        each instead of a request or two per task."""
        documents = self.task_documents(task_ids, chunk)
        ids = [i for i in task_ids if i in documents]
        for part in _chunks(ids, chunk):
            created: dict[str, list[dict]] = {task_id: [] for task_id in part}
            for model in (m.raw for m in self.client.models.iter(task=part)):
                if model.get("task") in created:
                    created[model["task"]].append(model)
            with self._models_lock:
                self._created_models.update(created)
        return documents

    def _result(self, task: dict, folder: Path, manifest: dict, skipped: bool, started: float
                ) -> TaskExportResult:
        task_id = str(task["id"])
        return TaskExportResult(task_id, str(task.get("name")), self.project_name(task.get("project")),
                                folder, self._archive_path(folder), manifest, skipped,
                                time.monotonic() - started, self._web_url("task", task_id, task.get("project")))

    def _export_task(self, task: dict[str, Any], started: float, created: list[dict] | None = None
                     ) -> TaskExportResult:
        task_id = str(task["id"])
        folder = self.task_folder(task)
        archive = self._archive_path(folder)
        writer = TaskWriter(self.client, self.account, self.pool, self.download, created)
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
        """Pack the staging folder, hashing each file as it is packed (``manifest["files"]`` holds the entries
        already known, which are checked), write the manifest (packed last), record the archive in it, publish."""

        def finish(files: dict[str, dict[str, Any]]) -> None:
            manifest["files"] = files
            write_manifest(stage.tmp, manifest, sync=False)  # the final one, with the archive, is written durably

        info = pack_folder(stage.tmp, stage.archive_tmp, manifest.pop("files", {}), finish, self.archive_format,
                           arcroot=stage.folder.name, compresslevel=self.compresslevel)
        info["file"] = stage.archive.name
        manifest["archive"] = info
        write_manifest(stage.tmp, manifest)
        stage.publish()

    # ---------------------------------------------------------------------------------------- project
    def export_project(self, project_key: str, *, force: bool = False, statuses: Iterable[str] = DEFAULT_STATUSES,
                       export_one: Callable[..., TaskExportResult] | None = None) -> ProjectExportResult:
        """Export every task of a project (in parallel, reusing current task exports) and pack their archives.

        The project folder ``<root>/<account>/projects/<project>/.../%project/`` holds ``project.json``,
        ``metrics.csv`` (the picked metrics per task) and ``tasks/<task folder>.<format>`` (hard links to the task
        archives); the archive beside it packs the folder (:mod:`.project_export`). Memory stays flat in the
        number of tasks.
        A task that cannot be exported (a name, a record or a file the export fails on) is listed in the
        project archive (``failed_tasks``, with its error) and makes its status ``incomplete`` instead of
        blocking it. When the server itself failed a task (unreachable, 5xx), :class:`ArchiveError` is raised
        after exporting every other task, and no project archive is published. ``export_one`` exports one task
        in place of :meth:`export_task` (same arguments; the archive assets hold the task's lock around it).
        """
        started = time.monotonic()
        project = self.resolve_project(project_key)
        project_id, project_name = project["id"], project.get("name") or project["id"]
        self.lookup.remember(project_id, project_name)
        statuses = tuple(statuses)
        folder = project_export_dir(self.root, self.account, project_name)
        archive = self._archive_path(folder)
        rows = TaskRows(folder.parent)
        failures = export_tasks(self, self.lookup.iter_project_tasks(project_id, statuses), force, rows,
                                export_one)
        if any(f.pop("server_failed") for f in failures):
            raise ArchiveError(
                f"{len(failures)} of {len(rows) + len(failures)} tasks of project {project_name!r} ({self.account}) "
                f"could not be exported (first: {failures[0]['task_id']}: {failures[0]['error']}); the others "
                "were published, no project archive was written; re-run to retry",
                metadata={"failed_tasks": json.dumps(failures)[:4000]})
        fingerprint = {"statuses": sorted(statuses), "format": self.archive_format, "layout": "task_archives",
                       "tasks": len(rows), "tasks_sha256": rows.digest()}
        with folder_lock(folder):
            current = read_manifest(folder)
            skipped = bool(not force and current and current.get("fingerprint") == fingerprint
                           and current.get("status") != "incomplete" and archive_is_current(folder, current))
            manifest = current if skipped else write_project(self, project, folder, archive, rows, fingerprint,
                                                             started, failures)
        return ProjectExportResult(project_id, project_name, folder, archive, manifest or {},
                                   TaskRowResults(rows, _result_of_row), failures, skipped,
                                   time.monotonic() - started)


def _chunks(ids: list[str], chunk: int) -> Iterator[list[str]]:
    """``ids`` in slices of ``chunk`` (1 to 500, the real server's page cap)."""
    size = max(1, min(chunk, 500))
    return (ids[start:start + size] for start in range(0, len(ids), size))


def _result_of_row(row: dict[str, Any]) -> TaskExportResult:
    """A task's result as a project export keeps it (its manifest reduced to what the project says of it)."""
    manifest = {"status": row.get("status"), "counts": row.get("counts") or {},
                "picked_metrics": row.get("picked_metrics") or {},
                "archive": {"sha256": row.get("archive_sha256"), "size": row.get("archive_bytes")}}
    return TaskExportResult(row["task_id"], str(row.get("task_name")), str(row.get("project_name")),
                            Path(row["folder_path"]), Path(row["archive_path"]), manifest, bool(row.get("skipped")),
                            float(row.get("seconds") or 0.0), row.get("web_url"))


__all__ = ["ClearMLTaskExporter", "TaskExportResult", "ProjectExportResult", "FINGERPRINT_FIELDS",
           "find_export", "index_path", "task_fingerprint", "sha256_file", "safe_component", "task_dir_name"]
