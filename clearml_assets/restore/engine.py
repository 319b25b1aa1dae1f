"""Restore a task archive into a ClearML account: one new task holding everything the archive holds.

The new task is created with the system tags ``restored-from:<source task id>`` (provenance, found by the
next restore) and ``restore-incomplete`` (removed only after the last write), plus the source account,
server and archive in ``runtime``. So a second restore finds the finished copy and writes nothing, and a
restore that died half-way is resumed on the same task: its log is cleared and sent again, the other
events are sent again (the server keys them by task, iteration, metric and variant, so they replace
themselves), files are uploaded again to the same paths, artifacts are upserted by key and models are
found by their own provenance tag.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from ..archives.logs import ConsoleText
from ..archives.server_release import collapsed_iterations_note
from ..archives.system_projects import ensure_chain, rebased, recorded_chain
from ..errors import ArchiveError, ClearMLAssetsError
from ..locks import ClearMLLocks, locks_from_env
from . import system_tasks
from .reader import TaskArchive, open_archive

PROVENANCE_PREFIX = "restored-from:"
INCOMPLETE_TAG = "restore-incomplete"
RUNTIME_KEYS = ("restore_source_account", "restore_source_server", "restore_source_task", "restore_archive_sha256")
FINAL_STATUSES = ("completed", "published", "stopped", "failed", "closed")
DEFAULT_BATCH_EVENTS = 5_000
DEFAULT_BATCH_BYTES = 4 << 20
_PATH_PART = re.compile(r"[^A-Za-z0-9_.-]")


class RestoreError(ClearMLAssetsError):
    """A restore could not be finished; the target task (if any) still carries ``restore-incomplete``."""


def restore_lock_name(api_host: str, source_id: str) -> str:
    """The lock serializing restores of source task ``source_id`` into the server at ``api_host``."""
    return f"clearml_assets:restore:{api_host.rstrip('/')}|{source_id}"


def provenance_tag(source_id: str) -> str:
    """The system tag marking a restored copy of task (or model) ``source_id``."""
    return f"{PROVENANCE_PREFIX}{source_id}"


@dataclass
class RestoreResult:
    """Outcome of restoring one task archive."""

    source_task_id: str
    task_id: str
    task_name: str
    project: str
    created: bool
    resumed: bool
    unchanged: bool
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    web_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source_task_id": self.source_task_id, "task_id": self.task_id, "task_name": self.task_name,
                "project": self.project, "created": self.created, "resumed": self.resumed,
                "unchanged": self.unchanged, "counts": self.counts, "notes": self.notes,
                "seconds": round(self.seconds, 3), "web_url": self.web_url}


def _part(name: str) -> str:
    return _PATH_PART.sub("_", name).strip(".")[:64] or "_"


def _basename(url: str | None, fallback: str) -> str:
    name = posixpath.basename(unquote(urlsplit(url or "").path))
    return name if name not in ("", ".", "..") and "\0" not in name else fallback


class TaskRestorer:
    """Restores task archives into one ClearML account.

    Args:
        client: The target account's ``ClearMLClient`` (needs its ``files_host`` for files).
        project: Project (full name) for the restored tasks; default: the source task's project name.
        max_workers: Uploads and event batches in flight at once for one task (``restore_path`` spreads
            ``task_workers`` x ``max_workers`` over the archive's tasks).
        batch_events: Most events per ``events.add_batch`` request.
        batch_bytes: Most (estimated) bytes per ``events.add_batch`` request.
        fail_after: Test hook called with the name of each finished write step (raising in it simulates a
            restore dying half-way).
        locks: Where the per-task restore lock lives (default: :func:`clearml_assets.locks.locks_from_env`,
            ``CLEARML_ASSETS_LOCK_URL``'s PostgreSQL, else lock files of this machine). The Dagster assets pass
            the instance's PostgreSQL, which every host of a deployment shares.
    """

    def __init__(self, client, *, project: str | None = None, max_workers: int = 4,
                 batch_events: int = DEFAULT_BATCH_EVENTS, batch_bytes: int = DEFAULT_BATCH_BYTES,
                 fail_after: Callable[[str], None] | None = None, locks: ClearMLLocks | None = None):
        self.client = client
        self.project = project
        self.max_workers = max(1, int(max_workers))
        self._per_task = self.max_workers  # requests in flight for one task (restore_path spreads its budget)
        self.batch_events = max(1, int(batch_events))
        self.batch_bytes = max(1024, int(batch_bytes))
        self._hook = fail_after
        self._lock = threading.Lock()
        self._project_lock = threading.Lock()
        self._projects: dict[str, str] = {}
        self.locks = locks or locks_from_env()

    # ------------------------------------------------------------------------------------------ entry
    def restore_path(self, path: Path | str, task_workers: int = 4) -> list[RestoreResult]:
        """Restore every task of a task or project archive (file or folder), parents before children.

        The ``task_workers`` x ``max_workers`` requests in flight are spread over as many tasks as the archive
        holds (each task's own steps, one after the other, then cost round trips only to itself): 20 small tasks
        go 16 at a time with one upload or event batch each, one big task alone gets all 16.

        Args:
            path: The archive file or export folder.
            task_workers: With ``max_workers``, the requests in flight (a task whose parent is in the archive
                waits for it).
        """
        with open_archive(path) as archives:
            budget = max(1, task_workers) * self.max_workers
            at_once = max(1, min(budget, len(archives)))
            self._per_task = max(1, budget // at_once)
            try:
                results, failures = self._restore_levels(archives, at_once)
            finally:
                self._per_task = self.max_workers
            if failures:
                first = next(iter(failures.items()))
                raise RestoreError(
                    f"{len(failures)} of {len(archives)} tasks could not be restored into account "
                    f"{self.client.account!r} (first: {first[0]}: {first[1]}); the {len(results)} others are "
                    "restored. Run the same restore again to finish the rest",
                    metadata={"failed": json.dumps(failures)[:4000],
                              "restored": json.dumps({k: r.task_id for k, r in results.items()})[:4000]})
            return [results[a.source_task_id] for a in _parents_first(archives)]

    def _restore_levels(self, archives: list[TaskArchive], at_once: int
                        ) -> tuple[dict[str, RestoreResult], dict[str, str]]:
        """Restore level by level (parents first), ``at_once`` tasks at a time: ``(results, failures)``."""
        results: dict[str, RestoreResult] = {}
        failures: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="clearml-restore-task") as pool:
            for level in _levels(archives):
                todo = []
                for archive in level:
                    if archive.task.get("parent") in failures:  # its copy would lose the parent link
                        failures[archive.source_task_id] = f"its parent {archive.task['parent']} failed"
                    else:
                        todo.append((archive.source_task_id, pool.submit(self.restore, archive)))
                for key, future in todo:
                    try:
                        results[key] = future.result()
                    except RestoreError as exc:  # every other task still gets restored
                        failures[key] = str(exc)
        return results, failures

    def find_restored(self, source_id: str) -> tuple[dict | None, dict | None]:
        """``(finished copy, unfinished copy)`` of source task ``source_id`` in the target account."""
        done = partial = None
        for row in self.client.tasks.find_by_system_tag(provenance_tag(source_id)):
            if INCOMPLETE_TAG in (row.get("system_tags") or []):
                partial = partial or row
            else:
                done = done or row
        return done, partial

    def restore(self, archive: TaskArchive) -> RestoreResult:
        """Restore one verified task archive (see the module docstring for idempotence and resuming).

        Two restores of the same source task into the same server run one after the other (a lock per target
        server and source task in :attr:`locks`, shared by every host when it is PostgreSQL), so they never
        both create a copy; the second finds the first's copy and writes nothing.
        """
        with self.locks.hold(restore_lock_name(self.client.api_host, archive.source_task_id)):
            return self._restore(archive)

    def _restore(self, archive: TaskArchive) -> RestoreResult:
        started = time.monotonic()
        src = archive.task
        done, partial = self.find_restored(archive.source_task_id)
        archive.check_provenance(done if done is not None else partial)  # before any state change
        chain = self._chain(archive)
        project = chain[-1]["name"]
        if done is not None:
            result = RestoreResult(archive.source_task_id, done["id"], str(done.get("name")), project, False, False,
                                   True, web_url=self._web(done))
            if src.get("status") == "published" and done.get("status") in ("completed", "stopped"):
                # the source was published after it was copied: the copy follows (its content is the same)
                self.client.tasks.set_status(done["id"], "published", message=str(src.get("status_message") or ""))
                result.notes.append("the source was published since it was copied: the copy is published too")
            result.seconds = time.monotonic() - started
            return result
        result = RestoreResult(archive.source_task_id, "", str(src.get("name")), project, partial is None,
                               partial is not None, False)
        project_id = self._project_id(chain)
        if partial is not None:
            task_id, system_tags = partial["id"], list(partial.get("system_tags") or [])
            status = self.client.tasks.get(task_id).raw.get("status")
        else:
            task_id, system_tags = self._create(archive, project_id, result)
            status = "created"
        result.task_id = task_id
        try:
            self._fill(archive, task_id, project_id, status, result)
            self.client.tasks.update(task_id, system_tags=[t for t in system_tags if t != INCOMPLETE_TAG])
        except BaseException as exc:
            self._stop_after_failure(task_id)
            if not isinstance(exc, Exception):
                raise  # an interrupt: the copy is stopped and tagged, the next restore finishes it
            raise RestoreError(f"restore of task {archive.source_task_id} into account "
                               f"{self.client.account!r} stopped half-way ({type(exc).__name__}: {exc}); task "
                               f"{task_id} is tagged {INCOMPLETE_TAG!r} and the next restore of the same archive "
                               "finishes it", metadata={"task_id": task_id}) from exc
        result.seconds = time.monotonic() - started
        result.web_url = self.client.web_url("task", task_id, project_id)
        return result

    def _chain(self, archive: TaskArchive) -> list[dict[str, Any]]:
        """The projects the copy goes into, root first, with their system tags: the source's (a pipeline run,
        a dataset version and a report stay in their hidden system projects), under ``--project`` if given."""
        chain = recorded_chain(archive.info, archive.project_name or "Restored")
        return rebased(chain, self.project) if self.project else chain

    def _project_id(self, chain: list[dict[str, Any]]) -> str:
        key = json.dumps(chain, sort_keys=True)
        with self._project_lock:  # one lookup per project chain, however many tasks ask for it at once
            if key not in self._projects:
                self._projects[key] = ensure_chain(self.client, chain)
            return self._projects[key]

    def _mapped(self, source_id: str) -> str | None:
        """The id of the copy of source task (or model) ``source_id`` in the target, or None."""
        done, _ = self.find_restored(source_id)
        if done is not None:
            return str(done["id"])
        found = self.client.models.find_by_system_tag(provenance_tag(source_id))
        return str(found[0]["id"]) if found else None

    def _stop_after_failure(self, task_id: str) -> None:
        """Leave no copy in progress after a failure or an interrupt (best effort: the server may be gone)."""
        try:
            if self.client.tasks.get(task_id).raw.get("status") == "in_progress":
                self.client.tasks.set_status(task_id, "stopped", message="restore interrupted",
                                             reason="the next restore of the same archive finishes it")
        except Exception:  # noqa: BLE001 - the original failure is what gets reported
            pass

    def _web(self, row: dict) -> str | None:
        try:
            return self.client.web_url("task", row["id"], row.get("project"))
        except Exception:  # noqa: BLE001 - a link is a nicety
            return None

    def _step(self, name: str) -> None:
        if self._hook is not None:
            self._hook(name)

    # ----------------------------------------------------------------------------------------- create
    def _create(self, archive: TaskArchive, project_id: str, result: RestoreResult) -> tuple[str, list[str]]:
        src = archive.task
        system_tags = [t for t in src.get("system_tags") or []
                       if not t.startswith(PROVENANCE_PREFIX) and t != INCOMPLETE_TAG]
        fields: dict[str, Any] = {
            "name": src.get("name") or archive.source_task_id, "type": src.get("type") or "training",
            "project": project_id, "comment": src.get("comment") or "", "tags": list(src.get("tags") or []),
            "system_tags": system_tags + [provenance_tag(archive.source_task_id), INCOMPLETE_TAG],
        }
        for key in ("script", "hyperparams", "configuration", "container"):
            if src.get(key):
                fields[key] = src[key]
        execution = {k: v for k, v in (src.get("execution") or {}).items() if k not in ("artifacts", "queue")}
        if execution:
            fields["execution"] = execution
        destination = (src.get("output") or {}).get("destination")
        if destination:
            fields["output_dest"] = destination
        parent = src.get("parent")
        if parent:
            mapped, _ = self.find_restored(parent)
            if mapped is not None:
                fields["parent"] = mapped["id"]
            else:
                result.notes.append(f"parent task {parent} is not restored in this account; the copy has no parent")
        if system_tasks.is_report(src):
            return system_tasks.create_report(self.client, src, project_id, fields["system_tags"]), \
                sorted({*system_tasks.REPORT_SYSTEM_TAGS, *fields["system_tags"]})
        task_id = self.client.tasks.create(**fields)
        return task_id, fields["system_tags"]

    @staticmethod
    def _runtime(archive: TaskArchive) -> dict[str, Any]:
        """The source task's runtime plus the provenance of the copy."""
        return {**(archive.task.get("runtime") or {}), "restore_source_account": archive.source_account,
                "restore_source_server": archive.source_server, "restore_source_task": archive.source_task_id,
                "restore_archive_sha256": str((archive.manifest.get("archive") or {}).get("sha256") or "")}

    # ------------------------------------------------------------------------------------------- fill
    def _fill(self, archive: TaskArchive, task_id: str, project_id: str, status: str,
              result: RestoreResult) -> None:
        src = archive.task
        if system_tasks.is_report(src):
            if status != "published":
                self.client.tasks.edit(task_id, runtime=self._runtime(archive))
                result.notes += system_tasks.fill_report(self.client, src, task_id, self._mapped, (
                    archive.info.get("web_url"), self.client.web_url("task", task_id)))
            self._step("status")
            return
        if status != "published":
            if result.resumed:  # events, metrics and output models of the first try go, the rest is sent again
                self.client.tasks.reset(task_id)
            # files land under the project the copy is restored into (--project), as the SDK would put them
            project_path = "/".join(_part(p) for p in result.project.split("/"))
            prefix = f"{project_path}/{_part(str(src.get('name') or 'task'))}.{task_id}"
            # every upload starts at once, the runtime and the status go while they run, then the events (those
            # that point at no file first); the last event batch and the artifact records go together
            with tempfile.TemporaryDirectory(prefix="clearml-restore-") as scratch, \
                    ThreadPoolExecutor(max_workers=self._per_task, thread_name_prefix="clearml-restore") as pool:
                urls = self._upload_images(archive, prefix, pool, result)
                artifacts = self._upload_artifacts(archive, prefix, pool, result, task_id, Path(scratch))
                runtime = pool.submit(self.client.tasks.edit, task_id, runtime=self._runtime(archive),
                                      **self._dataset_fields(archive, task_id))
                self.client.tasks.set_status(task_id, "in_progress", message="restoring")
                settle_events = self._send_events(archive, task_id, urls, pool, result)
                self._finish_artifacts(task_id, artifacts, result)
                settle_events()
                runtime.result()
                self._step("uploads")
                self._step("events")
                self._restore_models(archive, task_id, project_id, prefix, pool, result)
            self._step("models")
            self._finish_status(task_id, src)
        self._step("status")

    def _finish_status(self, task_id: str, src: dict) -> None:
        status = src.get("status")
        message, reason = str(src.get("status_message") or ""), str(src.get("status_reason") or "")
        if status == "published":
            self.client.tasks.set_status(task_id, "completed")
            self.client.tasks.set_status(task_id, "published", message=message, reason=reason)
        elif status in FINAL_STATUSES:
            self.client.tasks.set_status(task_id, status, message=message, reason=reason)
        else:  # created / queued / in_progress in the archive: the copy runs nowhere
            self.client.tasks.set_status(task_id, "stopped", message=f"restored from a {status} task",
                                         reason=reason)

    def _upload(self, prefix: str, rel: str, path: Path, pool: ThreadPoolExecutor) -> Future:
        return pool.submit(self.client.files.upload, f"{prefix}/{rel}", path)

    def _upload_images(self, archive: TaskArchive, prefix: str, pool: ThreadPoolExecutor,
                       result: RestoreResult) -> dict[str, Future]:
        """Debug images and images referenced by plots, being uploaded: ``{old URL: future new URL}``."""
        futures: dict[str, Future] = {}
        found = [("debug_image_files", "metrics", event, [(event.get("url"), path)])
                 for event, path in archive.debug_image_events()]
        found += [("plot_image_files", "plots", event, files) for event, files in archive.plot_events()]
        for count, folder, event, files in found:
            for url, path in files:
                if path is None or not url or url in futures:
                    continue
                rel = "/".join([folder, _part(str(event.get("metric", ""))), _part(str(event.get("variant", ""))),
                                _basename(url, "image")])
                futures[url] = self._upload(prefix, rel, path, pool)
                result.counts[count] = result.counts.get(count, 0) + 1
                result.counts["uploaded_bytes"] = result.counts.get("uploaded_bytes", 0) + path.stat().st_size
        return futures

    # ----------------------------------------------------------------------------------------- events
    def _all_events(self, archive: TaskArchive, task_id: str, urls: dict[str, Future],
                    result: RestoreResult) -> Iterator[dict]:
        kinds = (("scalar_points", archive.scalar_events()), ("log_events", archive.log_events()),
                 ("plots", (_relinked(e, [u for u, _ in files], urls) for e, files in archive.plot_events())),
                 ("debug_image_events", (e for e, _ in archive.debug_image_events())))
        with open(os.devnull, "wb") as sink:
            console = ConsoleText(sink)  # log lines counted as the archive counts them (an event may hold many)
            for name, events in kinds:
                result.counts.setdefault(name, 0)
                for event in events:
                    if name == "debug_image_events" and event.get("url") in urls:
                        event["url"] = urls[event["url"]].result()
                    elif name == "log_events":
                        console.add(str(event.get("msg") or ""))
                    event["task"] = task_id
                    result.counts[name] += 1
                    yield event
            console.close()
        result.counts["log_lines"] = console.lines

    def _send_events(self, archive: TaskArchive, task_id: str, urls: dict[str, Future], pool: ThreadPoolExecutor,
                     result: RestoreResult) -> Callable[[], None]:
        """Every event of the archive, ``max_workers`` batches in flight; then, alone in the last batch, the
        latest event of each metric (and type) the source's own last batch held: the server replaces a task's
        ``metric_stats`` with the metrics of each batch (``TaskBLL.update_statistics``), so the copy ends with
        the same ``metric_stats`` as the source. Every event is still sent exactly once.

        Returns:
            A function that waits for that last batch and raises :class:`RestoreError` unless the server took
            every event (the caller records the artifacts meanwhile)."""
        last_batch = _last_batch_metrics(archive.task)
        held: dict[tuple[str, str], dict] = {}

        def others() -> Iterator[dict]:
            for event in self._all_events(archive, task_id, urls, result):
                key = (str(event.get("metric") or ""), str(event.get("type") or "").replace(" ", "_"))
                if key in last_batch:
                    previous = held.get(key)
                    if previous is None or _event_order(event) >= _event_order(previous):
                        held[key] = event
                        if previous is None:
                            continue
                        event = previous
                yield event

        in_flight: list[tuple[int, Future]] = []
        sent = added = 0
        for batch in _batches(others(), self.batch_events, self.batch_bytes):
            in_flight.append((len(batch), pool.submit(self.client.events.add_batch, batch)))
            if len(in_flight) >= self._per_task:
                size, future = in_flight.pop(0)
                sent, added = sent + size, added + int(future.result().get("added", size))
        for size, future in in_flight:
            sent, added = sent + size, added + int(future.result().get("added", size))
        final = [held[key] for key in last_batch if key in held]  # the source's order: the same metric_stats
        tail = [(len(batch), pool.submit(self.client.events.add_batch, batch))  # after every other batch landed
                for batch in _batches(final, max(self.batch_events, len(final)), max(self.batch_bytes, 1 << 30))]

        def settle() -> None:
            total, taken = sent + sum(n for n, _ in tail), added + sum(int(f.result().get("added", n)) for n, f in tail)
            if taken != total:  # never a silent truncation: the server must have taken every event
                raise RestoreError(f"the server added {taken} of the {total} events sent for task {task_id}")

        return settle

    # -------------------------------------------------------------------------------- artifacts/models
    def _upload_artifacts(self, archive: TaskArchive, prefix: str, pool: ThreadPoolExecutor,
                          result: RestoreResult, task_id: str, scratch: Path) -> list[tuple[dict, Future | None]]:
        """The task's artifacts, their files being uploaded (a dataset version's state naming the copy)."""
        planned = []
        dataset = system_tasks.is_dataset_version(archive.task)
        for artifact, path in archive.artifacts():
            artifact = dict(artifact)
            upload = None
            if path is not None and dataset:
                path = system_tasks.dataset_state_file(artifact, path, scratch, self._copy_of(archive, task_id),
                                                       result.notes)
            if path is not None:
                rel = f"artifacts/{_part(str(artifact.get('key')))}/{_basename(artifact.get('uri'), path.name)}"
                upload = self._upload(prefix, rel, path, pool)
                result.counts["uploaded_bytes"] = result.counts.get("uploaded_bytes", 0) + path.stat().st_size
            elif artifact.get("uri"):
                result.notes.append(f"artifact {artifact.get('key')!r}: no file in the archive, the URI is kept")
            planned.append((artifact, upload))
        return planned

    def _finish_artifacts(self, task_id: str, planned: list[tuple[dict, Future | None]],
                          result: RestoreResult) -> None:
        for artifact, upload in planned:
            if upload is not None:
                artifact["uri"] = upload.result()
        if planned:
            self.client.tasks.add_artifacts(task_id, [a for a, _ in planned])
        result.counts["artifacts"] = len(planned)
        result.counts["artifact_files"] = sum(1 for _, u in planned if u is not None)

    def _restore_models(self, archive: TaskArchive, task_id: str, project_id: str, prefix: str,
                        pool: ThreadPoolExecutor, result: RestoreResult) -> None:
        src = archive.task
        refs = {(kind, ref.get("name"), ref.get("model")) for kind in ("input", "output")
                for ref in ((src.get("models") or {}).get(kind) or [])}
        planned = []
        for record, path in archive.models():
            model = record.get("model")
            if not model or record.get("missing"):
                result.notes.append(f"model {record.get('id')} was not in the archive (missing on the source)")
                continue
            found = self.client.models.find_by_system_tag(provenance_tag(model["id"]))
            if found:
                if model.get("task") == archive.source_task_id and found[0].get("task") != task_id:
                    self.client.models.edit(found[0]["id"], task=task_id)  # detached by a reset
                planned.append((record, found[0]["id"], None))
                continue
            upload = None
            if path is not None:
                rel = f"models/{_part(model['id'])}/{_basename(model.get('uri'), path.name)}"
                upload = self._upload(prefix, rel, path, pool)
                result.counts["uploaded_bytes"] = result.counts.get("uploaded_bytes", 0) + path.stat().st_size
            planned.append((record, None, upload))
        for record, model_id, upload in planned:
            model = record["model"]
            ready = False
            if model_id is None:
                model_id = self._create_model(model, upload.result() if upload else model.get("uri"),
                                              task_id if model.get("task") == archive.source_task_id else None,
                                              project_id)
                result.counts["model_files"] = result.counts.get("model_files", 0) + (upload is not None)
            else:
                ready = bool(self.client.models.get(model_id).raw.get("ready"))
            if not ready:  # a ready (published) model takes no events: they go first
                self._send_model_events(archive, record, model_id, result)
                if model.get("ready"):
                    self.client.models.edit(model_id, ready=True)
            if (record["role"], record.get("name"), record["id"]) in refs:
                self.client.tasks.add_model(task_id, record.get("name") or model.get("name"), model_id,
                                            record["role"])
        result.counts["models"] = len(planned)

    def _send_model_events(self, archive: TaskArchive, record: dict, model_id: str, result: RestoreResult) -> None:
        iterations: set[Any] = set()
        events = ({**event, "task": model_id, "model_event": True} for event in archive.model_events(record))
        for batch in _batches(events, self.batch_events, self.batch_bytes):
            self.client.events.add_batch(batch)
            iterations.update(event.get("iter") for event in batch)
            result.counts["model_events"] = result.counts.get("model_events", 0) + len(batch)
        note = collapsed_iterations_note(self.client, iterations)
        if note:
            result.notes.append(f"model {record.get('id')}: {note}")

    def _copy_of(self, archive: TaskArchive, task_id: str) -> Callable[[str], str | None]:
        """:meth:`_mapped` that knows the copy of the archive's own task."""
        return lambda source_id: task_id if source_id == archive.source_task_id else self._mapped(source_id)

    def _dataset_fields(self, archive: TaskArchive, task_id: str) -> dict[str, Any]:
        """The fields a dataset version's copy is edited with besides its runtime: its lineage naming the copies."""
        if not system_tasks.is_dataset_version(archive.task):
            return {}
        configuration = system_tasks.dataset_configuration(archive.task, self._copy_of(archive, task_id))
        return {"configuration": configuration} if configuration else {}

    def _create_model(self, model: dict, uri: str | None, task_id: str | None, project_id: str) -> str:
        system_tags = [t for t in model.get("system_tags") or [] if not t.startswith(PROVENANCE_PREFIX)]
        fields: dict[str, Any] = {
            "name": model.get("name") or "model", "uri": uri or "", "comment": model.get("comment") or "",
            "tags": list(model.get("tags") or []), "system_tags": system_tags + [provenance_tag(model["id"])],
            "framework": model.get("framework"), "design": model.get("design") or {},
            "labels": model.get("labels") or {}, "ready": False, "project": project_id}
        if task_id:
            fields["task"] = task_id
        metadata = model.get("metadata")
        if metadata:  # stored as {key: item}, sent as a list of items (models.create 2.13+)
            fields["metadata"] = list(metadata.values()) if isinstance(metadata, dict) else metadata
        parent = model.get("parent")
        if parent:
            found = self.client.models.find_by_system_tag(provenance_tag(parent))
            if found:
                fields["parent"] = found[0]["id"]
        return self.client.models.create(**{k: v for k, v in fields.items() if v is not None})


def _relinked(event: dict, old_urls: list[str], urls: dict[str, Future]) -> dict:
    """A plot event whose image URLs (in ``plot_str`` and ``source_urls``) point at the uploaded copies."""
    for old in old_urls:
        if old not in urls:
            continue
        new = urls[old].result()
        if isinstance(event.get("plot_str"), str):
            event["plot_str"] = event["plot_str"].replace(old, new)
        if isinstance(event.get("source_urls"), list):
            event["source_urls"] = [new if u == old else u for u in event["source_urls"]]
    return event


def _last_batch_metrics(task: dict) -> dict[tuple[str, str], None]:
    """``(metric, event type)`` of the source task's ``metric_stats`` (the metrics of its last event batch),
    in their order."""
    out: dict[tuple[str, str], None] = {}
    stats = task.get("metric_stats")
    for item in (stats.values() if isinstance(stats, dict) else []):
        if not isinstance(item, dict) or not item.get("metric"):
            continue
        for etype in item.get("event_stats_by_type") or {}:
            out[(str(item["metric"]), str(etype))] = None
    return out


def _event_order(event: dict) -> tuple[int, int]:
    try:
        return int(event.get("iter") or 0), int(event.get("timestamp") or 0)
    except (TypeError, ValueError):
        return 0, 0


def _batches(events: Iterable[dict], max_events: int, max_bytes: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    size = 0
    for event in events:
        weight = 200 + len(event.get("plot_str") or "") + len(event.get("msg") or "")
        if batch and (len(batch) >= max_events or size + weight > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += weight
    if batch:
        yield batch


def _parents(archives: list[TaskArchive]) -> dict[str, list[str]]:
    """The source ids each archive's task waits for when they are in ``archives``: its parent task, the dataset
    versions it builds on (a dataset version), every other task (a report, which links to them)."""
    by_id = {a.source_task_id: a for a in archives}
    others = [a.source_task_id for a in archives if not system_tasks.is_report(a.task)]
    out = {}
    for archive in archives:
        key = archive.source_task_id
        waits = others if system_tasks.is_report(archive.task) else \
            [archive.task.get("parent"), *system_tasks.dataset_parents(archive)]
        out[key] = [p for p in dict.fromkeys(waits) if p in by_id and p != key]
    return out


def _levels(archives: list[TaskArchive]) -> list[list[TaskArchive]]:
    """The archives in levels: each task after the levels holding those it waits for (see :func:`_parents`)."""
    by_id = {a.source_task_id: a for a in archives}
    parents = _parents(archives)
    depth: dict[str, int] = {}

    def level(archive: TaskArchive, seen: frozenset = frozenset()) -> int:
        key = archive.source_task_id
        if key not in depth:
            waits = [p for p in parents[key] if p not in seen]
            depth[key] = max((level(by_id[p], seen | {key}) + 1 for p in waits), default=0)
        return depth[key]

    out: dict[int, list[TaskArchive]] = {}
    for archive in _parents_first(archives, parents):
        out.setdefault(level(archive), []).append(archive)
    return [out[k] for k in sorted(out)]


def _parents_first(archives: list[TaskArchive], parents: dict[str, list[str]] | None = None) -> list[TaskArchive]:
    by_id = {a.source_task_id: a for a in archives}
    parents = _parents(archives) if parents is None else parents
    ordered: list[TaskArchive] = []
    seen: set[str] = set()

    def visit(archive: TaskArchive, depth: int = 0) -> None:
        if archive.source_task_id in seen or depth > len(archives):
            return
        for parent in parents[archive.source_task_id]:
            visit(by_id[parent], depth + 1)
        seen.add(archive.source_task_id)
        ordered.append(archive)

    for archive in archives:
        visit(archive)
    return ordered


def restore_archive(client, path: Path | str, *, project: str | None = None, max_workers: int = 4
                    ) -> list[RestoreResult]:
    """Restore a task or project archive (file or export folder) into the account of ``client``.

    Raises:
        ArchiveError: The archive is missing, not an export, or fails verification (nothing restored).
        RestoreError: A write failed; the next call with the same archive finishes the restore.
    """
    return TaskRestorer(client, project=project, max_workers=max_workers).restore_path(path)


__all__ = ["ArchiveError", "INCOMPLETE_TAG", "PROVENANCE_PREFIX", "RestoreError", "RestoreResult",
           "TaskRestorer", "provenance_tag", "restore_archive"]
