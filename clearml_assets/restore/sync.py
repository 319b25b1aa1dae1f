"""Sync: one ClearML account follows another. Each newly completed task of the source is archived,
verified and restored into the target.

Pairs come from ``CLEARML_ASSETS_SYNC`` (``personal->original``, several separated by commas). Per pair:
the asset ``[<target>, "clearml_synced_from_<source>"]`` partitioned by source task id, its job, and the
sensor ``clearml_sync_sensor_<source>_to_<target>`` that polls the source for tasks reaching completed /
published (the completed-task sensor's cursor and bounded polling) and requests one run per task and
status change. A run exports the task (reusing a current export), verifies the archive against its
manifest and restores it; the restore is idempotent and resumable, so a repeated or retried run changes
nothing or finishes the copy, and a failed run leaves the copy tagged ``restore-incomplete``.
"""


import os
from pathlib import Path
from typing import Mapping, Sequence

import dagster as dg
from pydantic import Field

from ..archives.assets import is_remote_root, store_options
from ..archives.exporter import ClearMLTaskExporter
from ..archives.packing import verify_archive
from ..translator import account_slug
from ..automation.cursor import ClearMLTaskCursor
from ..automation.polling import FINISHED_STATUSES, account_host, poll_finished_tasks, resolve_project_ids
from ..errors import ArchiveError, ClearMLAssetsError, ClearMLConfigError
from ..locks import ClearMLLocks, export_lock_name, locks_for_instance, locks_from_env
from ..resource import ClearMLResource
from ..run_config import check_ops_config_keys
from .assets import RESTORE_GROUP, restore_metadata
from .engine import TaskRestorer

SYNC_ENV = "CLEARML_ASSETS_SYNC"
SYNC_PROJECTS_ENV = "CLEARML_ASSETS_SYNC_PROJECTS"


def parse_sync_pairs(text: str | None) -> list[tuple[str, str]]:
    """``"personal->original, a->b"`` -> ``[("personal", "original"), ("a", "b")]``.

    Raises:
        ClearMLConfigError: A pair is not ``source->target`` or names the same account twice.
    """
    pairs = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        source, sep, target = (p.strip() for p in item.partition("->"))
        if not sep or not source or not target or source == target:
            raise ClearMLConfigError(f"{SYNC_ENV}: {item.strip()!r} is not a pair of two accounts; write "
                                     "source->target, e.g. personal->original (several separated by commas)")
        pairs.append((source, target))
    return list(dict.fromkeys(pairs))


def _pair(source: str, target: str) -> str:
    return f"{account_slug(source)}_to_{account_slug(target)}"


def sync_partitions(source: str, target: str) -> dg.DynamicPartitionsDefinition:
    """Source task ids of a pair: ``clearml_sync_<source>_to_<target>``."""
    return dg.DynamicPartitionsDefinition(name=f"clearml_sync_{_pair(source, target)}")


def sync_asset_key(source: str, target: str) -> dg.AssetKey:
    """``[<target>, "clearml_synced_from_<source>"]``."""
    return dg.AssetKey([account_slug(target), f"clearml_synced_from_{account_slug(source)}"])


def sync_job_name(source: str, target: str) -> str:
    return f"clearml_sync_job_{_pair(source, target)}"


def sync_sensor_name(source: str, target: str) -> str:
    return f"clearml_sync_sensor_{_pair(source, target)}"


class ClearMLSyncConfig(dg.Config):
    """Run configuration of a sync asset."""

    export_root: str | None = Field(default=None, description="Where the source task's archive is written: a "
                                                              "folder or an object store URL (s3://bucket/prefix, "
                                                              "shared by every host); default "
                                                              "$CLEARML_ASSETS_HOME/exports.")
    project: str | None = Field(default=None, description="Target project (full name); default: the source "
                                                          "task's project name.")
    max_workers: int = Field(default=4, ge=1, le=32, description="Downloads, uploads and event batches in flight.")


