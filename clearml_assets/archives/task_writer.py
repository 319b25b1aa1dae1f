"""Writing one task's export folder: every stream of the task, then its manifest.

The pool reads the scalars (the longest stream), the plots and the debug images and downloads the files
while the calling thread reads the other streams (artifacts, models, console): the pool bounds the account's
requests in flight.
Everything is settled before anything is read or rolled back.

The manifest's ``status`` says what the archive holds against what the server holds:
``ok`` (everything), ``with_issues`` (only things the server itself no longer has, e.g. a 404 file or a
task deleted meanwhile), ``incomplete`` (the server holds something the archive lacks: a section failed,
fewer events than counted, a download failed). An ``incomplete`` export is published so that what was
read is kept, but it is never treated as current (the next run exports again) and its check fails.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Executor, Future, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ClearMLRequestError
from . import logs, media, scalars
from .manifest import MANIFEST_VERSION, folder_sizes
from .records import record_line, write_json
from .server_release import server_facts

TASK_JSON = "task.json"
FINGERPRINT_FIELDS = ("last_update", "last_change", "status", "last_iteration")
_SECTION_ERRORS = (ClearMLRequestError,)  # unreachable server: the whole export rolls back


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_fingerprint(task: dict[str, Any]) -> dict[str, Any]:
    """The task fields whose change means the export is out of date."""
    return {k: task.get(k) for k in FINGERPRINT_FIELDS}


def lacking(issues: Iterable[dict[str, Any]]) -> bool:
    """Whether any issue means the server holds something the archive lacks."""
    return any("error" in i and i.get("status") not in ("missing",) for i in issues)


def _section(issues: list[dict[str, Any]], name: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``None`` with an issue recorded when the server refused or failed the section."""
    try:
        return fn()
    except _SECTION_ERRORS as exc:
        issues.append({"section": name, "error": str(exc)})
        return None


