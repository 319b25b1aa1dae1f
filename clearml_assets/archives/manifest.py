"""``manifest.json``: every exported file's size and sha256, the server's counts, and what went wrong.

The manifest is written last into a task or project folder. A folder is *done* only when its manifest says
``"complete": true`` and the archive beside it has the size and sha256 the manifest records. With
``CLEARML_ASSETS_ARCHIVE_KEY`` set, every manifest is signed when written (:mod:`.signing`), and one that is
not signed with that key is not current.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..client import redact_url_credentials
from .signing import is_signed_as_required, sign_in_place

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def sha256_file(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of a file, read in 1 MiB chunks."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell()


def list_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the regular files under ``folder`` (sorted; the manifest excluded)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            rel = Path(dirpath, name).relative_to(folder).as_posix()
            if rel != MANIFEST_NAME:
                out.append(rel)
    return sorted(out)


def folder_sizes(folder: Path) -> dict[str, int]:
    """``{relative path: size}`` of every file under ``folder`` (the manifest excluded; nothing is read)."""
    return {rel: (folder / rel).stat().st_size for rel in list_files(folder)}


def hash_folder(folder: Path, known: dict[str, dict] | None = None) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size", "sha256"}}`` for every file under ``folder``.

    Args:
        folder: The export folder.
        known: Entries already hashed while writing (reused when the size still matches).
    """
    known = known or {}
    files = {}
    for rel in list_files(folder):
        path = folder / rel
        entry = known.get(rel)
        if entry is not None and entry.get("size") == path.stat().st_size:
            files[rel] = {"size": entry["size"], "sha256": entry["sha256"]}
            continue
        sha, size = sha256_file(path)
        files[rel] = {"size": size, "sha256": sha}
    return files


def write_manifest(folder: Path, manifest: dict[str, Any], sync: bool = True) -> Path:
    """Write ``manifest.json`` atomically (temporary file, fsync unless ``sync`` is false, rename).

    URL credentials in it (an issue's URI or error) are masked, and it is signed (in place) when
    ``CLEARML_ASSETS_ARCHIVE_KEY`` is set.
    """
    path = folder / MANIFEST_NAME
    tmp = folder / f".{MANIFEST_NAME}.tmp"
    manifest.update({k: redact_url_credentials(v) for k, v in manifest.items() if k != "files"})
    sign_in_place(manifest)
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False,
                  default=str)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or ``None`` if absent or unreadable."""
    try:
        with open(Path(folder) / MANIFEST_NAME, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify_folder(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Differences between ``folder`` and the files its manifest lists (empty list: it matches)."""
    problems = []
    expected = manifest.get("files", {})
    present = set(list_files(folder))
    for rel in sorted(set(expected) - present):
        problems.append(f"missing file {rel}")
    for rel in sorted(present - set(expected)):
        problems.append(f"unexpected file {rel}")
    for rel in sorted(set(expected) & present):
        sha, size = sha256_file(folder / rel)
        if size != expected[rel]["size"] or sha != expected[rel]["sha256"]:
            problems.append(f"{rel}: size/sha256 {size}/{sha[:12]} != manifest "
                            f"{expected[rel]['size']}/{expected[rel]['sha256'][:12]}")
    return problems


def archive_is_current(folder: Path, manifest: dict[str, Any] | None, full: bool = False) -> bool:
    """Whether ``manifest`` is complete (and signed when a key is set) and its recorded archive exists with
    the recorded size.

    Args:
        folder: The export folder (the archive is its sibling).
        manifest: The folder's manifest.
        full: Also recompute the archive's sha256.
    """
    if not manifest or not manifest.get("complete") or not manifest.get("archive") \
            or not is_signed_as_required(manifest):
        return False
    info = manifest["archive"]
    path = Path(folder).parent / info.get("file", "")
    try:
        if path.stat().st_size != info.get("size"):
            return False
    except OSError:
        return False
    return not full or sha256_file(path)[0] == info.get("sha256")
