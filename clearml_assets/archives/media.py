"""Plots, debug images, artifacts and models of a task: event streams and fileserver downloads.

Only URLs on the account's own fileserver are fetched (through ``ClearMLClient.download``); any other
URI (another host, ``file://``, ``s3://``...) is recorded in the index with the reason, never fetched.
A file the server no longer has (404) is recorded too; the rest of the export goes on.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from ..client import redact_url_credentials
from ..errors import ClearMLRequestError
from .paths import safe_component

PLOTS_DIR = "plots"
DEBUG_DIR = "debug_images"
ARTIFACTS_DIR = "artifacts"
MODELS_DIR = "models"
EVENTS_BATCH = 2_000


@dataclass
class EventsResult:
    """Events written to a JSON lines file, and the server's count."""

    events: int = 0
    server_total: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def page_task_events(client, task_id: str, event_type: str, batch_size: int = EVENTS_BATCH):
    """Yield ``(events page, server total)`` for every event of ``event_type``, oldest iteration first.

    Uses ``events.get_task_events`` with ``scroll_id`` (the real server counts the total on the first call).
    """
    scroll_id = None
    total = None
    got = 0
    while True:
        request: dict[str, Any] = {"task": task_id, "event_type": event_type, "batch_size": batch_size,
                                   "order": "asc"}
        if scroll_id:
            request["scroll_id"] = scroll_id
        data = client.call("events.get_task_events", **request)
        if total is None and data.get("total") is not None:
            total = int(data["total"])
        events = data.get("events") or []
        scroll_id = data.get("scroll_id")
        if not events:
            return
        got += len(events)
        yield events, total
        if not scroll_id or (total is not None and got >= total):
            return


def export_event_stream(client, task_id: str, event_type: str, dest: Path,
                        on_event: Callable[[dict], dict | None] | None = None) -> EventsResult:
    """Write every ``event_type`` event of the task to ``dest`` (JSON lines), one event per line.

    Args:
        on_event: Called per event; its return value (if any) is merged into the written line.
    """
    result = EventsResult()
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    with open(dest, "w", encoding="utf-8", newline="\n") as out:
        for events, page_total in page_task_events(client, task_id, event_type):
            total = page_total if page_total is not None else total
            lines = []
            for event in events:
                extra = on_event(event) if on_event else None
                line = {**event, **extra} if extra else event
                lines.append(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            out.write("".join(lines))
            result.events += len(events)
    result.server_total = max(total, result.events) if total is None else total
    if result.events < result.server_total:
        result.errors.append({"section": event_type, "error": f"received {result.events} events, server "
                                                              f"counted {result.server_total}"})
    return result


def fileserver_path(url: str, files_host: str | None) -> str | None:
    """The path of ``url`` on the account's fileserver, or ``None`` if ``url`` points anywhere else."""
    if not url or not files_host:
        return None
    try:
        parts, base = urlsplit(url), urlsplit(files_host)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.scheme != base.scheme:
        return None
    if (parts.hostname or "").lower() != (base.hostname or "").lower() or parts.port != base.port:
        return None
    if parts.username or parts.password:
        return None
    path = unquote(parts.path)
    prefix = base.path.rstrip("/")
    if "\0" in path or ".." in path.split("/") or not path.startswith(prefix + "/"):
        return None
    return path


def local_file_name(url: str, fallback: str) -> str:
    """A safe file name for what ``url`` points to (its last path segment)."""
    base = posixpath.basename(unquote(urlsplit(url).path)) if url else ""
    return safe_component(base or fallback)


@dataclass
class Downloads:
    """Fileserver downloads of one task, run on a shared bounded pool; each gets one record."""

    client: Any
    folder: Path
    pool: Executor
    download: Callable[[str, Path], int] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    _futures: list[tuple[dict, Future]] = field(default_factory=list)
    _paths: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, url: str | None, rel_path: str, record: dict[str, Any]) -> dict[str, Any]:
        """Schedule ``url`` into ``folder/rel_path``; the record is updated with the outcome.

        Thread-safe: any thread of the task's export may plan files.
        """
        with self._lock:
            return self._add(url, rel_path, record)

    def _add(self, url: str | None, rel_path: str, record: dict[str, Any]) -> dict[str, Any]:
        record.update({"uri": redact_url_credentials(url), "file": None, "status": "pending"})
        self.records.append(record)
        if not url:
            record["status"] = "no_uri"
            return record
        if fileserver_path(url, getattr(self.client, "files_host", None)) is None:
            record["status"] = "skipped_not_on_fileserver"
            record["reason"] = ("the URI is not on this account's fileserver; it was recorded, not fetched")
            return record
        base, n = rel_path, 1
        while rel_path in self._paths:
            n += 1
            rel_path = f"{base}.{n}"
        self._paths.add(rel_path)
        dest = self.folder / rel_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._futures.append((record, self.pool.submit(self._fetch, url, dest)))
        record["file"] = rel_path
        return record

    def _fetch(self, url: str, dest: Path) -> tuple[int, str | None]:
        if self.download is not None:
            return int(self.download(url, dest)), None
        digest = hashlib.sha256()  # hashed as the bytes arrive: the manifest needs no second read
        return int(self.client.download(url, dest, digest=digest)), digest.hexdigest()

    def known_hashes(self) -> dict[str, dict[str, Any]]:
        """``{relative path: {"size", "sha256"}}`` of the files hashed while downloading."""
        return {r["file"]: {"size": r["bytes"], "sha256": r["sha256"]} for r in self.records
                if r["status"] == "ok" and r.get("sha256")}

    def wait(self) -> list[dict[str, Any]]:
        """Wait for every download; 404/refused ones are recorded, other failures re-raised."""
        first_error: BaseException | None = None
        for record, future in self._futures:
            try:
                record["bytes"], sha256 = future.result()
                if sha256:
                    record["sha256"] = sha256
                record["status"] = "ok"
            except ClearMLRequestError as exc:
                record["status"] = "missing" if "404" in str(exc) else "failed"
                record["error"] = str(exc)
                record["file"] = None
                _remove(self.folder, record)
            except BaseException as exc:  # noqa: BLE001 - re-raised after every future is settled
                record["status"] = "failed"
                record["error"] = str(exc)
                if first_error is None:
                    first_error = exc
        self._futures.clear()
        if first_error is not None:
            raise first_error
        return self.records


