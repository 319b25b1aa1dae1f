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


def clean_stale(parent: Path, name: str) -> None:
    """Remove temporary leftovers of ``name`` from runs that died (older than a few hours)."""
    prefix = f"{PARTIAL}{name}"
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_SECONDS:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
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
