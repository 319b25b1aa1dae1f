"""The task and project export engine: streams every endpoint to disk, then publishes atomically.

A task export is built in a hidden temporary folder next to its final place, hashed into
``manifest.json``, packed into one archive whose bytes are checked against the manifest, and only then
renamed into place (archive first, folder second). A failure at any point removes the temporary files,
so nothing that looks done is left behind. An unchanged task (same ``last_update``, ``last_change``,
``status`` and ``last_iteration`` as recorded in the manifest, archive present) is skipped without any
download.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from ..client import redact_url_credentials
from ..errors import ArchiveError, ClearMLRequestError
from . import logs, media, scalars
from .manifest import (MANIFEST_VERSION, archive_is_current, hash_folder, read_manifest, sha256_file,
                       write_manifest)
from .packing import archive_suffix, write_archive
from .paths import (default_export_root, project_export_dir, safe_component, task_dir_name,
                    task_export_dir)

TASK_JSON = "task.json"
PROJECT_JSON = "project.json"
FINGERPRINT_FIELDS = ("last_update", "last_change", "status", "last_iteration")
DEFAULT_STATUSES = ("completed", "published")
_PARTIAL = ".partial."
_STALE_SECONDS = 6 * 3600
_POOLS: dict[tuple[str, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def account_pool(account: str, max_workers: int) -> ThreadPoolExecutor:
    """The one download pool of an account (shared by every export in this process, bounded)."""
    with _POOLS_LOCK:
        key = (account, max_workers)
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(max_workers=max_workers,
                                                    thread_name_prefix=f"clearml-archive-{account}")
        return pool


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_fingerprint(task: dict[str, Any]) -> dict[str, Any]:
    """The task fields whose change means the export is out of date."""
    return {k: task.get(k) for k in FINGERPRINT_FIELDS}


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
        archive_format: ``zip`` (default), ``tar.gz`` or ``tar``.
        max_workers: Tasks exported at once, and the size of the account's one pool that reads their
            scalars and downloads their files (at most twice this many requests in flight).
        compresslevel: zlib level for text entries (zip) or the whole stream (tar.gz).
        download: Replaces ``client.download`` (used by tests to inject failures).
        page_size: Page size of ``tasks.get_all`` / ``models.get_all``.
    """

    def __init__(self, client, account: str, export_root: Path | str | None = None, *,
                 archive_format: str = "zip", max_workers: int = 8, compresslevel: int = 1,
                 download: Callable[[str, Path], int] | None = None, page_size: int = 500):
        self.client = client
        self.account = account
        self.root = Path(export_root or default_export_root()).expanduser().resolve()
        archive_suffix(archive_format)
        self.archive_format = archive_format
        self.max_workers = max(1, int(max_workers))
        self.compresslevel = compresslevel
        self.download = download
        self.page_size = page_size
        self._project_names: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def pool(self) -> Executor:
        return account_pool(self.account, self.max_workers)

    # ----------------------------------------------------------------------------------------- lookups
    def get_task(self, task_id: str) -> dict[str, Any]:
        """The full task document (``tasks.get_by_id``); :class:`ArchiveError` if it does not exist."""
        try:
            return self.client.call("tasks.get_by_id", task=task_id)["task"]
        except ClearMLRequestError as exc:
            code = exc.metadata.get("result_code")
            if getattr(code, "value", code) != 400:  # the server failed; the task may well exist
                raise ArchiveError(f"task {task_id!r} could not be read from ClearML account {self.account!r} "
                                   f"({exc}); nothing was published, try again") from exc
            raise ArchiveError(f"task {task_id!r} was not found on ClearML account {self.account!r} "
                               f"({exc}); check the id or remove this partition") from exc

    def project_name(self, project_id: str | None) -> str:
        """The project's name (cached); the id itself if the project cannot be read."""
        if not project_id:
            return "(no project)"
        with self._lock:
            if project_id in self._project_names:
                return self._project_names[project_id]
        try:
            name = self.client.call("projects.get_by_id", project=project_id)["project"].get("name")
        except ClearMLRequestError:
            name = None
        name = name or project_id
        with self._lock:
            self._project_names[project_id] = name
        return name

    def task_folder(self, task: dict[str, Any]) -> Path:
        """Where the task's export folder goes."""
        return task_export_dir(self.root, self.account, self.project_name(task.get("project")),
                               str(task.get("name") or ""), str(task["id"]))

    def _archive_path(self, folder: Path) -> Path:
        return folder.parent / (folder.name + archive_suffix(self.archive_format))

    def _web_url(self, kind: str, obj_id: str, project_id: str | None = None) -> str | None:
        try:
            return self.client.web_url(kind, obj_id, project_id)
        except Exception:  # noqa: BLE001 - a link is a nicety; never fail an export for it
            return None

    # ------------------------------------------------------------------------------------------- task
    def is_current(self, task: dict[str, Any]) -> tuple[bool, Path, dict | None]:
        """Whether the task's published export matches ``task`` (fingerprint and archive present)."""
        folder = self.task_folder(task)
        manifest = read_manifest(folder)
        current = bool(manifest and manifest.get("fingerprint") == task_fingerprint(task)
                       and manifest.get("archive", {}).get("format") == self.archive_format
                       and archive_is_current(folder, manifest))
        return current, folder, manifest

    def export_task(self, task_id: str, *, force: bool = False,
                    summary: dict[str, Any] | None = None) -> TaskExportResult:
        """Export one task (or skip it when its published export is current).

        Args:
            task_id: The ClearML task id.
            force: Re-export even if current.
            summary: The task's row from ``tasks.get_all`` (name, project and fingerprint fields), used
                to decide skipping without another request.
        """
        started = time.monotonic()
        # rows of tasks.get_all(only_fields=...) omit null fields, like tasks.get_by_id does
        task = summary if summary and all(k in summary for k in ("id", "name", "last_update")) \
            else self.get_task(task_id)
        with _folder_lock(self.task_folder(task)):
            return self._export_task_locked(task_id, task, summary, force, started)

    def _export_task_locked(self, task_id: str, task: dict[str, Any], summary: dict[str, Any] | None,
                            force: bool, started: float) -> TaskExportResult:
        if not force:
            current, folder, manifest = self.is_current(task)
            if current:
                return TaskExportResult(task_id, str(task.get("name")), self.project_name(task.get("project")),
                                        folder, self._archive_path(folder), manifest or {}, True,
                                        time.monotonic() - started,
                                        self._web_url("task", task_id, task.get("project")))
        if task is summary:
            task = self.get_task(task_id)
        return self._export_task(task, started)

    def _export_task(self, task: dict[str, Any], started: float) -> TaskExportResult:
        task_id = str(task["id"])
        project_name = self.project_name(task.get("project"))
        folder = self.task_folder(task)
        folder.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(folder.parent, folder.name)
        token = uuid.uuid4().hex[:12]
        tmp = folder.parent / f"{_PARTIAL}{folder.name}.{token}"
        archive = self._archive_path(folder)
        archive_tmp = folder.parent / f"{_PARTIAL}{archive.name}.{token}"
        tmp.mkdir()
        try:
            manifest = self._write_task(task, project_name, folder, tmp, started)
            info = write_archive(tmp, archive_tmp, manifest["files"], self.archive_format,
                                 arcroot=folder.name, compresslevel=self.compresslevel)
            info["file"] = archive.name
            manifest["archive"] = info
            write_manifest(tmp, manifest)
            _publish(tmp, folder, archive_tmp, archive)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            _unlink(archive_tmp)
            if isinstance(exc, ArchiveError):
                raise
            if isinstance(exc, Exception):
                raise ArchiveError(f"export of task {task_id!r} ({self.account}) failed and was rolled "
                                   f"back, nothing was published: {type(exc).__name__}: {exc}") from exc
            raise
        _write_sidecar(archive, manifest["archive"]["sha256"])
        _write_index(self.root, self.account, "tasks", task_id, folder)
        return TaskExportResult(task_id, str(task.get("name")), project_name, folder, archive, manifest,
                                False, time.monotonic() - started,
                                self._web_url("task", task_id, task.get("project")))

    def _write_task(self, task: dict[str, Any], project_name: str, folder: Path, tmp: Path,
                    started: float) -> dict[str, Any]:
        task_id = str(task["id"])
        issues: list[dict[str, Any]] = []
        counts: dict[str, Any] = {}
        server: dict[str, Any] = {}
        web_url = self._web_url("task", task_id, task.get("project"))
        _write_json(tmp / TASK_JSON, {
            "task": redact_url_credentials(task), "account": self.account, "web_url": web_url,
            "exported_at": _now(),
            "project": {"id": task.get("project"), "name": project_name},
            "names": {"task": task.get("name"), "project": project_name, "folder": folder.name},
        })
        downloads = media.Downloads(self.client, tmp, self.pool, self.download)

        # The account's pool reads the scalars (the longest stream) and downloads the files while this
        # thread reads the other streams: at most two of a task's streams are in flight, and the pool
        # bounds the account's. Everything is settled before anything is read or rolled back.
        futures = {"scalars": self.pool.submit(scalars.export_scalars, self.client, task_id, tmp)}
        streams = {
            "artifacts": lambda: media.plan_artifacts(downloads, task),
            "debug_images": lambda: media.export_event_stream(
                self.client, task_id, "training_debug_image", tmp / media.DEBUG_DIR / "index.jsonl",
                on_event=lambda ev: media.plan_debug_image(downloads, ev)),
            "models": lambda: media.collect_models(self.client, task),
            "console": lambda: logs.export_console_log(self.client, task_id, tmp),
            "plots": lambda: media.export_event_stream(self.client, task_id, "plot",
                                                       tmp / media.PLOTS_DIR / "plots.jsonl"),
        }
        done: dict[str, Any] = {}
        try:
            for name, stream in streams.items():
                done[name] = _section(issues, name, stream)
                if name == "models":
                    media.plan_models(downloads, done[name] or [])
        except BaseException:
            _settle(futures.values(), downloads)
            raise
        wait(futures.values())
        failed = [f.exception() for f in futures.values()
                  if f.exception() is not None and not isinstance(f.exception(), ClearMLRequestError)]
        if failed:
            _settle(futures.values(), downloads)
            raise failed[0]
        done.update({name: _section(issues, name, future.result) for name, future in futures.items()})
        artifacts_index, model_records = done["artifacts"] or [], done["models"] or []

        log_result = done["console"]
        if log_result:
            counts.update(log_lines=log_result.lines, log_bytes=log_result.bytes)
            server["log_events"] = log_result.server_total
            issues.extend(log_result.errors)
        scalar_result = done["scalars"]
        picked: dict[str, Any] = {}
        if scalar_result:
            counts.update(scalar_points=scalar_result.points, scalar_series=len(scalar_result.series))
            server["scalar_points"] = scalar_result.server_total
            issues.extend(scalar_result.errors)
            picked = scalars.write_metrics_summary(tmp, scalar_result)["picked"]
        plots = done["plots"]
        if plots:
            counts["plots"] = plots.events
            server["plots"] = plots.server_total
            issues.extend(plots.errors)
        images = done["debug_images"]
        if images:
            counts["debug_image_events"] = images.events
            server["debug_image_events"] = images.server_total
            issues.extend(images.errors)

        records = downloads.wait()
        # the index files are written after the downloads settled, so they hold the final statuses
        if images:
            with open(tmp / media.DEBUG_DIR / "downloads.jsonl", "w", encoding="utf-8") as handle:
                for record in records:
                    if record["kind"] == "debug_image":
                        handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        _write_json(tmp / media.ARTIFACTS_DIR / "index.json", artifacts_index)
        _write_json(tmp / media.MODELS_DIR / "models.json", model_records)
        for record in records:
            if record["status"] not in ("ok",):
                issues.append({"section": record["kind"], "uri": record.get("uri"), "status": record["status"],
                               "error": record.get("error") or record.get("reason")})
        by_kind: dict[str, int] = {}
        for record in records:
            if record["status"] == "ok":
                by_kind[record["kind"]] = by_kind.get(record["kind"], 0) + 1
        counts.update(artifacts=len(artifacts_index), artifact_files=by_kind.get("artifact", 0),
                      models=len(model_records), model_files=by_kind.get("model", 0),
                      debug_image_files=by_kind.get("debug_image", 0),
                      downloaded_bytes=sum(r.get("bytes", 0) for r in records if r["status"] == "ok"))

        deleted = False
        try:
            latest = self.client.call("tasks.get_by_id", task=task_id)["task"]
            if task_fingerprint(latest) != task_fingerprint(task):
                issues.append({"section": "task", "warning": "the task changed during the export; the next "
                                                             "run re-exports it"})
        except ClearMLRequestError as exc:
            deleted = True
            issues.append({"section": "task", "error": f"the task was deleted during the export: {exc}"})

        files = hash_folder(tmp, downloads.known_hashes())
        counts["files"] = len(files)
        counts["bytes"] = sum(f["size"] for f in files.values())
        manifest = {
            "version": MANIFEST_VERSION, "kind": "task", "account": self.account, "task_id": task_id,
            "task_name": task.get("name"), "project_id": task.get("project"), "project_name": project_name,
            "folder": folder.name, "fingerprint": task_fingerprint(task), "complete": True,
            "status": "ok" if not any("error" in i for i in issues) else "with_issues",
            "task_deleted": deleted, "counts": counts, "server_counts": server, "issues": issues,
            "picked_metrics": picked, "web_url": web_url, "exported_at": _now(),
            "seconds": round(time.monotonic() - started, 3), "files": files,
        }
        write_manifest(tmp, manifest, sync=False)  # packed next; the final one is written durably
        return manifest

    # ---------------------------------------------------------------------------------------- project
    def list_project_tasks(self, project_id: str, statuses: Iterable[str] = DEFAULT_STATUSES
                           ) -> list[dict[str, Any]]:
        """Every task of the project with one of ``statuses`` (``tasks.get_all`` paged, no cap)."""
        fields = ["id", "name", "project", *FINGERPRINT_FIELDS]
        return list(self.client.iter_pages("tasks.get_all", "tasks", page_size=self.page_size,
                                           project=[project_id],
                                           status=list(statuses), only_fields=fields,
                                           order_by=["created"]))

    def resolve_project(self, key: str) -> dict[str, Any]:
        """The project whose id (or else exact name) is ``key``."""
        try:
            return self.client.call("projects.get_by_id", project=key)["project"]
        except ClearMLRequestError:
            pass
        found = self.client.call("projects.get_all", name=f"^{_regex_escape(key)}$",
                                 only_fields=["id", "name"]).get("projects") or []
        if not found:
            raise ArchiveError(f"project {key!r} was not found on ClearML account {self.account!r}; "
                               "use a project id (or exact name) that exists")
        return found[0]

    def export_project(self, project_key: str, *, force: bool = False,
                       statuses: Iterable[str] = DEFAULT_STATUSES) -> ProjectExportResult:
        """Export every task of a project (in parallel, reusing current task exports) and pack them.

        The project folder ``<root>/<account>/projects/<project>/`` holds ``project.json``,
        ``metrics.csv`` (the picked metrics per task), and ``tasks/<task folder>/`` (hard links to the
        task exports); the archive beside it packs the folder.
        Raises :class:`ArchiveError` after exporting every other task when some task failed (no
        project archive is published then).
        """
        started = time.monotonic()
        project = self.resolve_project(project_key)
        project_id, project_name = project["id"], project.get("name") or project["id"]
        with self._lock:
            self._project_names[project_id] = project_name
        statuses = tuple(statuses)
        rows = self.list_project_tasks(project_id, statuses)
        results: list[TaskExportResult] = []
        failures: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self.max_workers,
                                thread_name_prefix=f"clearml-tasks-{self.account}") as tasks_pool:
            futures = {tasks_pool.submit(self.export_task, row["id"], force=force, summary=row): row
                       for row in rows}
            for future in as_completed(futures):
                row = futures[future]
                try:
                    results.append(future.result())
                except Exception as exc:  # noqa: BLE001 - every other task still gets exported
                    failures.append({"task_id": row["id"], "task_name": row.get("name"), "error": str(exc)})
        results.sort(key=lambda r: (r.task_name, r.task_id))
        folder = project_export_dir(self.root, self.account, project_name)
        archive = folder.parent / (folder.name + archive_suffix(self.archive_format))
        fingerprint = {"statuses": sorted(statuses), "format": self.archive_format,
                       "tasks": {r.task_id: r.manifest["archive"]["sha256"] for r in results}}
        if failures:
            raise ArchiveError(
                f"{len(failures)} of {len(rows)} tasks of project {project_name!r} ({self.account}) could "
                f"not be exported (first: {failures[0]['task_id']}: {failures[0]['error']}); the others "
                "were published, no project archive was written; re-run to retry",
                metadata={"failed_tasks": json.dumps(failures)[:4000]})
        with _folder_lock(folder):
            return self._finish_project(project, folder, archive, results, fingerprint, force, started)

    def _finish_project(self, project: dict, folder: Path, archive: Path, results: list[TaskExportResult],
                        fingerprint: dict, force: bool, started: float) -> ProjectExportResult:
        project_id, project_name = project["id"], project.get("name") or project["id"]
        current = read_manifest(folder)
        if not force and current and current.get("fingerprint") == fingerprint \
                and archive_is_current(folder, current):
            return ProjectExportResult(project_id, project_name, folder, archive, current, results, [],
                                       True, time.monotonic() - started)
        manifest = self._write_project(project, folder, archive, results, fingerprint, started)
        return ProjectExportResult(project_id, project_name, folder, archive, manifest, results, [], False,
                                   time.monotonic() - started)

    def _write_project(self, project: dict, folder: Path, archive: Path, results: list[TaskExportResult],
                       fingerprint: dict, started: float) -> dict[str, Any]:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(folder.parent, folder.name)
        token = uuid.uuid4().hex[:12]
        tmp = folder.parent / f"{_PARTIAL}{folder.name}.{token}"
        archive_tmp = folder.parent / f"{_PARTIAL}{archive.name}.{token}"
        tmp.mkdir()
        try:
            known: dict[str, dict] = {}
            rows = []
            for result in results:
                rel_dir = f"tasks/{result.folder.name}"
                _link_tree(result.folder, tmp / rel_dir)
                for rel, entry in result.manifest.get("files", {}).items():
                    known[f"{rel_dir}/{rel}"] = entry
                rows.append({"task_id": result.task_id, "task_name": result.task_name, "folder": rel_dir,
                             "archive": result.archive.name, "archive_sha256": result.manifest["archive"]["sha256"],
                             "status": result.manifest.get("status"), "counts": result.counts,
                             "picked_metrics": result.picked_metrics, "web_url": result.web_url})
            web_url = self._web_url("project", project["id"])
            _write_json(tmp / PROJECT_JSON, {"project": project, "account": self.account, "web_url": web_url,
                                             "exported_at": _now(), "tasks": rows})
            _write_metrics_csv(tmp / "metrics.csv", rows)
            files = hash_folder(tmp, known)
            totals: dict[str, int] = {}
            for row in rows:
                for key, value in row["counts"].items():
                    if isinstance(value, int):
                        totals[key] = totals.get(key, 0) + value
            manifest = {
                "version": MANIFEST_VERSION, "kind": "project", "account": self.account,
                "project_id": project["id"], "project_name": project.get("name"), "folder": folder.name,
                "fingerprint": fingerprint, "complete": True, "tasks": len(rows), "task_totals": totals,
                "counts": {"files": len(files), "bytes": sum(f["size"] for f in files.values()),
                           "tasks": len(rows)},
                "issues": [{"task_id": r["task_id"], "status": r["status"]} for r in rows
                           if r["status"] != "ok"],
                "web_url": web_url, "exported_at": _now(), "seconds": round(time.monotonic() - started, 3),
                "files": files,
            }
            write_manifest(tmp, manifest)
            info = write_archive(tmp, archive_tmp, files, self.archive_format, arcroot=folder.name,
                                 compresslevel=self.compresslevel)
            info["file"] = archive.name
            manifest["archive"] = info
            write_manifest(tmp, manifest)
            _publish(tmp, folder, archive_tmp, archive)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            _unlink(archive_tmp)
            raise
        _write_sidecar(archive, manifest["archive"]["sha256"])
        _write_index(self.root, self.account, "projects", project["id"], folder)
        return manifest