class TaskWriter:
    """Writes the export folder of one task of ``account`` into a staging folder.

    Args:
        client: The account's ``ClearMLClient``.
        account: Account name.
        pool: Bounded pool for the scalars and the downloads.
        download: Replaces the file fetch (tests inject failures with it).
        created_models: The models the task created, already read (else read with the task's other models).
    """

    def __init__(self, client, account: str, pool: Executor, download: Callable[[str, Path], int] | None,
                 created_models: list[dict] | None = None):
        self.client, self.account, self.pool, self.download = client, account, pool, download
        self.created_models = created_models  # the models the task created, read with its batch

    def write(self, task: dict[str, Any], project_name: str, folder: Path, tmp: Path, started: float,
              web_url: str | None, project_chain: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Write everything of ``task`` under ``tmp``; returns its manifest, whose ``files`` holds the files hashed
        while they were downloaded (the packing hashes the others and writes the manifest).

        ``task.json`` also says the project's chain (``project_chain``: it and its ancestors with their system
        tags, see :mod:`.system_projects`) and the release of the server it was read from (``server``).
        """
        issues: list[dict[str, Any]] = []
        project: dict[str, Any] = {"id": task.get("project"), "name": project_name}
        if project_chain:
            project["chain"] = project_chain
        write_json(tmp / TASK_JSON, {
            "task": task, "account": self.account, "web_url": web_url, "server": server_facts(self.client),
            "exported_at": now_iso(), "project": project,
            "names": {"task": task.get("name"), "project": project_name, "folder": folder.name},
        })
        downloads = media.Downloads(self.client, tmp, self.pool, self.download)
        done = self._read_streams(task, tmp, downloads, issues)
        counts, server, picked = self._summarize(done, tmp, issues)
        records = downloads.wait()
        self._write_indexes(tmp, done, records)
        counts.update(_download_counts(done, records))
        issues.extend({"section": r["kind"], "uri": r.get("uri"), "status": r["status"],
                       "error": r.get("error") or r.get("reason")}
                      for r in records if r["status"] not in ("ok", "external"))
        # what is missing was lost by the server (the task was deleted meanwhile) or by the export: only then
        # does a re-read decide anything (a task changed meanwhile has another fingerprint: the next run exports it)
        deleted = self._recheck(task, issues) if lacking(issues) else False
        sizes = folder_sizes(tmp)
        counts.update(files=len(sizes), bytes=sum(sizes.values()),
                      external_references=sum(1 for r in records if r["status"] == "external"))
        manifest = {
            "version": MANIFEST_VERSION, "kind": "task", "account": self.account, "task_id": str(task["id"]),
            "task_name": task.get("name"), "project_id": task.get("project"), "project_name": project_name,
            "folder": folder.name, "fingerprint": task_fingerprint(task), "complete": True,
            "status": _status(issues, deleted), "task_deleted": deleted, "counts": counts,
            "server_counts": server, "issues": issues, "picked_metrics": picked, "web_url": web_url,
            "exported_at": now_iso(), "seconds": round(time.monotonic() - started, 3),
            "files": downloads.known_hashes(),  # the rest are hashed as they are packed (packing.pack_folder)
        }
        return manifest

    def _read_streams(self, task: dict, tmp: Path, downloads: media.Downloads,
                      issues: list[dict[str, Any]]) -> dict[str, Any]:
        task_id = str(task["id"])
        futures = {  # independent streams: in the pool, beside the calling thread's
            "scalars": self.pool.submit(scalars.export_scalars, self.client, task_id, tmp),
            "debug_images": self.pool.submit(
                media.export_event_stream, self.client, task_id, "training_debug_image",
                tmp / media.DEBUG_DIR / "index.jsonl", on_event=lambda ev: media.plan_debug_image(downloads, ev)),
            "plots": self.pool.submit(
                media.export_event_stream, self.client, task_id, "plot", tmp / media.PLOTS_DIR / "plots.jsonl",
                on_event=lambda ev: media.plan_plot_images(downloads, ev)),
        }
        streams = {
            "artifacts": lambda: media.plan_artifacts(downloads, task),
            "models": lambda: media.collect_models(self.client, task, self.created_models),
            "console": lambda: logs.export_console_log(self.client, task_id, tmp),
        }
        done: dict[str, Any] = {}
        try:
            for name, stream in streams.items():
                done[name] = _section(issues, name, stream)
                if name == "models":
                    media.plan_models(downloads, done[name] or [])
                    done["model_events"] = _section(issues, "model_events", lambda: media.export_model_events(
                        self.client, done["models"] or [], tmp))
        except BaseException:
            settle(futures.values(), downloads)
            raise
        wait(futures.values())
        failed = [f.exception() for f in futures.values()
                  if f.exception() is not None and not isinstance(f.exception(), _SECTION_ERRORS)]
        if failed:
            settle(futures.values(), downloads)
            raise failed[0]
        done.update({name: _section(issues, name, future.result) for name, future in futures.items()})
        return done

    def _summarize(self, done: dict[str, Any], tmp: Path, issues: list[dict[str, Any]]):
        counts: dict[str, Any] = {}
        server: dict[str, Any] = {}
        log_result = done["console"]
        if log_result:
            counts.update(log_lines=log_result.lines, log_events=log_result.events, log_bytes=log_result.bytes,
                          log_levels=log_result.levels)
            server["log_events"] = log_result.server_total
            if log_result.total_capped:
                server["log_events_total_capped"] = True
            issues.extend(log_result.errors)
        picked: dict[str, Any] = {}
        scalar_result = done["scalars"]
        if scalar_result:
            counts.update(scalar_points=scalar_result.points, scalar_series=len(scalar_result.series))
            server["scalar_points"] = scalar_result.server_total
            issues.extend(scalar_result.errors)
            picked = scalars.write_metrics_summary(tmp, scalar_result)["picked"]
        for name, count_key in (("plots", "plots"), ("debug_images", "debug_image_events"),
                                ("model_events", "model_events")):
            result = done.get(name)
            if result:
                counts[count_key] = result.events
                server[count_key] = result.server_total
                issues.extend(result.errors)
        return counts, server, picked

    def _write_indexes(self, tmp: Path, done: dict[str, Any], records: list[dict[str, Any]]) -> None:
        # written after the downloads settled, so they hold the final statuses
        for kind, rel in (("debug_image", f"{media.DEBUG_DIR}/downloads.jsonl"),
                          ("plot_image", f"{media.PLOTS_DIR}/images.jsonl")):
            mine = [r for r in records if r["kind"] == kind]
            if mine:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                with open(tmp / rel, "w", encoding="utf-8") as handle:
                    handle.writelines(record_line(r) for r in mine)
        write_json(tmp / media.ARTIFACTS_DIR / "index.json", done["artifacts"] or [])
        write_json(tmp / media.MODELS_DIR / "models.json", done["models"] or [])

    def _recheck(self, task: dict[str, Any], issues: list[dict[str, Any]]) -> bool:
        """Re-read the task: changed meanwhile (warning) or deleted (returns True)."""
        try:
            latest = self.client.tasks.get(str(task["id"])).raw
        except ClearMLRequestError as exc:
            issues.append({"section": "task", "error": f"the task was deleted during the export: {exc}"})
            return True
        if task_fingerprint(latest) != task_fingerprint(task):
            issues.append({"section": "task", "warning": "the task changed during the export; the next "
                                                         "run re-exports it"})
        return False


def _status(issues: list[dict[str, Any]], deleted: bool) -> str:
    if not any("error" in i for i in issues):
        return "ok"
    return "incomplete" if lacking(issues) and not deleted else "with_issues"


def _download_counts(done: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for record in records:
        if record["status"] == "ok":
            by_kind[record["kind"]] = by_kind.get(record["kind"], 0) + 1
    return {"artifacts": len(done["artifacts"] or []), "artifact_files": by_kind.get("artifact", 0),
            "models": len(done["models"] or []), "model_files": by_kind.get("model", 0),
            "debug_image_files": by_kind.get("debug_image", 0),
            "plot_image_files": by_kind.get("plot_image", 0),
            "downloaded_bytes": sum(r.get("bytes", 0) for r in records if r["status"] == "ok")}


def settle(futures: Iterable[Future], downloads: media.Downloads) -> None:
    """Wait for the streams, then the downloads, so nothing writes into a folder about to be removed."""
    wait(list(futures))
    with contextlib.suppress(BaseException):
        downloads.wait()
