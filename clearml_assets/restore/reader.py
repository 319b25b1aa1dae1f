"""Read a task (or project) archive made by :mod:`clearml_assets.archives` as events, files and records.

Works with the archive format of today (``console.log``, scalars without timestamps) and picks up the
additions when present: ``log.jsonl`` (every log event with its level and timestamp), a ``timestamp`` on
scalar lines, ``plot_data`` (compressed plots, decoded here within :func:`.bounds.max_plot_bytes`), model
events under ``models/``. An archive is used only once its files match its manifest (sizes and sha256), its
top manifest is signed when ``CLEARML_ASSETS_ARCHIVE_KEY`` is set, and its compressed plots inflate within
their limit, so a damaged, tampered or hostile one restores nothing. :meth:`TaskArchive.check_provenance`
compares what an archive claims with the records of a copy already in the target.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, TextIO
from urllib.parse import urlsplit

from ..archives.bounds import MAX_PLOT_ENV, InflateError, inflate_plot_data, max_record_chars
from ..archives.manifest import MANIFEST_NAME, read_manifest, verify_folder
from ..archives.media import model_folder
from ..archives.packing import extract_archive
from ..archives.signing import require_signature
from ..errors import ArchiveError

# Fields the server adds to a stored event (or the exporter to an index line); never sent back.
SERVER_EVENT_FIELDS = frozenset({"@timestamp", "model_event", "plot_len", "company", "_id", "id", "task",
                                 "local_file", "download_status", "allow_locked", "plot_data",
                                 "local_image_files"})


@dataclass
class TaskArchive:
    """One verified task export folder.

    Attributes:
        folder: The task export folder (``task.json``, ``manifest.json``, ...).
        manifest: Its manifest.
        info: Its ``task.json`` (``task``, ``account``, ``project``, ``web_url``...).
    """

    folder: Path
    manifest: dict[str, Any]
    info: dict[str, Any]

    @property
    def task(self) -> dict[str, Any]:
        return self.info["task"]

    @property
    def source_task_id(self) -> str:
        return str(self.task["id"])

    @property
    def source_account(self) -> str:
        return str(self.manifest.get("account") or self.info.get("account") or "")

    @property
    def source_server(self) -> str:
        """The web host of the source server (from the recorded web link), or ``""``."""
        url = self.info.get("web_url") or self.manifest.get("web_url") or ""
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""

    @property
    def project_name(self) -> str:
        return str((self.info.get("project") or {}).get("name") or self.manifest.get("project_name") or "")

    def base_timestamp(self) -> int:
        """Milliseconds of the task's start (or creation): the time given to events archived without one."""
        for key in ("started", "created", "last_update"):
            when = _parse_time(self.task.get(key))
            if when is not None:
                return when
        return 0

    # -- events ------------------------------------------------------------------------------------
    def scalar_events(self) -> Iterator[dict[str, Any]]:
        """Every scalar point as a ``training_stats_scalar`` event (non-finite values are skipped:
        the server refuses them, so an archive from a server cannot hold them)."""
        path = self.folder / "scalars" / "scalars.jsonl"
        if not path.exists():
            return
        base = self.base_timestamp()
        for row in _jsonl(path):
            value = row.get("value")
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            yield {"type": "training_stats_scalar", "metric": row.get("metric"), "variant": row.get("variant"),
                   "iter": row.get("iter"), "value": value, "timestamp": row.get("timestamp", base)}

    def log_events(self) -> Iterator[dict[str, Any]]:
        """Every log event: from ``log.jsonl`` (level and timestamp kept) or else from ``console.log``
        (one event per line, in order, timestamps counted up from the task's start)."""
        structured = self.folder / "log.jsonl"
        if structured.exists():
            for event in _jsonl(structured):
                yield {**_clean(event), "type": "log"}
            return
        text = self.folder / "console.log"
        if not text.exists():
            return
        base = self.base_timestamp()
        with open(text, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            for i, line in enumerate(_lines(handle, text)):
                yield {"type": "log", "timestamp": base + i, "level": "info",
                       "msg": line[:-1] if line.endswith("\n") else line}

    def plot_events(self) -> Iterator[tuple[dict[str, Any], list[tuple[str, Path]]]]:
        """``(plot event, [(image URL it references, archived image)])`` for every plot event, its
        ``plot_str`` decoded when it was stored compressed."""
        images = {r.get("file"): r.get("uri") for r in _jsonl(self.folder / "plots" / "images.jsonl") if r.get("file")}
        for event in _jsonl(self.folder / "plots" / "plots.jsonl"):
            if event.get("plot_str") is None and event.get("plot_data"):
                event["plot_str"] = _inflated(event, self.folder)
            files = [(images[rel], path) for rel in event.get("local_image_files") or []
                     if rel in images and images[rel] and (path := self._file(rel)) is not None]
            yield _clean(event), files

    def debug_image_events(self) -> Iterator[tuple[dict[str, Any], Path | None]]:
        """``(event, archived file or None)`` for every debug image event."""
        for line in _jsonl(self.folder / "debug_images" / "index.jsonl"):
            yield _clean(line), self._file(line.get("local_file"))

    def model_events(self, record: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Events archived for a model (``<model folder>/events.jsonl`` when the archive has them)."""
        folder = self.model_folder(record)
        if folder is not None:
            for event in _jsonl(folder / "events.jsonl"):
                yield _clean(event)

    # -- records -----------------------------------------------------------------------------------
    def artifacts(self) -> list[tuple[dict[str, Any], Path | None]]:
        """``(artifact record of the task, archived file or None)`` for every artifact."""
        index = {(a.get("key"), a.get("mode")): a for a in _json(self.folder / "artifacts" / "index.json") or []}
        out = []
        for artifact in (self.task.get("execution") or {}).get("artifacts") or []:
            entry = index.get((artifact.get("key"), artifact.get("mode", "output"))) or {}
            out.append((artifact, self._file((entry.get("download") or {}).get("file"))))
        return out

    def models(self) -> list[tuple[dict[str, Any], Path | None]]:
        """``(model record: role, name, id, model, archived weights or None)`` for every model."""
        out = []
        for record in _json(self.folder / "models" / "models.json") or []:
            out.append((record, self._file((record.get("download") or {}).get("file"))))
        return out

    def model_folder(self, record: dict[str, Any]) -> Path | None:
        """``models/<role>.<name>.<id>`` of a model record (its weights and events), if archived."""
        folder = self.folder / model_folder({"role": str(record.get("role")), "name": record.get("name"),
                                             "id": str(record.get("id"))})
        return folder if folder.is_dir() else None

    def check_provenance(self, copy: dict[str, Any] | None) -> None:
        """Refuse this archive when ``copy`` (a task of the target tagged as restored from the same source id)
        records another source account or server: the archive is forged or foreign, and must neither
        publish nor resume that copy. Records the copy lacks are not compared.

        Raises:
            ArchiveError: A recorded source differs from the archive's claim.
        """
        if copy is None:
            return
        runtime = copy.get("runtime") or {}
        claimed = {"restore_source_task": self.source_task_id, "restore_source_account": self.source_account,
                   "restore_source_server": self.source_server}
        wrong = {k: str(runtime[k]) for k, v in claimed.items() if runtime.get(k) not in (None, "") and
                 str(runtime[k]) != v}
        if wrong:
            raise ArchiveError(
                f"the archive of task {self.source_task_id} claims account {self.source_account!r} on "
                f"{self.source_server or '?'!r}, but task {copy.get('id')} in the target, the copy of that task id, "
                f"records {', '.join(f'{k}={v!r}' for k, v in sorted(wrong.items()))}: refusing a forged or "
                "foreign archive; nothing was changed")

    def _file(self, rel: str | None) -> Path | None:
        if not rel:
            return None
        path = (self.folder / rel).resolve()
        if self.folder.resolve() not in path.parents or not path.is_file():
            return None
        return path


def _inflated(event: dict[str, Any], folder: Path) -> str:
    try:
        return inflate_plot_data(event["plot_data"])
    except InflateError as exc:
        raise ArchiveError(f"plot {str(event.get('metric'))[:100]!r}/{str(event.get('variant'))[:100]!r} iteration "
                           f"{event.get('iter')} in {folder.name}/plots/plots.jsonl cannot be restored: {exc}; "
                           "nothing was restored") from None


_RECORD_FILES = ("scalars/scalars.jsonl", "log.jsonl", "console.log", "plots/plots.jsonl", "debug_images/index.jsonl")


def _check_records(folder: Path) -> None:
    """Before any write: every line of the event files within :func:`_lines`' bound, and every plot kept
    compressed inflating within its limit."""
    paths = [folder / rel for rel in _RECORD_FILES] + sorted((folder / "models").glob("*/events.jsonl"))
    for path in (p for p in paths if p.is_file()):
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for number, line in enumerate(_lines(handle, path), 1):
                if path.name == "plots.jsonl" and '"plot_data"' in line:
                    event = _parsed(line, path, number)
                    if event.get("plot_str") is None and event.get("plot_data"):
                        _inflated(event, folder)


def _parsed(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ArchiveError(f"{path.parent.name}/{path.name} line {number} is not JSON ({exc}); nothing was "
                           "restored") from None
    if not isinstance(value, dict):
        raise ArchiveError(f"{path.parent.name}/{path.name} line {number} is not a JSON object; nothing was "
                           "restored")
    return value


def _clean(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in SERVER_EVENT_FIELDS}


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(_lines(handle, path), 1):
            if line.strip():
                yield _parsed(line, path, number)


def _lines(handle: TextIO, path: Path) -> Iterator[str]:
    """The lines of ``handle``, each read within :func:`.bounds.max_record_chars` (one record in memory)."""
    limit = max_record_chars()
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise ArchiveError(f"{path.parent.name}/{path.name} line {number} is longer than {limit} characters "
                               f"(4 times {MAX_PLOT_ENV}); nothing was restored")
        yield line


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _parse_time(value: Any) -> int | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def load_task_folder(folder: Path, signed: bool = True) -> TaskArchive:
    """A verified task export folder.

    Args:
        folder: The task export folder.
        signed: Require its manifest's signature when a key is set (not for the task folders of a project
            export, whose own signed manifest vouches for their files).

    Raises:
        ArchiveError: No complete manifest, an unsigned or tampered one while a key is set, a file that
            differs from it, or a compressed plot over its limit.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest or not manifest.get("complete") or manifest.get("kind") != "task":
        raise ArchiveError(f"{folder} is not a complete task export (no complete task manifest.json); "
                           "restore an archive made by clearml-assets")
    if manifest.get("status") == "incomplete":
        first = next((i for i in manifest.get("issues") or [] if "error" in i), {})
        raise ArchiveError(f"task export {folder} is marked incomplete (something the server held is missing"
                           f"{': ' + str(first.get('error'))[:300] if first else ''}); nothing was restored. "
                           "Export the task again and restore the new archive")
    if signed:
        require_signature(manifest, f"task export {folder.name!r}")
    problems = verify_folder(folder, manifest)
    if problems:
        raise ArchiveError(f"task export {folder} does not match its manifest ({len(problems)} problem(s), "
                           f"first: {problems[0]}); nothing was restored, export it again")
    info = _json(folder / "task.json")
    if not isinstance(info, dict) or not isinstance(info.get("task"), dict) or not info["task"].get("id"):
        raise ArchiveError(f"{folder}/task.json is missing or has no task; nothing was restored")
    _check_records(folder)
    return TaskArchive(folder, manifest, info)


@contextlib.contextmanager
def open_archive(path: Path | str, workdir: Path | None = None) -> Iterator[list[TaskArchive]]:
    """The verified task exports in ``path``: a task or project archive file (zip, tar.gz, tar.xz, tar) or export
    folder. Archive files (and the task archives a project holds) are unpacked into a temporary folder removed
    afterwards.

    Raises:
        ArchiveError: The path does not exist, is not an export, or fails verification.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ArchiveError(f"archive {str(path)!r} does not exist; give a task or project archive "
                           "(.zip/.tar.gz/.tar.xz/.tar) or export folder made by clearml-assets")
    tmp = Path(tempfile.mkdtemp(prefix="clearml-restore-", dir=workdir))
    try:
        if path.is_dir():
            yield list_task_exports(path, tmp)
            return
        top = _export_folder(path, tmp)
        if top is None:
            raise ArchiveError(f"archive {path.name!r} holds no export folder with a manifest.json; "
                               "restore an archive made by clearml-assets")
        try:
            archives = list_task_exports(top, tmp)
        except ArchiveError as exc:  # name the file the user gave, not the temporary folder
            raise ArchiveError(f"archive {path.name!r}: {str(exc).replace(str(tmp) + os.sep, '')}") from None
        yield archives
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def list_task_exports(root: Path, workdir: Path) -> list[TaskArchive]:
    """The task exports of a task folder, or of a project folder (``tasks/*``: a task archive file each, or, in
    project exports made before that layout, a task folder each), verified.

    Args:
        root: The export folder.
        workdir: Where the task archives of a project are unpacked (the caller removes it).
    """
    manifest = read_manifest(root)
    if manifest and manifest.get("kind") == "project":
        require_signature(manifest, f"project export {root.name!r}")
        problems = verify_folder(root, manifest)
        if problems:
            raise ArchiveError(f"project export {root} does not match its manifest (first: {problems[0]}); "
                               "nothing was restored")
        tasks = root / "tasks"
        # the project's signed manifest vouches for every task archive (or file) it lists, and each task
        # archive for the task manifest it holds
        return [load_task_folder(p if p.is_dir() else _unpacked(p, workdir), signed=False)
                for p in sorted(tasks.iterdir())] if tasks.is_dir() else []
    return [load_task_folder(root)]


def _unpacked(archive: Path, workdir: Path) -> Path:
    """The task folder a project's task archive holds, unpacked (bounded, as any archive) under ``workdir``."""
    top = _export_folder(archive, Path(tempfile.mkdtemp(prefix=".task-", dir=workdir)))
    if top is None:
        raise ArchiveError(f"task archive {archive.name!r} of the project holds no task folder with a "
                           "manifest.json; nothing was restored")
    return top


def _export_folder(archive: Path, target: Path) -> Path | None:
    """``archive`` unpacked (bounded) into ``target``: the one folder holding a manifest.json, or None."""
    extract_archive(archive, target)
    tops = [p for p in target.iterdir() if (p / MANIFEST_NAME).exists()]
    return tops[0] if len(tops) == 1 else None
