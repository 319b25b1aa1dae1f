"""Plots, debug images, artifacts and models of a task: event streams and fileserver downloads.

Files on the account's fileserver (or an alias of it) are fetched with ``ClearMLClient.files.download``,
``s3://``/``gs://``/``azure://`` objects with fsspec and the account's storage options
(:mod:`clearml_assets.storage`); anything else (``file://``, a public web URL) is recorded as an
external reference with its reason. A file the server no longer has (404) is recorded too; the rest of
the export goes on.
"""

from __future__ import annotations

import hashlib
import posixpath
import shutil
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from .. import storage
from ..client import redact_url_credentials
from ..errors import ClearMLRequestError
from .bounds import InflateError
from .events import PagingReport, count_issue, decode_plot, iter_task_events, plot_image_urls
from .paths import safe_component
from .records import record_line

PLOTS_DIR = "plots"
DEBUG_DIR = "debug_images"
ARTIFACTS_DIR = "artifacts"
MODELS_DIR = "models"
MODEL_EVENT_TYPES = ("training_stats_scalar", "plot", "training_debug_image")


@dataclass
class EventsResult:
    """Events written to a JSON lines file, and the server's count."""

    events: int = 0
    server_total: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def export_event_stream(client, task_id: str, event_type: str | None, dest: Path,
                        on_event: Callable[[dict], dict | None] | None = None, *,
                        model_events: bool = False) -> EventsResult:
    """Write every ``event_type`` event of the task (or model) to ``dest`` (JSON lines, one per line).

    Compressed plots are written decoded (``plot_str``) unless they are corrupt or inflate past
    :func:`.bounds.max_plot_bytes`: those are kept as the server stored them (``plot_data``), with a warning.
    Each line is written as soon as it is made (one plot in memory at a time). Duplicates from a restarted
    scroll are dropped.

    Args:
        on_event: Called per event; its return value (if any) is merged into the written line.
        model_events: ``task_id`` is a model id (``model_events: true``).
    """
    result = EventsResult()
    report = PagingReport()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", encoding="utf-8", newline="\n") as out:
        for events in iter_task_events(client, task_id, event_type, report, model_events=model_events):
            for event in events:
                event = _decoded(event, result.errors)
                extra = on_event(event) if on_event else None
                out.write(record_line({**event, **extra} if extra else event))
            result.events += len(events)
    result.server_total = report.total if report.total is not None else result.events
    result.errors.extend(report.issues)
    issue = count_issue(event_type or "model_events", result.events, report.total)
    if issue:
        result.errors.append(issue)
    return result


def _decoded(event: dict, issues: list[dict[str, Any]]) -> dict:
    """``decode_plot(event)``, or ``event`` as stored (with a warning) when its plot cannot be inflated."""
    try:
        return decode_plot(event)
    except InflateError as exc:
        issues.append({"section": "plots", "warning": f"plot {str(event.get('metric'))[:200]!r}/"
                       f"{str(event.get('variant'))[:200]!r} iteration {event.get('iter')} is kept compressed "
                       f"as the server stored it (plot_data): {exc}"})
        return event


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
        where = storage.locate(self.client, url)
        if where.kind == "external":
            record["status"] = "external"
            record["reason"] = where.reason
            return record
        base, n = rel_path, 1
        while rel_path in self._paths:
            n += 1
            rel_path = f"{base}.{n}"
        self._paths.add(rel_path)
        dest = self.folder / rel_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        record["source"] = where.kind
        self._futures.append((record, self.pool.submit(self._fetch, where, dest)))
        record["file"] = rel_path
        return record

    def _fetch(self, where: storage.Location, dest: Path) -> tuple[int, str | None]:
        if self.download is not None:
            return int(self.download(where.url, dest)), None
        digest = hashlib.sha256()  # hashed as the bytes arrive: the manifest needs no second read
        if where.kind == "object_store":
            options = storage.client_storage_options(self.client, where.url)
            return storage.fetch_object(where.url, dest, {where.url: options}, digest=digest,
                                        account=self.client.account), digest.hexdigest()
        return int(self.client.files.download(where.url, dest, digest=digest)), digest.hexdigest()

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
            except (ClearMLRequestError, FileNotFoundError) as exc:
                missing = isinstance(exc, FileNotFoundError) or "404" in str(exc)
                record["status"] = "missing" if missing else "failed"
                record["error"] = str(exc)
                record["file"] = None
                _remove(self.folder, record)
            except Exception as exc:  # noqa: BLE001 - object storage refused or unreachable: recorded
                if record.get("source") != "object_store":
                    first_error = first_error or exc
                record["status"] = "failed"
                record["error"] = str(exc)[:500]
                if record.get("source") == "object_store":
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