def _remove(folder: Path, record: dict) -> None:
    for rel in (record.get("file"),):
        if rel:
            try:
                (folder / rel).unlink()
            except OSError:
                pass


def plan_debug_image(downloads: Downloads, event: dict) -> dict:
    """Schedule a debug image event's ``url``; returns the fields added to its index line."""
    metric = safe_component(str(event.get("metric", "")))
    variant = safe_component(str(event.get("variant", "")))
    iteration = event.get("iter", 0)
    name = local_file_name(event.get("url", ""), "image")
    rel = f"{DEBUG_DIR}/{metric}/{variant}/{safe_component(str(iteration))}_{name}"
    record = downloads.add(event.get("url"), rel, {"kind": "debug_image", "metric": event.get("metric"),
                                                   "variant": event.get("variant"), "iter": iteration})
    return {"local_file": record["file"], "download_status": "see downloads.jsonl"
            if record["status"] == "pending" else record["status"]}


def plan_artifacts(downloads: Downloads, task: dict) -> list[dict[str, Any]]:
    """Schedule every artifact file of the task and write the previews; returns the artifact index."""
    index = []
    artifacts = ((task.get("execution") or {}).get("artifacts")) or []
    for artifact in artifacts:
        key = str(artifact.get("key", ""))
        mode = str(artifact.get("mode", "output"))
        folder = f"{ARTIFACTS_DIR}/{safe_component(mode)}.{safe_component(key)}"
        preview = (artifact.get("type_data") or {}).get("preview")
        entry: dict[str, Any] = {"key": key, "mode": mode, "type": artifact.get("type"),
                                 "hash": artifact.get("hash"), "content_size": artifact.get("content_size"),
                                 "folder": folder}
        if preview:
            path = downloads.folder / folder / "preview.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(preview), encoding="utf-8", errors="backslashreplace")
            entry["preview_file"] = f"{folder}/preview.txt"
        uri = artifact.get("uri")
        rel = f"{folder}/{local_file_name(uri or '', 'artifact')}"
        entry["download"] = downloads.add(uri, rel, {"kind": "artifact", "key": key})
        index.append(entry)
    return index


def collect_models(client, task: dict) -> list[dict[str, Any]]:
    """Input and output model records of the task (``models.get_all`` by id and by task, paged)."""
    refs = []
    models = task.get("models") or {}
    for kind in ("input", "output"):
        for ref in models.get(kind) or []:
            if ref.get("model"):
                refs.append((kind, ref.get("name"), ref["model"]))
    by_id: dict[str, dict] = {}
    ids = sorted({r[2] for r in refs})
    if ids:
        for model in client.iter_pages("models.get_all", "models", id=ids):
            by_id[model["id"]] = model
    for model in client.iter_pages("models.get_all", "models", task=[task["id"]]):
        by_id.setdefault(model["id"], model)
    records = []
    seen = set()
    for kind, name, model_id in refs:
        records.append({"role": kind, "name": name, "id": model_id, "model": by_id.get(model_id),
                        "missing": model_id not in by_id})
        seen.add(model_id)
    for model_id in sorted(set(by_id) - seen):
        records.append({"role": "output", "name": by_id[model_id].get("name"), "id": model_id,
                        "model": by_id[model_id], "missing": False})
    return records


def plan_models(downloads: Downloads, records: list[dict[str, Any]]) -> None:
    """Schedule the weight file of every model record (``model.uri``)."""
    for record in records:
        model = record.get("model") or {}
        uri = model.get("uri")
        folder = f"{MODELS_DIR}/{safe_component(record['role'])}.{safe_component(str(record['name'] or ''))}" \
                 f".{safe_component(record['id'], 40)}"
        rel = f"{folder}/{local_file_name(uri or '', 'weights')}"
        record["download"] = downloads.add(uri, rel, {"kind": "model", "id": record["id"]})