# --------------------------------------------------------------------------------------------- helpers
def _settle(futures: Iterable[Future], downloads: media.Downloads) -> None:
    """Wait for the streams, then the downloads, so nothing writes into a folder about to be removed."""
    wait(list(futures))
    with contextlib.suppress(BaseException):
        downloads.wait()


def _section(issues: list[dict[str, Any]], name: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``None`` with an issue recorded when the server refused the section's requests."""
    try:
        return fn()
    except ClearMLRequestError as exc:
        issues.append({"section": name, "error": str(exc)})
        return None


def _regex_escape(text: str) -> str:
    import re

    return re.escape(text)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False, default=str,
                  allow_nan=True)


def _write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    names = ("mAP50", "mAP50-95", "precision", "recall", "F1")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task_id", "task_name", *names, "status"])
        for row in rows:
            picked = row.get("picked_metrics") or {}
            writer.writerow([row["task_id"], row["task_name"],
                             *((picked.get(n) or {}).get("last", "") for n in names), row.get("status")])


def _link_tree(src: Path, dest: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(src):
        target_dir = dest / Path(dirpath).relative_to(src)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            try:
                os.link(Path(dirpath, name), target_dir / name)
            except OSError:
                shutil.copy2(Path(dirpath, name), target_dir / name)


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """Serialize exports of one folder across threads and processes (two runs never publish at once)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f".lock.{folder.name}"
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _publish(tmp: Path, folder: Path, archive_tmp: Path, archive: Path) -> None:
    os.replace(archive_tmp, archive)
    trash = None
    if folder.exists():
        trash = folder.parent / f"{_PARTIAL}{folder.name}.old.{uuid.uuid4().hex[:8]}"
        os.replace(folder, trash)
    os.replace(tmp, folder)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _write_sidecar(archive: Path, sha256: str) -> None:
    tmp = archive.parent / f"{_PARTIAL}{archive.name}.sha256"
    tmp.write_text(f"{sha256}  {archive.name}\n", encoding="utf-8")
    os.replace(tmp, archive.parent / f"{archive.name}.sha256")


def index_path(root: Path, account: str, kind: str, obj_id: str) -> Path:
    """``<root>/<account>/index/<kind>/<id>.json``: where the published export of an id lives."""
    return Path(root) / safe_component(account) / "index" / kind / f"{safe_component(obj_id, 80)}.json"


def find_export(root: Path, account: str, kind: str, obj_id: str) -> Path | None:
    """The published export folder of a task/project id (from the local index), if any."""
    try:
        rel = json.loads(index_path(root, account, kind, obj_id).read_text(encoding="utf-8"))["folder"]
    except (OSError, ValueError, KeyError):
        return None
    folder = (Path(root) / rel).resolve()
    return folder if Path(root).resolve() in folder.parents else None


def _write_index(root: Path, account: str, kind: str, obj_id: str, folder: Path) -> None:
    path = index_path(root, account, kind, obj_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_PARTIAL}{path.name}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({"folder": folder.relative_to(root).as_posix()}), encoding="utf-8")
    os.replace(tmp, path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _clean_stale(parent: Path, name: str) -> None:
    """Remove temporary leftovers of ``name`` from runs that died (older than a few hours)."""
    prefix = f"{_PARTIAL}{name}"
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if entry.name.startswith(prefix):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime < _STALE_SECONDS:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


__all__ = ["ClearMLTaskExporter", "TaskExportResult", "ProjectExportResult", "account_pool",
           "task_fingerprint", "sha256_file", "safe_component", "task_dir_name"]
