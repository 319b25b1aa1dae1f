"""Where a published export lives under an export root, as relative POSIX paths the store mirrors.

A local (staging) export root and its object-store copy hold the same files under the same relative
paths; these helpers name them, refuse paths that would leave the root, and hash local files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ArchiveError

MANIFEST_NAME = "manifest.json"
CHUNK = 4 << 20


def index_relpath(account: str, kind: str, obj_id: str) -> str:
    """``<account>/index/<kind>/<id>.json`` (the exporter's id index, relative to the export root)."""
    from ..archives.paths import safe_component

    return f"{safe_component(account)}/index/{kind}/{safe_component(obj_id, 80)}.json"


def join(base: str, rel: str) -> str:
    """``base/rel`` (``rel`` alone under an empty base)."""
    return f"{base}/{rel}" if base else rel


def relative(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` as a safe POSIX path.

    Raises:
        ArchiveError: ``path`` is not under ``root``, or the relative path would leave it.
    """
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError as exc:
        raise ArchiveError(f"{path} is not under the staging root {root}") from exc
    if not is_safe_rel(rel):
        raise ArchiveError(f"refusing path {rel!r}: it leaves the export root")
    return rel


def is_safe_rel(rel: str) -> bool:
    """Whether ``rel`` is a relative POSIX path that stays under its root (no ``..``, ``\\``, NUL)."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts) \
        and "\\" not in rel and "\0" not in rel


def digest_file(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a local file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_local_manifest(folder: Path) -> dict[str, Any] | None:
    """The ``manifest.json`` of a local export folder (``None``: absent or not a JSON object)."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
