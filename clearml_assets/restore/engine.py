"""Restore a task archive into a ClearML account: one new task holding everything the archive holds.

The new task is created with the system tags ``restored-from:<source task id>`` (provenance, found by the
next restore) and ``restore-incomplete`` (removed only after the last write), plus the source account,
server and archive in ``runtime``. So a second restore finds the finished copy and writes nothing, and a
restore that died half-way is resumed on the same task: its log is cleared and sent again, the other
events are sent again (the server keys them by task, iteration, metric and variant, so they replace
themselves), files are uploaded again to the same paths, artifacts are upserted by key and models are
found by their own provenance tag.

This module is the restore's entry and its order of steps (:class:`TaskRestorer`); each step is its own module:
``order`` (which task waits for which), ``task_fields`` (the copy's creation, runtime and final status),
``uploads`` (files), ``events`` (event batches), ``models``; ``copies`` holds the provenance tags, the result
and what the steps of one copy share.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..archives.system_projects import ensure_chain, rebased, recorded_chain
from ..errors import ArchiveError
from ..locks import ClearMLLocks, locks_from_env
from . import events, models, order, system_tasks, task_fields, uploads
from .copies import (DEFAULT_BATCH_BYTES, DEFAULT_BATCH_EVENTS, INCOMPLETE_TAG, PROVENANCE_PREFIX, RUNTIME_KEYS,
                     CopyWrite, RestoreError, RestoreResult, provenance_tag, restore_lock_name)
from .reader import TaskArchive, open_archive


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
            waits_for = order.parents(archives)  # once: a dataset version's parents are read from its state file
            try:
                results, failures = self._restore_levels(archives, at_once, waits_for)
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
            return [results[a.source_task_id] for a in order.parents_first(archives, waits_for)]

    def _restore_levels(self, archives: list[TaskArchive], at_once: int, waits_for: dict[str, list[str]]
                        ) -> tuple[dict[str, RestoreResult], dict[str, str]]:
        """Restore level by level (parents first), ``at_once`` tasks at a time: ``(results, failures)``."""
        results: dict[str, RestoreResult] = {}
        failures: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="clearml-restore-task") as pool:
            for level in order.levels(archives, waits_for):
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
            task_id, system_tags = task_fields.create_task(self.client, archive, project_id, result,
                                                           lambda source_id: self.find_restored(source_id)[0])
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

    def _fill(self, archive: TaskArchive, task_id: str, project_id: str, status: str,
              result: RestoreResult) -> None:
        """Write everything the archive holds into the copy, step by step (see the module docstring)."""
        src = archive.task
        if system_tasks.is_report(src):
            if status != "published":
                self.client.tasks.edit(task_id, runtime=task_fields.runtime(archive))
                result.notes += system_tasks.fill_report(self.client, src, task_id, self._mapped, (
                    archive.info.get("web_url"), self.client.web_url("task", task_id)))
            self._step("status")
            return
        if status != "published":
            if result.resumed:  # events, metrics and output models of the first try go, the rest is sent again
                self.client.tasks.reset(task_id)
            prefix = uploads.copy_prefix(result.project, str(src.get("name") or "task"), task_id)
            # every upload starts at once, the runtime and the status go while they run, then the events (those
            # that point at no file first); the last event batch and the artifact records go together
            with tempfile.TemporaryDirectory(prefix="clearml-restore-") as scratch, \
                    ThreadPoolExecutor(max_workers=self._per_task, thread_name_prefix="clearml-restore") as pool:
                write = CopyWrite(self.client, archive, task_id, project_id, prefix, pool, result, self._per_task,
                                  self.batch_events, self.batch_bytes)
                urls = uploads.upload_images(write)
                artifacts = uploads.upload_artifacts(write, Path(scratch), self._copy_of(archive, task_id))
                runtime = pool.submit(self.client.tasks.edit, task_id, runtime=task_fields.runtime(archive),
                                      **task_fields.dataset_fields(archive, self._copy_of(archive, task_id)))
                self.client.tasks.set_status(task_id, "in_progress", message="restoring")
                settle_events = events.send_events(write, urls)
                uploads.finish_artifacts(write, artifacts)
                settle_events()
                runtime.result()
                self._step("uploads")
                self._step("events")
                models.restore_models(write)
            self._step("models")
            task_fields.finish_status(self.client, task_id, src)
        self._step("status")

    def _copy_of(self, archive: TaskArchive, task_id: str) -> Callable[[str], str | None]:
        """:meth:`_mapped` that knows the copy of the archive's own task."""
        return lambda source_id: task_id if source_id == archive.source_task_id else self._mapped(source_id)


def restore_archive(client, path: Path | str, *, project: str | None = None, max_workers: int = 4
                    ) -> list[RestoreResult]:
    """Restore a task or project archive (file or export folder) into the account of ``client``.

    Raises:
        ArchiveError: The archive is missing, not an export, or fails verification (nothing restored).
        RestoreError: A write failed; the next call with the same archive finishes the restore.
    """
    return TaskRestorer(client, project=project, max_workers=max_workers).restore_path(path)


__all__ = ["ArchiveError", "INCOMPLETE_TAG", "PROVENANCE_PREFIX", "RUNTIME_KEYS", "RestoreError", "RestoreResult",
           "TaskRestorer", "provenance_tag", "restore_archive", "restore_lock_name"]
