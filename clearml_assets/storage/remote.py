"""An export root on object storage (``s3://bucket/prefix``, ``gs://``, ``az://``): :class:`ArchiveStore`.

Exports are built and published in a local staging folder (same layout as a local export root); then
:meth:`ArchiveStore.publish` copies one published export (its folder, its archive, the archive's
``.sha256`` sidecar and the id index entry) to the store under the *same relative paths*, in an order that
makes a half-done upload never look done:

1. the remote ``manifest.json`` of the folder is deleted (an older export stops looking done);
2. every file the manifest lists, the archive and the sidecar are uploaded;
3. each is read back from the store and its size and sha256 compared with the manifest;
4. remote files the new manifest does not list are removed;
5. ``manifest.json`` is written (the export is now done), then the index entry.

A run cut short anywhere before 5 leaves no manifest, so the incremental skip (which reads the remote
manifest) re-exports and the next upload completes. An upload is skipped only when the store's copy, re-read,
is exactly the local export (:meth:`ArchiveStore.differences`), so a copy damaged on the store is replaced.
Object stores have no rename and no lock: two runs publishing the *same* folder at once are not serialized
(Dagster runs one materialization of a partition at a time).

Credentials: for ``s3://`` the standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for S3-compatible servers, profiles)
or explicit fsspec ``storage_options`` (``key``, ``secret``, ``endpoint_url`` or
``client_kwargs={"endpoint_url": ...}``). ``gs://`` needs ``gcsfs`` and ``az://`` / ``abfs://`` need
``adlfs`` installed; they take their own fsspec options.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArchiveError
from .credentials import PACKAGES, endpoint_of, environment_secrets, root_options, secret_values
from .layout import MANIFEST_NAME, digest_file, index_relpath, is_safe_rel, join, read_local_manifest, relative
from .readback import verify_files


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
        self._secrets = secret_values(storage_options or {})
        options = root_options(self.protocol, dict(storage_options or {}))
        self.endpoint = endpoint_of(self.protocol, options)
        try:
            import fsspec.core

            self.fs, self.path = fsspec.core.url_to_fs(self.url, **options)
        except ImportError as exc:
            package = PACKAGES.get(self.protocol, f"the fsspec implementation of {self.protocol}://")
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
        return join(self.path, rel)

    def url_of(self, rel: str) -> str:
        """The full URL of ``rel`` (for metadata and messages)."""
        return join(self.url, rel)

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
        rel = join(posixpath.dirname(rel_folder), str(info.get("file", "")))
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
        if not isinstance(rel, str) or not is_safe_rel(rel):
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
        rel_folder = relative(local_root, folder)
        rel_archive = relative(local_root, archive)
        report = PublishReport(self.url_of(rel_folder), self.url_of(rel_archive))
        # (relative path, local path, expected size, expected sha256)
        uploads = [(f"{rel_folder}/{rel}", folder / rel, entry["size"], entry["sha256"])
                   for rel, entry in sorted(manifest.get("files", {}).items())]
        info = manifest.get("archive") or {}
        uploads.append((rel_archive, archive, info.get("size"), info.get("sha256")))
        sidecar = archive.parent / f"{archive.name}.sha256"
        if sidecar.exists():
            uploads.append((f"{rel_archive}.sha256", sidecar, *digest_file(sidecar)[::-1]))
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
                self._put_last(Path(index), self.remote(relative(local_root, Path(index))))
        except ArchiveError:
            raise
        except Exception as exc:  # noqa: BLE001 - every backend raises its own errors
            raise self._error(action, exc, "; the remote export has no manifest (not done), the next run "
                                           "uploads it again") from exc
        report.files = len(uploads) + 1 + (index is not None)
        report.bytes = sum(u[1].stat().st_size for u in uploads) + manifest_path.stat().st_size
        return report

    # ----------------------------------------------------------------------------------------- verify
    def verify_export(self, rel_folder: str, *, reread: bool = True, manifest: dict[str, Any] | None = None
                      ) -> tuple[list[str], dict[str, Any] | None]:
        """Re-read a remote export: the manifest is complete, every listed file and the archive have the
        recorded size and sha256, no unlisted file sits in the folder.

        Args:
            rel_folder: The export folder, relative to the root.
            reread: Read the listed files and the archive back (``False``: they were verified moments ago by
                a download; only the manifest and the folder's listing are read).
            manifest: The remote manifest when the caller has just read it.

        Returns:
            ``(problems, manifest)``; no problems means the remote copy is intact.
        """
        manifest = manifest if manifest is not None else self.read_manifest(rel_folder)
        if not manifest or not manifest.get("complete") or not manifest.get("archive"):
            return [f"{self.url_of(rel_folder)} has no complete manifest"], manifest
        info = manifest["archive"]
        expected = [(self.remote(f"{rel_folder}/{rel}"), e.get("size"), e.get("sha256"))
                    for rel, e in sorted(manifest.get("files", {}).items())]
        rel_archive = join(posixpath.dirname(rel_folder), str(info.get("file", "")))
        expected.append((self.remote(rel_archive), info.get("size"), info.get("sha256")))
        try:
            problems = self._verify_files(expected) if reread else []
            listed = {p for p, _, _ in expected} | {self.remote(f"{rel_folder}/{MANIFEST_NAME}")}
            problems += [f"unexpected file {self._rel(p)}" for p in self._find(self.remote(rel_folder))
                         if p not in listed]
        except Exception as exc:  # noqa: BLE001
            raise self._error(f"verifying {self.url_of(rel_folder)}", exc) from exc
        return problems, manifest

    def differences(self, local_root: Path, folder: Path, archive: Path, *, index: Path | None = None,
                    reread: bool = True) -> list[str]:
        """How the store's copy of a locally published export differs from it (``[]``: it holds exactly it).

        The store is re-read, never trusted from its manifest alone: its manifest equals the local one, every
        listed file and the archive have the sizes and sha256 it records (:meth:`verify_export`), no unlisted
        file sits in the folder, and the archive's ``.sha256`` sidecar and the ``index`` entry hold the local
        bytes.

        Args:
            local_root: The local (staging) export root.
            folder: The published export folder under ``local_root``.
            archive: Its archive.
            index: Its local index entry (under ``local_root``), compared too when given.
            reread: See :meth:`verify_export`.

        Raises:
            ArchiveError: the store cannot be reached or refuses the credentials.
        """
        rel_folder = relative(local_root, folder)
        remote = self.read_manifest(rel_folder)
        if remote is None or remote != read_local_manifest(folder):
            return [f"{self.url_of(rel_folder)}/{MANIFEST_NAME} is not the local manifest"]
        problems, _ = self.verify_export(rel_folder, reread=reread, manifest=remote)
        small = [p for p in (archive.parent / f"{archive.name}.sha256", index) if p is not None and p.exists()]
        expected = [(self.remote(relative(local_root, p)), *digest_file(p)[::-1]) for p in small]
        try:
            return problems + self._verify_files(expected)
        except Exception as exc:  # noqa: BLE001
            raise self._error(f"verifying {self.url_of(rel_folder)}", exc) from exc

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
            if not is_safe_rel(rel):
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
            sha, size = digest_file(dest / rel)
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
        return verify_files(self.fs, expected, self._rel)

    def _clean(self, exc: BaseException | str) -> str:
        text = str(exc) if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        for secret in self._secrets | environment_secrets():
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


def _protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


__all__ = ["ArchiveStore", "MANIFEST_NAME", "PublishReport", "RemoteMismatch"]
