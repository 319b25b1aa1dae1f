"""Archives on object storage: an export root such as ``s3://bucket/prefix`` (or ``gs://``, ``az://``).

Exports are still built and published in a local staging folder (same layout as a local export root); then
:meth:`ArchiveStore.publish` copies one published export (its folder, its archive, the archive's
``.sha256`` sidecar and the id index entry) to the store under the *same relative paths*, in an order that
makes a half-done upload never look done:

1. the remote ``manifest.json`` of the folder is deleted (an older export stops looking done);
2. every file the manifest lists, the archive and the sidecar are uploaded;
3. each is read back from the store and its size and sha256 compared with the manifest;
4. remote files the new manifest does not list are removed;
5. ``manifest.json`` is written (the export is now done), then the index entry.

A run cut short anywhere before 5 leaves no manifest, so the incremental skip (:meth:`ArchiveStore.is_current`,
which reads the remote manifest) re-exports and the next upload completes. Object stores have no rename
and no lock: two runs publishing the *same* folder at once are not serialized (Dagster runs one
materialization of a partition at a time).

Credentials: for ``s3://`` the standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for S3-compatible servers, profiles)
or explicit fsspec ``storage_options`` (``key``, ``secret``, ``endpoint_url`` or
``client_kwargs={"endpoint_url": ...}``). ``gs://`` needs ``gcsfs`` and ``az://`` / ``abfs://`` need
``adlfs`` installed; they take their own fsspec options.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArchiveError

MANIFEST_NAME = "manifest.json"
_SMALL = 8 << 20  # files up to this size are read back in one batched request; bigger ones streamed
_BATCH_BYTES = 64 << 20
_CHUNK = 4 << 20
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
             "abfss": "adlfs"}
_SECRET_OPTION = re.compile(r"secret|token|password|credential|sas|key$|account_key|connection_string", re.I)
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
               "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY")
_S3_DEFAULT_CONFIG = {"connect_timeout": 10, "read_timeout": 120,
                      "retries": {"max_attempts": 3, "mode": "standard"}}


def is_remote_root(export_root: str | os.PathLike | None) -> bool:
    """Whether ``export_root`` is an object-store URL (``s3://``, ``gs://``, ...) rather than a local path."""
    if export_root is None or isinstance(export_root, os.PathLike):
        return False
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", str(export_root))
    return bool(match) and match.group(1).lower() not in ("file", "local")


def default_staging_root(export_root: str) -> Path:
    """``$CLEARML_ASSETS_HOME/staging/<hash of the URL>``: where exports to ``export_root`` are built."""
    home = os.environ.get("CLEARML_ASSETS_HOME") or str(Path("~/.clearml_assets").expanduser())
    digest = hashlib.sha256(str(export_root).rstrip("/").encode("utf-8")).hexdigest()[:16]
    return Path(home).expanduser() / "staging" / digest


def index_relpath(account: str, kind: str, obj_id: str) -> str:
    """``<account>/index/<kind>/<id>.json`` (the exporter's id index, relative to the export root)."""
    from .archives.paths import safe_component

    return f"{safe_component(account)}/index/{kind}/{safe_component(obj_id, 80)}.json"


class RemoteMismatch(ArchiveError):
    """A remote export does not match its own manifest (damaged or half-replaced by hand)."""


@dataclass
class PublishReport:
    """What one :meth:`ArchiveStore.publish` did.

    Attributes:
        folder_url: The remote export folder.
        archive_url: The remote archive.
        files: Files uploaded and verified (folder files, archive, sidecar, manifest, index).
        bytes: Their total size.
        removed: Stale remote files of an older export that were removed.
    """

    folder_url: str
    archive_url: str
    files: int = 0
    bytes: int = 0
    removed: list[str] = field(default_factory=list)


class ArchiveStore:
    """An export root on an fsspec filesystem, mirroring the local export layout.

    Args:
        root: ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``az://container/prefix`` (or any fsspec URL,
            a local path included).
        storage_options: fsspec options for the filesystem (credentials, ``endpoint_url``, ...). Empty:
            the standard environment of the filesystem (for S3: ``AWS_*`` variables and profiles).
        verify: Read every uploaded file back and compare its size and sha256 with the manifest.

    Raises:
        ArchiveError: the URL's filesystem package is not installed, or the options are invalid.
    """

    def __init__(self, root: str, storage_options: Mapping[str, Any] | None = None, *, verify: bool = True):
        self.url = str(root).rstrip("/")
        self.protocol = self.url.split("://", 1)[0].lower() if "://" in self.url else "file"
        self.verify = verify
        self._secrets = _secret_values(storage_options or {})
        options = _effective_options(self.protocol, dict(storage_options or {}))
        self.endpoint = _endpoint_of(self.protocol, options)
        try:
            import fsspec.core

            self.fs, self.path = fsspec.core.url_to_fs(self.url, **options)
        except ImportError as exc:
            package = _PACKAGES.get(self.protocol, f"the fsspec implementation of {self.protocol}://")
            raise ArchiveError(f"export_root {self.url!r} needs the {package} package: pip install {package} "
                               f"({self._clean(exc)})") from exc
        except (ValueError, TypeError) as exc:
            raise ArchiveError(f"export_root {self.url!r} could not be opened ({self._clean(exc)}); "
                               "check the URL and its storage options") from exc
        self.path = self.path.rstrip("/")

    def __repr__(self) -> str:
        return f"ArchiveStore({self.url!r}, endpoint={self.endpoint!r})"

    # ----------------------------------------------------------------------------------------- names
    def remote(self, rel: str) -> str:
        """The filesystem path of ``rel`` (a relative POSIX path under the root)."""
        return _join(self.path, rel)

    def url_of(self, rel: str) -> str:
        """The full URL of ``rel`` (for metadata and messages)."""
        return _join(self.url, rel)

    # ----------------------------------------------------------------------------------------- reads
    def read_json(self, rel: str) -> dict[str, Any] | None:
        """The JSON object stored at ``rel``, ``None`` if absent or not a JSON object.

        Raises:
            ArchiveError: the store cannot be reached or refuses the credentials (never "absent").
        """
        path = self.remote(rel)
        try:
            self.fs.invalidate_cache(path)
            data = json.loads(self.fs.cat_file(path))
        except FileNotFoundError as exc:
            if "bucket" in str(exc).lower():  # s3fs: "The specified bucket does not exist"
                raise self._error(f"reading {self.url_of(rel)}", exc) from exc
            return None
        except ValueError:
            return None
        except Exception as exc:  # noqa: BLE001 - every backend raises its own errors
            raise self._error(f"reading {self.url_of(rel)}", exc) from exc
        return data if isinstance(data, dict) else None

    def read_manifest(self, rel_folder: str) -> dict[str, Any] | None:
        """The remote manifest of an export folder (``None``: not published, or a publish never finished)."""
        return self.read_json(f"{rel_folder}/{MANIFEST_NAME}")

    def archive_is_current(self, rel_folder: str, manifest: dict[str, Any] | None) -> bool:
        """Remote twin of ``manifest.archive_is_current``: manifest complete and its archive present with
        the recorded size (the upload verified the sha256 before the manifest was written)."""
        if not manifest or not manifest.get("complete") or not manifest.get("archive"):
            return False
        info = manifest["archive"]
        rel = _join(posixpath.dirname(rel_folder), str(info.get("file", "")))
        try:
            return self._size(self.remote(rel)) == info.get("size")
        except FileNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001
            raise self._error(f"reading {self.url_of(rel)}", exc) from exc

    def find_export(self, account: str, kind: str, obj_id: str) -> str | None:
        """The relative folder of the published export of a task/project id, from the remote index."""
        entry = self.read_json(index_relpath(account, kind, obj_id))
        rel = (entry or {}).get("folder")
        if not isinstance(rel, str) or not _is_safe_rel(rel):
            return None
        return rel

    # ---------------------------------------------------------------------------------------- publish
    def publish(self, local_root: Path, folder: Path, archive: Path, *, index: Path | None = None
                ) -> PublishReport:
        """Upload one locally published export under the same relative paths, verified, manifest last.

        Args:
            local_root: The local (staging) export root.
            folder: The published export folder under ``local_root`` (holds ``manifest.json``).
            archive: Its archive (sibling of ``folder``); ``<archive>.sha256`` goes too when present.
            index: The local index entry of the export (under ``local_root``), uploaded after the manifest.

        Raises:
            ArchiveError: the upload or its verification failed; the remote export is left without a
                manifest (not done) and the next run uploads it again.
        """
        local_root, folder, archive = Path(local_root), Path(folder), Path(archive)
        manifest_path = folder / MANIFEST_NAME
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        rel_folder = _relative(local_root, folder)
        rel_archive = _relative(local_root, archive)
        report = PublishReport(self.url_of(rel_folder), self.url_of(rel_archive))
        # (relative path, local path, expected size, expected sha256)
        uploads = [(f"{rel_folder}/{rel}", folder / rel, entry["size"], entry["sha256"])
                   for rel, entry in sorted(manifest.get("files", {}).items())]
        info = manifest.get("archive") or {}
        uploads.append((rel_archive, archive, info.get("size"), info.get("sha256")))
        sidecar = archive.parent / f"{archive.name}.sha256"
        if sidecar.exists():
            uploads.append((f"{rel_archive}.sha256", sidecar, *_digest_local(sidecar)[::-1]))
        action = f"uploading {report.folder_url}"
        try:
            self._remove(self.remote(f"{rel_folder}/{MANIFEST_NAME}"))
            self.fs.put([str(u[1]) for u in uploads], [self.remote(u[0]) for u in uploads])
            if self.verify:
                action = f"verifying {report.folder_url}"
                problems = self._verify_files([(self.remote(u[0]), u[2], u[3]) for u in uploads])
                if problems:
                    raise ArchiveError(f"the upload to {report.folder_url} does not match the manifest "
                                       f"({len(problems)} problems, first: {problems[0]}); it was not marked "
                                       "done, the next run uploads it again", metadata={
                                           "problems": json.dumps(problems[:50])})
            action = f"cleaning {report.folder_url}"
            report.removed = self._remove_unlisted(rel_folder, {u[0] for u in uploads})
            action = f"writing the manifest of {report.folder_url}"
            self._put_last(manifest_path, self.remote(f"{rel_folder}/{MANIFEST_NAME}"))
            if index is not None:
                self._put_last(Path(index), self.remote(_relative(local_root, Path(index))))
        except ArchiveError:
            raise
        except Exception as exc:  # noqa: BLE001 - every backend raises its own errors
            raise self._error(action, exc, "; the remote export has no manifest (not done), the next run "
                                           "uploads it again") from exc
        report.files = len(uploads) + 1 + (index is not None)
        report.bytes = sum(u[1].stat().st_size for u in uploads) + manifest_path.stat().st_size
        return report

    # ----------------------------------------------------------------------------------------- verify
    def verify_export(self, rel_folder: str) -> tuple[list[str], dict[str, Any] | None]:
        """Re-read a remote export: the manifest is complete, every listed file and the archive have the
        recorded size and sha256, no unlisted file sits in the folder.

        Returns:
            ``(problems, manifest)``; no problems means the remote copy is intact.
        """
        manifest = self.read_manifest(rel_folder)
        if not manifest or not manifest.get("complete") or not manifest.get("archive"):
            return [f"{self.url_of(rel_folder)} has no complete manifest"], manifest
        info = manifest["archive"]
        expected = [(self.remote(f"{rel_folder}/{rel}"), e.get("size"), e.get("sha256"))
                    for rel, e in sorted(manifest.get("files", {}).items())]
        rel_archive = _join(posixpath.dirname(rel_folder), str(info.get("file", "")))
        expected.append((self.remote(rel_archive), info.get("size"), info.get("sha256")))
        try:
            problems = self._verify_files(expected)
            listed = {p for p, _, _ in expected} | {self.remote(f"{rel_folder}/{MANIFEST_NAME}")}
            problems += [f"unexpected file {self._rel(p)}" for p in self._find(self.remote(rel_folder))
                         if p not in listed]
        except Exception as exc:  # noqa: BLE001
            raise self._error(f"verifying {self.url_of(rel_folder)}", exc) from exc
        return problems, manifest

    def fetch_folder(self, rel_folder: str, dest: Path) -> dict[str, Any]:
        """Download a published remote export folder into ``dest`` (verified against its manifest).

        Used when an export is current on the store but not in this machine's staging folder (a fresh
        run container), e.g. to pack a project archive from current task exports.

        Raises:
            ArchiveError: no complete remote manifest, a mismatch, or the store failed.
        """
        manifest = self.read_manifest(rel_folder)
        if not manifest or not manifest.get("complete"):
            raise ArchiveError(f"{self.url_of(rel_folder)} has no complete manifest; export it again")
        dest = Path(dest)
        files = manifest.get("files", {})
        for rel in files:
            if not _is_safe_rel(rel):
                raise ArchiveError(f"refusing manifest path {rel!r} of {self.url_of(rel_folder)}")
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for rel in files:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            names = sorted(files)
            self.fs.get([self.remote(f"{rel_folder}/{r}") for r in names], [str(dest / r) for r in names])
        except Exception as exc:  # noqa: BLE001
            raise self._error(f"downloading {self.url_of(rel_folder)}", exc) from exc
        for rel, entry in files.items():
            sha, size = _digest_local(dest / rel)
            if size != entry["size"] or sha != entry["sha256"]:
                raise RemoteMismatch(f"{self.url_of(rel_folder)}/{rel} does not match its manifest; "
                                     "export it again")
        (dest / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False),
                                          encoding="utf-8")
        return manifest

    # ---------------------------------------------------------------------------------------- helpers
    def _size(self, path: str) -> int | None:
        self.fs.invalidate_cache(path)
        return self.fs.info(path).get("size")

    def _find(self, path: str) -> list[str]:
        self.fs.invalidate_cache(path)
        try:
            return [p.rstrip("/") for p in self.fs.find(path)]
        except FileNotFoundError:
            return []

    def _rel(self, path: str) -> str:
        return path[len(self.path) + 1:] if path.startswith(self.path + "/") else path

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(path)

    def _remove_unlisted(self, rel_folder: str, keep: set[str]) -> list[str]:
        keep_paths = {self.remote(k) for k in keep}
        stale = [p for p in self._find(self.remote(rel_folder)) if p not in keep_paths]
        for path in stale:
            self._remove(path)
        return [self._rel(p) for p in stale]

    def _put_last(self, local: Path, remote: str) -> None:
        """Write ``remote`` in one request (object stores) or by rename (a local filesystem)."""
        data = local.read_bytes()
        if "file" in _protocols(self.fs):
            tmp = f"{remote}.partial"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, remote)
        else:
            self.fs.pipe_file(remote, data)
        if self.verify and self.fs.cat_file(remote) != data:
            raise ArchiveError(f"{self.url_of(self._rel(remote))} reads back different bytes than were written")

    def _verify_files(self, expected: list[tuple[str, int | None, str | None]]) -> list[str]:
        """Read every ``(path, size, sha256)`` back from the store; the differences found."""
        problems: list[str] = []
        small = [e for e in expected if (e[1] or 0) <= _SMALL]
        big = [e for e in expected if (e[1] or 0) > _SMALL]
        for batch in _batches(small, _BATCH_BYTES):
            paths = [p for p, _, _ in batch]
            for path in paths:
                self.fs.invalidate_cache(path)
            got = self.fs.cat(paths, on_error="return")
            if len(paths) == 1 and not isinstance(got, dict):
                got = {paths[0]: got}
            for path, size, sha in batch:
                data = got.get(path, FileNotFoundError(path))
                if isinstance(data, FileNotFoundError):
                    problems.append(f"missing file {self._rel(path)}")
                    continue
                if isinstance(data, BaseException):
                    raise data
                problems += _compare(self._rel(path), len(data), hashlib.sha256(data).hexdigest(), size, sha)
        for path, size, sha in big:
            try:
                digest, got_size = self._digest_remote(path)
            except FileNotFoundError:
                problems.append(f"missing file {self._rel(path)}")
                continue
            problems += _compare(self._rel(path), got_size, digest, size, sha)
        return problems

    def _digest_remote(self, path: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        self.fs.invalidate_cache(path)
        with self.fs.open(path, "rb", block_size=_CHUNK, cache_type="none") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def _clean(self, exc: BaseException | str) -> str:
        text = str(exc) if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        for secret in self._secrets | {os.environ.get(k) for k in _SECRET_ENV} - {None, ""}:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text[:1000]

    def _error(self, action: str, exc: BaseException, tail: str = "") -> ArchiveError:
        where = f" at {self.endpoint}" if self.endpoint else ""
        if isinstance(exc, PermissionError) or "AccessDenied" in str(exc) or "InvalidAccessKeyId" in str(exc) \
                or "SignatureDoesNotMatch" in str(exc):
            hint = ("the object store refused the credentials: check AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY (or the storage options) and the bucket's permissions"
                    if self.protocol.startswith("s3") else "the object store refused the credentials")
        elif isinstance(exc, FileNotFoundError):
            hint = "the bucket or path does not exist: create the bucket or fix export_root"
        else:
            hint = "the object store could not be reached or failed: check that it is up and the endpoint"
        return ArchiveError(f"{action} failed{where}: {hint} ({self._clean(exc)}){tail}",
                            metadata={"export_root": self.url, "endpoint": self.endpoint or ""})


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

    # ------------------------------------------------------------------ hooks (usable inside the exporter)
    def rel(self, local: Path) -> str:
        """``local``'s path relative to the staging root (= its path under the store's root)."""
        return _relative(self.staging, Path(local))

    def manifest_of(self, folder: Path) -> dict[str, Any] | None:
        """The remote manifest of a staging export folder."""
        return self.store.read_manifest(self.rel(folder))

    def is_current(self, folder: Path, manifest: dict[str, Any] | None) -> bool:
        """Remote ``archive_is_current`` for a staging export folder."""
        return self.store.archive_is_current(self.rel(folder), manifest)

    def upload(self, folder: Path, archive: Path, index: Path | None = None) -> PublishReport | None:
        """Publish a staging export to the store unless the store already holds exactly it."""
        local = _read_local_manifest(folder)
        remote = self.manifest_of(folder)
        if local and remote == local and self.is_current(folder, remote):
            return None
        index = index if index is not None and Path(index).exists() else None
        return self.store.publish(self.staging, folder, archive, index=index)

    def download(self, folder: Path, archive: Path, manifest: dict[str, Any]) -> None:
        """Bring a current remote export (folder, archive, sidecar) into the staging folder, verified."""
        if _read_local_manifest(folder) == manifest and archive.exists() \
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
            if _digest_local(archive_tmp) != (info.get("sha256"), info.get("size")):
                archive_tmp.unlink(missing_ok=True)
                raise RemoteMismatch(f"{self.store.url_of(rel_archive)} does not match its manifest; "
                                     "export it again")
            os.replace(archive_tmp, archive)
            sidecar = archive.parent / f"{archive.name}.sha256"
            sidecar.write_text(f"{info.get('sha256')}  {archive.name}\n", encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
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

    def export_project(self, exporter, project_key: str, *, force: bool = False, statuses=None):
        """``exporter.export_project`` against the store: current task exports come from the store, new
        ones are uploaded, then the project export (its manifest last)."""
        from concurrent.futures import ThreadPoolExecutor

        self._require_staging(exporter)
        kwargs = {"force": force} if statuses is None else {"force": force, "statuses": statuses}
        if not force:
            project = exporter.resolve_project(project_key)
            rows = exporter.list_project_tasks(project["id"], *(() if statuses is None else (statuses,)))
            with ThreadPoolExecutor(max_workers=max(1, int(getattr(exporter, "max_workers", 4)))) as pool:
                list(pool.map(lambda row: self._bring_current_task(exporter, row), rows))
            self._bring_current_project(exporter, project)
        result = exporter.export_project(project_key, **kwargs)
        with ThreadPoolExecutor(max_workers=max(1, int(getattr(exporter, "max_workers", 4)))) as pool:
            list(pool.map(lambda r: self.upload(r.folder, r.archive, self.staging / index_relpath(
                exporter.account, "tasks", r.task_id)), result.tasks))
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
        from .archives.paths import project_export_dir

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
    meta: dict[str, Any] = {"archive_url": store.url_of(_join(posixpath.dirname(rel), str(info.get("file")))),
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
        from .archives.exporter import task_fingerprint
    except ImportError:  # the exporter split moves it
        from .archives.task_writer import task_fingerprint
    return task_fingerprint(task)


def _read_local_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------------------- module helpers
def _effective_options(protocol: str, options: dict[str, Any]) -> dict[str, Any]:
    if protocol in ("file", "local"):
        return {"auto_mkdir": True, **options}
    if protocol not in ("s3", "s3a"):
        return options
    options = dict(options)
    client_kwargs = dict(options.get("client_kwargs") or {})
    endpoint = options.pop("endpoint_url", None) or client_kwargs.get("endpoint_url") \
        or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    config = dict(_S3_DEFAULT_CONFIG)
    config.update(options.get("config_kwargs") or {})
    options["config_kwargs"] = config
    options.setdefault("skip_instance_cache", True)
    options.setdefault("use_listings_cache", False)
    return options


def _endpoint_of(protocol: str, options: Mapping[str, Any]) -> str | None:
    if protocol in ("s3", "s3a"):
        endpoint = (options.get("client_kwargs") or {}).get("endpoint_url")
        return _strip_userinfo(endpoint) if endpoint else "AWS S3"
    return None


def _strip_userinfo(url: str) -> str:
    return re.sub(r"(?<=://)[^/@]*@", "", str(url))


def _secret_values(options: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for key, value in options.items():
        if isinstance(value, Mapping):
            found |= _secret_values(value)
        elif isinstance(value, str) and _SECRET_OPTION.search(str(key)):
            found.add(value)
    return found


def _protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}" if base else rel


def _relative(root: Path, path: Path) -> str:
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError as exc:
        raise ArchiveError(f"{path} is not under the staging root {root}") from exc
    if not _is_safe_rel(rel):
        raise ArchiveError(f"refusing path {rel!r}: it leaves the export root")
    return rel


def _is_safe_rel(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts) \
        and "\\" not in rel and "\0" not in rel


def _digest_local(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _compare(rel: str, size: int, sha: str, want_size: int | None, want_sha: str | None) -> list[str]:
    if size != want_size or (want_sha is not None and sha != want_sha):
        return [f"{rel}: {size} bytes sha256 {sha[:12]} != manifest {want_size} / {str(want_sha)[:12]}"]
    return []


def _batches(items: Iterable[tuple[str, int | None, str | None]], limit: int):
    batch: list = []
    total = 0
    for item in items:
        if batch and total + (item[1] or 0) > limit:
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += item[1] or 0
    if batch:
        yield batch


__all__ = ["ArchiveStore", "PublishReport", "RemoteExports", "RemoteMismatch", "check_remote_export",
           "default_staging_root", "index_relpath", "is_remote_root"]