def sync_task(clearml: ClearMLResource, source: str, target: str, task_id: str, *,
              export_root: str | Path | None = None, project: str | None = None, max_workers: int = 4,
              locks: ClearMLLocks | None = None) -> tuple[dict, list]:
    """Archive source task ``task_id``, verify the archive, restore it into ``target``.

    The export and the restore each hold their lock in ``locks`` (default: :func:`locks_from_env`), so runs on
    several hosts never export the same task over each other nor both create a copy.

    Returns:
        ``(export facts, restore results)``; restore results are empty when the task is itself a copy
        restored from ``target`` (two accounts syncing both ways never copy a copy back).

    Raises:
        ArchiveError: The export failed or its archive does not match its manifest (nothing restored).
        RestoreError: The restore stopped half-way (the next run finishes it).
    """
    src = clearml.client(source)
    task = src.tasks.get(task_id).raw
    if (task.get("runtime") or {}).get("restore_source_account") == target:
        return {"skipped": f"task {task_id} is a copy restored from account {target!r}"}, []
    locks = locks or locks_from_env()
    exported = _export(clearml, source, task_id, export_root, max_workers, locks)
    problems = verify_archive(exported.archive, exported.manifest)
    if problems:
        raise ArchiveError(f"the archive of task {task_id} ({source}) does not match its manifest "
                           f"({problems[0]}); nothing was restored into {target!r}, re-run to export it again")
    results = TaskRestorer(clearml.client(target), project=project, max_workers=max_workers, locks=locks
                           ).restore_path(exported.archive)
    return {"archive": str(exported.archive), "archive_sha256": exported.manifest["archive"]["sha256"],
            "export_skipped_unchanged": exported.skipped}, results


def _export(clearml: ClearMLResource, source: str, task_id: str, export_root: str | Path | None,
            max_workers: int, locks: ClearMLLocks):
    """The verified export of ``task_id``: under a local root, or built in this host's staging folder and
    published to an object-store root (``s3://...``), whose current export it reuses."""
    src = clearml.client(source)
    remote = None
    root = export_root
    if is_remote_root(str(export_root or "")):
        from ..storage import RemoteExports

        remote = RemoteExports(str(export_root), store_options(src, str(export_root)),
                               staging_root=clearml.staging_dir(str(export_root)))
        root = remote.staging
    exporter = ClearMLTaskExporter(src, source, root, max_workers=max_workers)
    try:
        with locks.hold(export_lock_name(remote.store.url if remote else exporter.root, source, "tasks", task_id)):
            return remote.export_task(exporter, task_id) if remote else exporter.export_task(task_id)
    finally:
        close = getattr(exporter, "close", None)  # an exporter owning its download pool shuts it down
        if close is not None:
            close()


def build_clearml_sync_asset(source: str, target: str, *, group_name: str = RESTORE_GROUP) -> dg.AssetsDefinition:
    """The asset copying source tasks (one partition per source task id) into ``target``."""

    @dg.asset(key=sync_asset_key(source, target), partitions_def=sync_partitions(source, target),
              group_name=group_name, kinds={"clearml"},
              description=f"Tasks of ClearML account {source!r} copied into {target!r}: archived, verified "
                          "and restored (idempotent, resumable; provenance on the copy).")
    def _sync(context: dg.AssetExecutionContext, config: ClearMLSyncConfig,
              clearml: ClearMLResource) -> dg.MaterializeResult:
        check_ops_config_keys(context)
        task_id = context.partition_key
        facts, results = sync_task(clearml, source, target, task_id, export_root=config.export_root,
                                   project=config.project, max_workers=config.max_workers,
                                   locks=locks_for_instance(context.instance))
        if not results:
            context.log.info(facts["skipped"])
            return dg.MaterializeResult(metadata={"skipped": facts["skipped"]})
        context.log.info(f"task {task_id} ({source}) -> {results[0].task_id} ({target})")
        return dg.MaterializeResult(metadata={**restore_metadata(results), "target_task_id": results[0].task_id,
                                              "archive_sha256": facts["archive_sha256"],
                                              "archive_path": dg.MetadataValue.path(facts["archive"])})

    return _sync


def build_clearml_sync_job(source: str, target: str) -> "dg.UnresolvedAssetJobDefinition":
    return dg.define_asset_job(sync_job_name(source, target),
                               selection=dg.AssetSelection.assets(sync_asset_key(source, target)),
                               description=f"Copy tasks of ClearML account {source!r} into {target!r}.")


