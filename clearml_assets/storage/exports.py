"""Writing exports to an export root on object storage: :class:`RemoteExports` around an exporter.

The exporter keeps writing to a local staging folder with the layout of a local export root; this module
brings exports that are current on the store into staging first (so the exporter's incremental skip sees
them), uploads what the exporter published (verified, manifest last, :class:`~.remote.ArchiveStore`), and
checks a published export on the store (:func:`check_remote_export`).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping

from ..accounts import default_staging_root
from ..errors import ArchiveError
from .layout import digest_file, index_relpath, join, read_local_manifest, relative
from .remote import ArchiveStore, PublishReport, RemoteMismatch


def is_remote_root(export_root: str | os.PathLike | None) -> bool:
    """Whether ``export_root`` is an object-store URL (``s3://``, ``gs://``, ...) rather than a local path."""
    if export_root is None or isinstance(export_root, os.PathLike):
        return False
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", str(export_root))
    return bool(match) and match.group(1).lower() not in ("file", "local")


class RemoteExports:
    """An exporter's staging root bound to an :class:`ArchiveStore`: what the archive assets call when
    ``export_root`` is an object-store URL.

    The exporter keeps working on a local folder (``staging``, same layout); around it,
    :meth:`export_task` / :meth:`export_project` bring exports that are current on the store into the
    staging folder first (so the exporter's own incremental skip sees them), and upload what the exporter
    published afterwards (verified, manifest last), skipping uploads the store already holds.

    Args:
        export_root: ``s3://bucket/prefix`` (or ``gs://``, ``az://``).
        storage_options: fsspec options (credentials, ``endpoint_url``); empty: the standard environment.
        staging_root: Local staging folder (default :func:`default_staging_root`).
        verify: Read every upload back (size and sha256).
    """

    def __init__(self, export_root: str, storage_options: Mapping[str, Any] | None = None, *,
                 staging_root: Path | str | None = None, verify: bool = True):
        self.store = ArchiveStore(export_root, storage_options, verify=verify)
        self.staging = Path(staging_root or default_staging_root(export_root)).expanduser().resolve()
        self.staging.mkdir(parents=True, exist_ok=True)
        self._fetched: dict[str, dict[str, Any]] = {}  # folders download() verified: their manifests

    # ------------------------------------------------------------------ hooks (usable inside the exporter)
    def rel(self, local: Path) -> str:
        """``local``'s path relative to the staging root (= its path under the store's root)."""
        return relative(self.staging, Path(local))

    def manifest_of(self, folder: Path) -> dict[str, Any] | None:
        """The remote manifest of a staging export folder."""
        return self.store.read_manifest(self.rel(folder))

    def is_current(self, folder: Path, manifest: dict[str, Any] | None) -> bool:
        """Remote ``archive_is_current`` for a staging export folder."""
        return self.store.archive_is_current(self.rel(folder), manifest)

    def upload(self, folder: Path, archive: Path, index: Path | None = None) -> PublishReport | None:
        """Publish a staging export to the store unless the store's copy is verified to be exactly it.

        The store is re-read (:meth:`ArchiveStore.differences`), not trusted from its manifest: a copy damaged
        on the store is replaced by the next run, also on the machine whose staging folder still holds the
        export. What :meth:`download` verified moments ago is not read a second time.
        """
        index = index if index is not None and Path(index).exists() else None
        local = read_local_manifest(folder)
        if local:
            fetched = self._fetched.pop(self.rel(folder), None)
            if not self.store.differences(self.staging, folder, archive, index=index, reread=fetched != local):
                return None
        return self.store.publish(self.staging, folder, archive, index=index)

    def download(self, folder: Path, archive: Path, manifest: dict[str, Any]) -> None:
        """Bring a current remote export (folder, archive, sidecar) into the staging folder, verified."""
        if read_local_manifest(folder) == manifest and archive.exists() \
                and archive.stat().st_size == (manifest.get("archive") or {}).get("size"):
            return
        import shutil
        import uuid

        token = uuid.uuid4().hex[:12]
        tmp = folder.parent / f".partial.{folder.name}.{token}"
        try:
            self.store.fetch_folder(self.rel(folder), tmp)
            archive_tmp = folder.parent / f".partial.{archive.name}.{token}"
            rel_archive = self.rel(archive)
            try:
                self.store.fs.get_file(self.store.remote(rel_archive), str(archive_tmp))
            except Exception as exc:  # noqa: BLE001
                raise self.store._error(f"downloading {self.store.url_of(rel_archive)}", exc) from exc
            info = manifest.get("archive") or {}
            if digest_file(archive_tmp) != (info.get("sha256"), info.get("size")):
                archive_tmp.unlink(missing_ok=True)
                raise RemoteMismatch(f"{self.store.url_of(rel_archive)} does not match its manifest; "
                                     "export it again")
            os.replace(archive_tmp, archive)
            sidecar = archive.parent / f"{archive.name}.sha256"
            sidecar.write_text(f"{info.get('sha256')}  {archive.name}\n", encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
            self._fetched[self.rel(folder)] = manifest
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def check(self, account: str, kind: str, obj_id: str) -> tuple[bool, dict[str, Any]]:
        """:func:`check_remote_export` on this store."""
        return check_remote_export(self.store, account, kind, obj_id)

    # ------------------------------------------------------------- orchestration around an exporter
    def export_task(self, exporter, task_id: str, *, force: bool = False,
                    summary: dict[str, Any] | None = None):
        """``exporter.export_task`` against the store (``exporter.root`` must be :attr:`staging`).

        Returns:
            The exporter's ``TaskExportResult`` (``skipped`` when the store already held it).
        """
        self._require_staging(exporter)
        task = summary if summary and all(k in summary for k in ("id", "name", "last_update")) \
            else exporter.get_task(task_id)
        if not force:
            self._bring_current_task(exporter, task)
        result = exporter.export_task(task_id, force=force, summary=summary)
        self.upload(result.folder, result.archive,
                    self.staging / index_relpath(exporter.account, "tasks", task_id))
        return result

    def export_project(self, exporter, project_key: str, *, force: bool = False, statuses=None,
                       task_lock: Callable[[str], ContextManager[Any]] | None = None):
        """``exporter.export_project`` against the store: each task is brought current from the store, exported
        and uploaded in one step under ``task_lock(task_id)`` (the lock the task archive asset holds, so a task
        and a project export never write one task at once, on any host); then the project export is uploaded
        (its manifest last)."""
        self._require_staging(exporter)
        hold = task_lock or (lambda task_id: contextlib.nullcontext())

        def export_one(task_id: str, *, force: bool, summary: dict[str, Any] | None = None, document=None):
            with hold(task_id):
                if not force:
                    self._bring_current_task(exporter, summary or {"id": task_id})
                result = exporter.export_task(task_id, force=force, summary=summary, document=document)
                self.upload(result.folder, result.archive,
                            self.staging / index_relpath(exporter.account, "tasks", task_id))
                return result

        if not force:
            self._bring_current_project(exporter, exporter.resolve_project(project_key))
        kwargs = {} if statuses is None else {"statuses": statuses}
        result = exporter.export_project(project_key, force=force, export_one=export_one, **kwargs)
        self.upload(result.folder, result.archive,
                    self.staging / index_relpath(exporter.account, "projects", result.project_id))
        return result

    def _require_staging(self, exporter) -> None:
        if Path(exporter.root).resolve() != self.staging:
            raise ArchiveError(f"the exporter writes to {exporter.root}, not to the staging folder "
                               f"{self.staging} of {self.store.url}")

    def _bring_current_task(self, exporter, task: dict[str, Any]) -> None:
        if not all(k in task for k in ("id", "name", "last_update")):
            task = exporter.get_task(task["id"])
        folder = exporter.task_folder(task)
        manifest = self.manifest_of(folder)
        if not manifest or manifest.get("fingerprint") != _task_fingerprint(task) \
                or (manifest.get("archive") or {}).get("format") != exporter.archive_format:
            return
        archive = folder.parent / str(manifest["archive"].get("file"))
        if self.is_current(folder, manifest):
            try:
                self.download(folder, archive, manifest)
            except RemoteMismatch:  # a damaged remote copy: export again, the upload replaces it
                return

    def _bring_current_project(self, exporter, project: dict[str, Any]) -> None:
        from ..archives.paths import project_export_dir

        folder = project_export_dir(self.staging, exporter.account, project.get("name") or project["id"])
        manifest = self.manifest_of(folder)
        if manifest and (manifest.get("archive") or {}).get("format") == exporter.archive_format \
                and self.is_current(folder, manifest):
            try:
                self.download(folder, folder.parent / str(manifest["archive"].get("file")), manifest)
            except RemoteMismatch:
                return


def check_remote_export(store: ArchiveStore, account: str, kind: str, obj_id: str
                        ) -> tuple[bool, dict[str, Any]]:
    """The archive check on an object store: re-read the published export of a task/project id (``kind``:
    ``"tasks"`` or ``"projects"``) from the store, every listed file and the archive against the manifest.

    Returns:
        ``(passed, metadata)`` with plain JSON values (``problems`` a list, ``archive_url`` a string).

    Raises:
        ArchiveError: the store cannot be reached or refuses the credentials.
    """
    rel = store.find_export(account, kind, obj_id)
    if rel is None:
        return False, {"problem": f"no published export of {kind[:-1]} {obj_id!r} under {store.url}"}
    problems, manifest = store.verify_export(rel)
    manifest = manifest or {}
    info = manifest.get("archive") or {}
    meta: dict[str, Any] = {"archive_url": store.url_of(join(posixpath.dirname(rel), str(info.get("file")))),
                            "archive_sha256": info.get("sha256"),
                            "files_checked": len(manifest.get("files", {})) + 1, "problems": problems[:50]}
    if not problems and manifest.get("status") == "incomplete":
        meta["problem"] = ("the archive lacks data the server holds (status incomplete); the next "
                           "materialization exports it again")
        meta["issues"] = [i for i in manifest.get("issues", []) if "error" in i][:20]
        return False, meta
    return not problems, meta


def _task_fingerprint(task: dict[str, Any]) -> dict[str, Any]:
    try:
        from ..archives.exporter import task_fingerprint
    except ImportError:  # the exporter split moves it
        from ..archives.task_writer import task_fingerprint
    return task_fingerprint(task)


__all__ = ["RemoteExports", "check_remote_export", "default_staging_root", "index_relpath", "is_remote_root"]
