"""Safe, reversible file names for ClearML names, and the export folder layout.

ClearML project, task, artifact and file names are user input: they may hold ``../``, separators, NUL,
control characters, hundreds of characters or any unicode. :func:`safe_component` maps every name to one
path component that stays inside its parent folder; the mapping is injective (distinct names never
collide) and reversible with :func:`original_name` unless the name was too long (then a hash suffix
keeps it unique and the original is kept in ``task.json``).

The names the archive writes itself (``index.jsonl``, ``preview.txt``, ``events.jsonl``, ...:
:data:`RESERVED_NAMES`) are escaped too, so no ClearML name can land on one of them; project folders never
hold a raw ``.`` (so a subproject can never be named like a task folder or an archive file beside it), and
a project nested deeper than :data:`PROJECT_PATH_MAX_BYTES` of folders continues in one hashed folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..accounts import default_export_root  # noqa: F401 - the one reader of the default export root
from ..errors import ArchiveError

MAX_COMPONENT_BYTES = 120
_SAFE_PUNCT = frozenset(" _-.,+=@()[]{}#!$&'")
_HASH_MARK = "~"
_EMPTY = "%"
#: Deepest project folder chain (bytes of the joined project folders); deeper projects end in one folder
#: ``%nested~<hash>`` (no ClearML name maps to ``%n...``) so that a path stays far below ``PATH_MAX``.
PROJECT_PATH_MAX_BYTES = 1024
#: The longest export folder path accepted (its files add at most a few hundred bytes under Linux's 4096).
EXPORT_PATH_MAX_BYTES = 3072
_NESTED_MARK = "%nested~"
#: Names the archive itself writes inside a task or project folder (files, folders): a ClearML name equal
#: to one of them (in any letter case) has its first letter escaped, like a Windows device name.
RESERVED_NAMES = frozenset({
    "task.json", "manifest.json", "console.txt", "console.log", "log.jsonl", "metrics.json", "scalars",
    "scalars.parquet", "scalars.jsonl", "plots", "plots.jsonl", "images", "images.jsonl", "debug_images",
    "index.jsonl", "downloads.jsonl", "artifacts", "index.json", "preview.txt", "models", "models.json",
    "events.jsonl", "project.json", "metrics.csv", "tasks"})
_RESERVED_FOLDED = frozenset(n.casefold() for n in RESERVED_NAMES)
# Device names Windows refuses as a file or folder name, with or without an extension.
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                               *(f"LPT{i}" for i in range(10))})


def _char_is_safe(ch: str) -> bool:
    if ch in _SAFE_PUNCT:
        return True
    return ch.isalnum() and ch.isprintable()


def _encode(name: str, escape: str = "") -> str:
    out = []
    for index, ch in enumerate(name):
        # a leading dot would make ".", ".." or a hidden file; a trailing space/dot is stripped by some systems
        edge_unsafe = (index == 0 and ch == ".") or (index == len(name) - 1 and ch in " .")
        if _char_is_safe(ch) and not edge_unsafe and ch not in escape:
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
    return "".join(out)


def safe_component(name: str, max_bytes: int = MAX_COMPONENT_BYTES, escape: str = "") -> str:
    """One safe path component for ``name`` (never ``.``/``..``, never a separator, bounded length).

    Unsafe characters become ``%XX`` (UTF-8 bytes), and so does the first letter of a Windows device
    name (``CON``, ``nul.txt``, ``LPT1``) so that an archive unpacks on Windows too, and of a name the archive
    writes itself (:data:`RESERVED_NAMES`, any letter case). Names whose encoding exceeds ``max_bytes`` are
    cut and end with ``~`` plus 16 hex digits of the name's sha256.

    Args:
        name: Any string (a ClearML name).
        max_bytes: Maximum UTF-8 length of the result.
        escape: Characters escaped although they are safe (``.`` in project folders).
    """
    name = str(name)
    if not name:
        return _EMPTY
    encoded = _encode(name, escape)
    if encoded.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED or encoded.casefold() in _RESERVED_FOLDED:
        encoded = f"%{ord(encoded[0]):02X}{encoded[1:]}"  # "CON" -> "%43ON", still reversible
    if len(encoded.encode("utf-8")) <= max_bytes:
        return encoded
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    budget = max_bytes - len(digest) - 1
    cut, used = [], 0
    i = 0
    while i < len(encoded):
        token = encoded[i:i + 3] if encoded[i] == "%" else encoded[i]
        size = len(token.encode("utf-8"))
        if used + size > budget:
            break
        cut.append(token)
        used += size
        i += len(token)
    return "".join(cut) + _HASH_MARK + digest


def original_name(component: str) -> str | None:
    """The name :func:`safe_component` encoded, or ``None`` if it was shortened (hash suffix)."""
    if component == _EMPTY:
        return ""
    if _HASH_MARK in component:
        return None
    raw = bytearray()
    i = 0
    while i < len(component):
        if component[i] == "%":
            raw += bytes.fromhex(component[i + 1:i + 3])
            i += 3
        else:
            raw += component[i].encode("utf-8")
            i += 1
    return raw.decode("utf-8", "surrogatepass")


def safe_join(root: Path, *components: str) -> Path:
    """``root`` joined with already safe components; raises if the result would leave ``root``."""
    root = Path(root).resolve()
    path = root.joinpath(*components)
    resolved = Path(os.path.normpath(path))
    if resolved != root and root not in resolved.parents:
        raise ArchiveError(f"refusing path {str(path)!r}: it is outside the export root {str(root)!r}")
    for part in components:
        if part in ("", ".", "..") or "/" in part or "\0" in part or os.sep in part:
            raise ArchiveError(f"refusing unsafe path component {part!r} under {str(root)!r}")
    return resolved


def task_dir_name(task_name: str, task_id: str) -> str:
    """``<task name>.<task id>`` with the name made safe (the id is checked, not encoded)."""
    return f"{safe_component(task_name, MAX_COMPONENT_BYTES - 40)}.{safe_component(task_id, 40)}"


def project_components(project_name: str) -> list[str]:
    """A project's full name (``a/b/c``) as one safe folder per level, dots escaped (a task folder
    ``<name>.<id>`` and its archive always hold a dot, so no subproject folder can take their names).

    Levels past :data:`PROJECT_PATH_MAX_BYTES` become one folder ``%nested~<16 hex of the full name's
    sha256>``: every project keeps its own folder, and the path stays bounded however deep ClearML nests.
    """
    parts = [safe_component(part, escape=".") for part in str(project_name).split("/")]
    if sum(len(p.encode()) + 1 for p in parts) <= PROJECT_PATH_MAX_BYTES:
        return parts
    digest = hashlib.sha256(str(project_name).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    budget = PROJECT_PATH_MAX_BYTES - len(_NESTED_MARK) - len(digest) - 1
    kept: list[str] = []
    for part in parts:
        budget -= len(part.encode()) + 1
        if budget < 0:
            break
        kept.append(part)
    return [*kept, f"{_NESTED_MARK}{digest}"]


def _bounded(path: Path, what: str) -> Path:
    if len(str(path).encode("utf-8", "surrogateescape")) > EXPORT_PATH_MAX_BYTES:
        raise ArchiveError(f"the {what} folder would be {len(str(path).encode('utf-8', 'surrogateescape'))} "
                           f"bytes long, more than the {EXPORT_PATH_MAX_BYTES} this project allows under the "
                           f"system's path limit: choose a shorter export root than {str(path)[:80]!r}...")
    return path


def task_export_dir(root: Path, account: str, project_name: str, task_name: str, task_id: str) -> Path:
    """``<root>/<account>/tasks/<project>/<subproject>.../<task name>.<task id>``."""
    return _bounded(safe_join(Path(root), safe_component(account), "tasks", *project_components(project_name),
                              task_dir_name(task_name, task_id)), "task export")


# The project's own export sits inside its folder under a name no ClearML name maps to ("%" is always
# escaped as %25), so a subproject's folder beside it is never replaced when the project is re-published.
PROJECT_LEAF = "%project"


def project_export_dir(root: Path, account: str, project_name: str) -> Path:
    """``<root>/<account>/projects/<project>/<subproject>.../%project``."""
    return _bounded(safe_join(Path(root), safe_component(account), "projects",
                              *project_components(project_name), PROJECT_LEAF), "project export")