def build_clearml_sync_sensor(source: str, target: str, *, job: "dg.UnresolvedAssetJobDefinition | None" = None,
                              projects: Sequence[str] | None = None, statuses: Sequence[str] = FINISHED_STATUSES,
                              minimum_interval_seconds: int = 60, max_tasks_per_tick: int = 200,
                              time_budget_seconds: float = 20.0, overlap_seconds: float = 5.0,
                              default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED
                              ) -> dg.SensorDefinition:
    """A sensor requesting one sync run per source task reaching completed/published (run key
    ``<task id>:<status_changed>``); the cursor is the completed-task sensor's (server time + recent ids),
    so nothing is lost or repeated across ticks, restarts and failed ticks."""
    name = sync_sensor_name(source, target)
    parts = sync_partitions(source, target)
    watched = list(projects) if projects else None

    @dg.sensor(name=name, job=job or build_clearml_sync_job(source, target),
               minimum_interval_seconds=minimum_interval_seconds, default_status=default_status,
               description=f"Copies every task of ClearML account {source!r} reaching {'/'.join(statuses)} "
                           f"into {target!r} (archive, verify, restore).")
    def _sensor(context: dg.SensorEvaluationContext, clearml: ClearMLResource) -> dg.SensorResult:
        cursor = ClearMLTaskCursor.from_json(context.cursor)
        try:
            client = clearml.client(source)
            project_ids = resolve_project_ids(client, watched) if watched else None
            if watched and not project_ids:
                return dg.SensorResult(skip_reason=f"None of the projects {watched} exist in {source!r} yet.")
            polled = poll_finished_tasks(client, cursor, project_ids=project_ids, statuses=statuses,
                                         max_tasks=max_tasks_per_tick, time_budget_seconds=time_budget_seconds,
                                         overlap_seconds=overlap_seconds)
        except ClearMLAssetsError as exc:
            raise type(exc)(f"Sensor {name} (ClearML account '{source}' at {account_host(clearml, source)}): "
                            f"{exc} The cursor did not move; the next tick retries from the same point.") from None
        if not polled.tasks:
            return dg.SensorResult(skip_reason=f"No new finished task in {source!r} since "
                                               f"{cursor.time or 'the beginning'}.", cursor=polled.cursor.to_json())
        ids = list(dict.fromkeys(t.id for t in polled.tasks))
        runs = [dg.RunRequest(run_key=f"{t.id}:{t.status_changed}", partition_key=t.id,
                              tags={"clearml/sync": _pair(source, target)}) for t in polled.tasks]
        return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=[parts.build_add_request(ids)],
                               cursor=polled.cursor.to_json())

    return _sensor


def build_sync_definitions(pairs: Sequence[tuple[str, str]] | None = None, *,
                           environ: Mapping[str, str] | None = None, accounts: Sequence[str] | None = None,
                           default_status_running: bool = False) -> dg.Definitions:
    """Restore assets of every account plus, per sync pair, the sync asset, job and sensor.

    Args:
        pairs: ``(source, target)`` pairs; default: parsed from ``CLEARML_ASSETS_SYNC``.
        environ: Variables to read instead of ``os.environ`` (``CLEARML_ASSETS_SYNC``,
            ``CLEARML_ASSETS_SYNC_PROJECTS``: project names/ids the sensors watch, comma separated).
        accounts: Account names to give a restore asset (``[<account>, "clearml_restored_tasks"]``).
        default_status_running: Start the sensors when the code location loads.

    Raises:
        ClearMLConfigError: A pair names an account not in ``accounts`` (when given) or is malformed.
    """
    from .assets import build_clearml_restore_asset

    env = os.environ if environ is None else environ
    pairs = list(pairs) if pairs is not None else parse_sync_pairs(env.get(SYNC_ENV))
    known = list(accounts) if accounts is not None else None
    for pair in pairs:
        missing = [a for a in pair if known is not None and a not in known]
        if missing:
            raise ClearMLConfigError(f"{SYNC_ENV} names account(s) {missing} that are not configured "
                                     f"(known: {', '.join(known or [])}); set CLEARML_KEY_<NAME>/CLEARML_SECRET_<NAME>")
    projects = [p.strip() for p in (env.get(SYNC_PROJECTS_ENV) or "").split(",") if p.strip()] or None
    status = dg.DefaultSensorStatus.RUNNING if default_status_running else dg.DefaultSensorStatus.STOPPED
    assets = [build_clearml_restore_asset(a) for a in (known or [])]
    jobs, sensors = [], []
    for source, target in pairs:
        assets.append(build_clearml_sync_asset(source, target))
        job = build_clearml_sync_job(source, target)
        jobs.append(job)
        sensors.append(build_clearml_sync_sensor(source, target, job=job, projects=projects, default_status=status))
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors)