def event_file_path(folder: str, event: dict, url: str | None) -> str:
    """``<folder>/<metric>/<variant>/<iter>_<file name>``: where the file of an image event goes."""
    metric = safe_component(str(event.get("metric", "")))
    variant = safe_component(str(event.get("variant", "")))
    return f"{folder}/{metric}/{variant}/{safe_component(str(event.get('iter', 0)))}_" \
           f"{local_file_name(url or '', 'image')}"


def artifact_folder(mode: str, key: str) -> str:
    """``artifacts/<mode>.<key>``: where an artifact's file and preview go (a dot in the mode is escaped, so
    two mode/key pairs never share a folder)."""
    return f"{ARTIFACTS_DIR}/{safe_component(mode, escape='.')}.{safe_component(key)}"


def plan_debug_image(downloads: Downloads, event: dict) -> dict:
    """Schedule a debug image event's ``url``; returns the fields added to its index line."""
    iteration = event.get("iter", 0)
    rel = event_file_path(DEBUG_DIR, event, event.get("url"))
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
        folder = artifact_folder(mode, key)
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


def collect_models(client, task: dict, created: list[dict] | None = None) -> list[dict[str, Any]]:
    """Input and output model records of the task (models by id and by creating task, every page).

    Args:
        created: The models the task created, when already read (a batch of tasks reads theirs in one query).
    """
    refs = []
    models = task.get("models") or {}
    for kind in ("input", "output"):
        for ref in models.get(kind) or []:
            if ref.get("model"):
                refs.append((kind, ref.get("name"), ref["model"]))
    by_id: dict[str, dict] = {}
    ids = sorted({r[2] for r in refs})
    if ids:
        for model in (m.raw for m in client.models.iter(id=ids, include_public=True)):
            if model.get("id") in ids:
                by_id[model["id"]] = model
    for model in (m.raw for m in client.models.iter(task=[task["id"]])) if created is None else created:
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


def model_folder(record: dict[str, Any]) -> str:
    """``models/<role>.<name>.<id>``: where a model's weights and events go."""
    return f"{MODELS_DIR}/{safe_component(record['role'])}.{safe_component(str(record['name'] or ''))}" \
           f".{safe_component(record['id'], 40)}"


def export_model_events(client, records: list[dict[str, Any]], folder: Path) -> EventsResult:
    """Every event reported on the task's output models (``model_events``: scalars, plots, debug images,
    read one type at a time) to ``<model folder>/events.jsonl``."""
    total = EventsResult()
    for record in records:
        if record.get("missing") or record.get("role") != "output":
            continue
        events, parts = 0, []
        for event_type in MODEL_EVENT_TYPES:  # one type at a time: "all types" reaches log events, which
            part = folder / model_folder(record) / f".events.{event_type}.jsonl"  # fail on a real server
            result = export_event_stream(client, record["id"], event_type, part, model_events=True)
            events += result.events
            total.server_total += result.server_total
            total.errors.extend({**e, "model_id": record["id"]} for e in result.errors)
            parts.append(part)
        _concatenate(parts, folder / model_folder(record) / "events.jsonl" if events else None)
        record["events"] = events
        total.events += events
    return total


def _concatenate(parts: list[Path], dest: Path | None) -> None:
    """Join ``parts`` into ``dest`` (none: nothing to keep) and remove them."""
    if dest is not None:
        with open(dest, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out)
    for part in parts:
        part.unlink(missing_ok=True)


def plan_plot_images(downloads: Downloads, event: dict) -> dict | None:
    """Schedule the images a plot references (e.g. a matplotlib figure reported as an image)."""
    urls = plot_image_urls(event)
    if not urls:
        return None
    files = []
    for url in urls:
        rel = event_file_path(f"{PLOTS_DIR}/images", event, url)
        record = downloads.add(url, rel, {"kind": "plot_image", "metric": event.get("metric"),
                                          "variant": event.get("variant"), "iter": event.get("iter")})
        files.append(record["file"])
    return {"local_image_files": files}


def plan_models(downloads: Downloads, records: list[dict[str, Any]]) -> None:
    """Schedule the weight file of every model record (``model.uri``)."""
    for record in records:
        model = record.get("model") or {}
        uri = model.get("uri")
        folder = model_folder(record)
        rel = f"{folder}/{local_file_name(uri or '', 'weights')}"
        record["download"] = downloads.add(uri, rel, {"kind": "model", "id": record["id"]})
