"""Find a dataset version by name and read what it holds: ``state.json`` (every file, the chunk holding it, its
size and SHA-256) and the chunks' URLs, through the project's client (deadlines, credentials to their hosts)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datasets.versions import FINALIZED_STATUSES, parse_semver
from ..types import Task
from .errors import DataViewError
from .store import SAFE_NAME, Chunk, FetchError, FileStore, StoredFile, download_verified, expected_sha256, \
    safe_relative

_FIELDS = ["id", "name", "status", "system_tags", "runtime", "last_update", "project", "execution.artifacts"]
_HIDDEN_TAIL = re.compile(r"/\.datasets/[^/]*$")
MAX_STATE_BYTES = 1 << 30


@dataclass(frozen=True)
class VersionRef:
    """The dataset version a query reads."""

    id: str
    name: str
    version: str
    project_id: str

    def __str__(self) -> str:
        return f"dataset {self.name!r} version {self.version or '?'} ({self.id})"


@dataclass
class VersionContents:
    """What one version holds: its files by relative path and the chunks (of it and its parents) holding them."""

    ref: VersionRef
    files: dict[str, StoredFile] = field(default_factory=dict)
    chunks: dict[tuple[str, str], Chunk] = field(default_factory=dict)


def _artifacts(task: Task) -> dict[str, dict[str, Any]]:
    rows = (task.raw.get("execution") or {}).get("artifacts") or []
    return {row["key"]: row for row in rows if isinstance(row, dict) and isinstance(row.get("key"), str)}


def _ref(task: Task) -> VersionRef:
    return VersionRef(task.id, task.name, str(task.runtime.get("version") or ""), task.project)


def _newest(tasks: list[Task]) -> Task:
    return max(tasks, key=lambda t: (parse_semver(str(t.runtime.get("version") or "")) or (-1, -1, -1),
                                     t.last_update))


def find_version(client, *, dataset_name: str | None, version_name: str | None, dataset_project: str | None,
                 dataset_id: str | None) -> tuple[VersionRef, Task]:
    """The finalized version asked for (the newest when no ``version_name``).

    Raises:
        DataViewError: None matches (naming the versions there are), or versions of several projects do.
    """
    if dataset_id:
        found = [t for t in client.tasks.get_many([dataset_id], only_fields=_FIELDS) if "dataset" in t.system_tags]
        if not found:
            raise DataViewError(f"No ClearML dataset version with id {dataset_id!r} in account '{client.account}'.")
        if found[0].status not in FINALIZED_STATUSES:
            raise DataViewError(f"{_ref(found[0])} is {found[0].status!r}, not finalized: its files may be "
                                "incomplete. Finalize it, or query a finalized version.")
        return _ref(found[0]), found[0]
    if not dataset_name:
        raise DataViewError("add_query needs dataset_name (or dataset_id).")
    rows = [t for t in client.tasks.iter(
        only_fields=_FIELDS, name=f"^{re.escape(dataset_name)}$", type=["data_processing"],
        system_tags=["__$all", "dataset", "__$not", "archived"], status=list(FINALIZED_STATUSES),
        search_hidden=True) if t.name == dataset_name]
    if dataset_project:
        rows = [t for t in rows if _project_name(client, t.project) == dataset_project]
    matching = [t for t in rows if version_name is None or str(t.runtime.get("version") or "") == str(version_name)]
    if not matching:
        raise DataViewError(_not_found(client, dataset_name, version_name, dataset_project, rows))
    projects = {t.project for t in matching}
    if len(projects) > 1:
        names = ", ".join(sorted(_project_name(client, p) for p in projects))
        raise DataViewError(f"Dataset {dataset_name!r} exists in several projects ({names}); pass "
                            "add_query(..., dataset_project=<one of them>).")
    chosen = _newest(matching)
    return _ref(chosen), chosen


def _project_name(client, project_id: str) -> str:
    """The dataset project a version's hidden project (``<project>/.datasets/<name>``) belongs to."""
    try:
        return _HIDDEN_TAIL.sub("", client.projects.get(project_id).name)
    except Exception:  # noqa: BLE001 - a project that cannot be read is named by its id
        return project_id


