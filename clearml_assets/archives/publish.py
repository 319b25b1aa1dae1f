"""Publishing an export: a staging folder beside the final place, atomic renames, the id index, locks.

An export is built in ``.partial.<name>.<token>`` next to its final folder, packed into
``.partial.<archive>.<token>``, then renamed into place (archive first, folder second). A failure removes
both temporary paths, so nothing that looks done is left behind. Leftovers of runs that died are removed
after a few hours. Exports of one folder are serialized across threads and processes with ``filelock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from .manifest import read_manifest
from .packing import ARCHIVE_CODECS, verify_archive
from .paths import safe_component

PARTIAL = ".partial."
STALE_SECONDS = 6 * 3600


@dataclass
class Staging:
    """The temporary folder and archive of one export, and where they go."""

    folder: Path
    archive: Path
    tmp: Path
    archive_tmp: Path

    @classmethod
    def create(cls, folder: Path, archive: Path) -> "Staging":
        folder.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(folder.parent, folder.name)
        token = uuid.uuid4().hex[:12]
        staging = cls(folder, archive, folder.parent / f"{PARTIAL}{folder.name}.{token}",
                      folder.parent / f"{PARTIAL}{archive.name}.{token}")
        staging.tmp.mkdir()
        return staging

    def discard(self) -> None:
        """Remove the temporary folder and archive."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.archive_tmp.unlink(missing_ok=True)

    def publish(self) -> None:
        """Rename the archive, then the folder, into place (the old folder is removed afterwards); an archive
        of the same folder in another format (``archive_format`` changed) is removed once the new archive
        has been read back and matches the manifest."""
        os.replace(self.archive_tmp, self.archive)
        trash = None
        if self.folder.exists():
            trash = self.folder.parent / f"{PARTIAL}{self.folder.name}.old.{uuid.uuid4().hex[:8]}"
            os.replace(self.folder, trash)
        os.replace(self.tmp, self.folder)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        self._remove_other_formats()

    def _remove_other_formats(self) -> None:
        others = [self.folder.parent / f"{self.folder.name}.{fmt}" for fmt in ARCHIVE_CODECS]
        others = [p for p in others if p != self.archive and p.exists()]
        if not others:
            return
        manifest = read_manifest(self.folder)
        if manifest is None or verify_archive(self.archive, manifest):
            return  # the new archive is not verified: the old one stays
        for old in others:
            old.unlink(missing_ok=True)
            old.with_name(f"{old.name}.sha256").unlink(missing_ok=True)


@contextlib.contextmanager
def staged(folder: Path, archive: Path) -> Iterator[Staging]:
    """A :class:`Staging` discarded if the block raises (anything, an interrupt included)."""
    staging = Staging.create(folder, archive)
    try:
        yield staging
    except BaseException:
        staging.discard()
        raise


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Serialize exports of one folder across threads and processes (two runs never publish at once)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".lock.{folder.name}")):
        yield


def write_sidecar(archive: Path, sha256: str) -> None:
    """``<archive>.sha256`` in ``sha256sum`` format, written atomically."""
    tmp = archive.parent / f"{PARTIAL}{archive.name}.sha256"
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


def write_index(root: Path, account: str, kind: str, obj_id: str, folder: Path) -> None:
    """Record where the export of ``obj_id`` was published."""
    path = index_path(root, account, kind, obj_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{PARTIAL}{path.name}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({"folder": folder.relative_to(root).as_posix()}), encoding="utf-8")
    os.replace(tmp, path)


CLEAN_INTERVAL_SECONDS = 3600
_partials: dict[str, tuple[float, list[str]]] = {}
_partials_lock = threading.Lock()


def _partial_names(parent: Path) -> list[str]:
    """The temporary entries of ``parent``, listed at most once every ``CLEAN_INTERVAL_SECONDS`` per process: a
    project's task exports share one folder, and listing it for each of 10,000 tasks cost more than the exports."""
    key = str(parent)
    with _partials_lock:
        cached = _partials.get(key)
        if cached is not None and time.monotonic() - cached[0] < CLEAN_INTERVAL_SECONDS:
            return cached[1]
    try:
        names = [e.name for e in os.scandir(parent) if e.name.startswith(PARTIAL)]
    except OSError:
        names = []
    with _partials_lock:
        _partials[key] = (time.monotonic(), names)
    return names


def clean_stale(parent: Path, name: str) -> None:
    """Remove temporary leftovers of ``name`` from runs that died (older than a few hours); leftovers that
    appeared since the folder was last listed wait for the next listing."""
    prefix = f"{PARTIAL}{name}"
    now = time.time()
    for entry_name in [n for n in _partial_names(parent) if n.startswith(prefix)]:
        path = parent / entry_name
        try:
            info = path.lstat()
            if now - info.st_mtime < STALE_SECONDS:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            continue


def link_tree(src: Path, dest: Path) -> None:
    """Hard-link every file under ``src`` into ``dest`` (copy where links are impossible)."""
    for dirpath, _dirnames, filenames in os.walk(src):
        target_dir = dest / Path(dirpath).relative_to(src)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            try:
                os.link(Path(dirpath, name), target_dir / name)
            except OSError:
                shutil.copy2(Path(dirpath, name), target_dir / name)