def _not_found(client, name: str, version: str | None, project: str | None, rows: list[Task]) -> str:
    where = f" in project {project!r}" if project else ""
    if not rows:
        return (f"No finalized ClearML dataset named {name!r}{where} in account '{client.account}'. Check the "
                "name (it is case-sensitive) and that a version was finalized.")
    have = ", ".join(sorted({str(t.runtime.get("version") or "?") for t in rows}))
    return f"Dataset {name!r}{where} has no finalized version {version!r}; its versions: {have}."


def read_contents(client, store: FileStore, ref: VersionRef, task: Task) -> VersionContents:
    """The files and chunks of a finalized version (``state.json`` fetched once, kept in the cache).

    Raises:
        DataViewError: The version has no readable state, or lists an unsafe path or chunk name.
    """
    state_row = _artifacts(task).get("state")
    if not state_row or not state_row.get("uri"):
        raise DataViewError(f"{ref} has no 'state' artifact: it is not a dataset version the ClearML SDK made.")
    path = store.root / ref.id / "state.json"
    if not path.is_file():
        size = state_row.get("content_size")
        if isinstance(size, int) and size > MAX_STATE_BYTES:
            raise DataViewError(f"{ref}: its state.json is {size} bytes, more than the {MAX_STATE_BYTES} read.")
        try:
            download_verified(client, state_row["uri"], path, size=size if isinstance(size, int) else None,
                              sha256=expected_sha256(state_row.get("hash")), what=f"state.json of {ref}")
        except FetchError as exc:
            raise DataViewError(f"Cannot read {ref}: {exc}") from None
    contents = VersionContents(ref, files=_files(ref, _load_state(path, ref)))
    contents.chunks = _chunks(client, ref, contents.files.values(), task)
    return contents


def _load_state(path: Path, ref: VersionRef) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        path.unlink(missing_ok=True)
        raise DataViewError(f"{ref}: its state.json is not readable JSON ({exc}).") from None
    if not isinstance(state, dict):
        raise DataViewError(f"{ref}: its state.json is not an object.")
    return state


def _files(ref: VersionRef, state: dict) -> dict[str, StoredFile]:
    files: dict[str, StoredFile] = {}
    rows = [(row, "") for row in state.get("dataset_file_entries") or []]
    rows += [(row, row.get("link") or "") for row in state.get("dataset_link_entries") or [] if isinstance(row, dict)]
    for row, link in rows:
        rel, owner = row.get("relative_path"), str(row.get("parent_dataset_id") or ref.id)
        artifact = str(row.get("artifact_name") or ("" if link else "data"))
        if safe_relative(rel) is None or not SAFE_NAME.match(owner) or not (link or SAFE_NAME.match(artifact)):
            raise DataViewError(f"{ref}: state.json lists an unsafe entry ({str(rel)[:200]!r} in "
                                f"{owner[:80]!r}/{artifact[:80]!r}); nothing of it is read.")
        size = row.get("size")
        files[rel] = StoredFile(rel, size if isinstance(size, int) else None, expected_sha256(row.get("hash")),
                                owner, artifact, link)
    return files


def _chunks(client, ref: VersionRef, files, task: Task) -> dict[tuple[str, str], Chunk]:
    owners = {f.dataset_id for f in files if not f.link}
    tasks = {task.id: task}
    others = sorted(owners - {task.id})
    if others:
        tasks.update({t.id: t for t in client.tasks.get_many(others, only_fields=["id", "execution.artifacts"])})
    chunks = {}
    for owner in owners:
        if owner not in tasks:
            raise DataViewError(f"{ref}: its parent version {owner}, which holds some of its files, is gone "
                                "from the server.")
        for key, row in _artifacts(tasks[owner]).items():
            size = row.get("content_size")
            if row.get("uri"):
                chunks[(owner, key)] = Chunk(owner, key, row["uri"], size if isinstance(size, int) else None,
                                             expected_sha256(row.get("hash")))
    return chunks
