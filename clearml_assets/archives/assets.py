"""Dagster assets of one ClearML account: a task archive per task id and a project archive per project."""


import json
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import dagster as dg
from pydantic import Field

from ..errors import ArchiveError
from ..locks import ClearMLLocks, export_lock_name, locks_for_instance
from ..resource import ClearMLResource
from ..run_config import check_ops_config_keys
from ..translator import ArchiveKind, ClearMLArchiveRef, DagsterClearMLTranslator, account_slug
from .exporter import DEFAULT_STATUSES, ClearMLTaskExporter, ProjectExportResult, TaskExportResult
from .packing import ARCHIVE_FORMATS, archive_suffix
from .paths import default_export_root

if TYPE_CHECKING:
    from ..storage import RemoteExports

_DEFAULT_TRANSLATOR = DagsterClearMLTranslator()
LOGGED_TASKS = 10  # tasks of a run logged one by one (a log line is a row in Dagster's event log)
METRICS_TABLE_ROWS = 100  # a project's metrics table in the UI (metrics.csv in the archive holds every task)
_KEPT_EVENT_STORAGES: "weakref.WeakSet[Any]" = weakref.WeakSet()


def keep_event_log_connection(instance: dg.DagsterInstance) -> None:
    """Store this process's Dagster events on a kept connection, as dagster-webserver does.

    dagster-postgres opens a PostgreSQL connection for every event it stores (SQLAlchemy's ``NullPool``): three
    for each check evaluation, which ``DAGSTER_EVENT_BATCH_SIZE`` does not batch. A run over a range stores one
    evaluation per partition, so a run of 250 tasks opened some 750 connections (py-spy of a backfill run: 63% of
    its samples in ``psycopg2.connect``). Dagster's own ``optimize_for_webserver`` gives the storage a pooled
    engine (one kept connection, more only while threads store at once); SQLite storages ignore it.
    """
    storage = instance.event_log_storage
    if storage in _KEPT_EVENT_STORAGES:
        return
    storage.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=8)
    _KEPT_EVENT_STORAGES.add(storage)


class ClearMLArchiveConfig(dg.Config):
    """Run configuration of the archive assets.

    Run config goes under its op name, ``<account>__clearml_task_archive`` (the asset key joined by ``__``).
    """

    export_root: str | None = Field(
        default=None, description="Folder the exports go under, or an object store URL (s3://bucket/prefix, "
                                  "gs://, az://: built in a local staging folder, uploaded verified, "
                                  "manifest last); default $CLEARML_ASSETS_HOME/exports (~/.clearml_assets/exports).")
    archive_format: str = Field(default="zip", description=f"Archive file format: one of {', '.join(ARCHIVE_FORMATS)}.")
    force: bool = Field(default=False, description="Re-export even when the published export is current.")
    max_workers: int = Field(default=8, description="Tasks exported at once, and the size of the account's "
                                                    "one pool that reads their scalars and downloads their "
                                                    "files (at most twice this many requests in flight).")
    statuses: list[str] = Field(default=list(DEFAULT_STATUSES),
                                description="Project archive: task statuses to include.")


def clearml_task_partitions(account: str) -> dg.DynamicPartitionsDefinition:
    """The dynamic partitions (ClearML task ids) of ``account``: ``clearml_tasks_<account>``."""
    return dg.DynamicPartitionsDefinition(name=f"clearml_tasks_{account_slug(account)}")


def clearml_project_partitions(account: str) -> dg.DynamicPartitionsDefinition:
    """The dynamic partitions (ClearML project ids) of ``account``: ``clearml_projects_<account>``."""
    return dg.DynamicPartitionsDefinition(name=f"clearml_projects_{account_slug(account)}")


def archive_key(account: str, kind: ArchiveKind, translator: DagsterClearMLTranslator | None = None
                ) -> dg.AssetKey:
    """The key of an account's task or project archive asset, as ``translator`` maps it (default:
    ``[<account>, "clearml_task_archive"]`` / ``[<account>, "clearml_project_archive"]``)."""
    return (translator or _DEFAULT_TRANSLATOR).get_archive_asset_key(ClearMLArchiveRef(account, kind))


def task_archive_key(account: str, translator: DagsterClearMLTranslator | None = None) -> dg.AssetKey:
    """The task archive key of ``account`` (default ``[<account>, "clearml_task_archive"]``)."""
    return archive_key(account, "task", translator)


def project_archive_key(account: str, translator: DagsterClearMLTranslator | None = None) -> dg.AssetKey:
    """The project archive key of ``account`` (default ``[<account>, "clearml_project_archive"]``)."""
    return archive_key(account, "project", translator)


def _archive_asset(account: str, kind: ArchiveKind, max_partitions_per_run: int, group_name: str | None,
                   translator: DagsterClearMLTranslator | None, description: str):
    """The ``@asset`` decorator of an account's task or project archive: key and group from the translator,
    the account's dynamic partitions, backfills of ``max_partitions_per_run`` ids per run."""
    ref = ClearMLArchiveRef(account, kind)
    partitions = clearml_task_partitions if kind == "task" else clearml_project_partitions
    return dg.asset(
        key=archive_key(account, kind, translator), partitions_def=partitions(account),
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=max_partitions_per_run),
        group_name=group_name or (translator or _DEFAULT_TRANSLATOR).get_archive_group_name(ref),
        kinds={"clearml"}, description=description)


def make_exporter(clearml: ClearMLResource, config: ClearMLArchiveConfig, account: str
                  ) -> "tuple[ClearMLTaskExporter, RemoteExports | None]":
    """The exporter of ``account`` from the run's ``clearml`` resource and config, and the object store
    it publishes to when ``export_root`` is a URL (the exporter then writes to the local staging folder)."""
    archive_suffix(config.archive_format)  # an unknown format is refused before the store is touched
    client = clearml.client(account)
    remote = None
    root = resource_export_root(clearml, config.export_root)
    if is_remote_root(config.export_root):
        from ..storage import RemoteExports  # object-store publishing (only when the root is a URL)

        remote = RemoteExports(config.export_root, store_options(client, config.export_root),
                               staging_root=clearml.staging_dir(config.export_root))
        root = remote.staging
    return ClearMLTaskExporter(client, account, root, archive_format=config.archive_format,
                               max_workers=config.max_workers), remote


def is_remote_root(root: Any) -> bool:
    """Whether an export root is an object-store URL (``s3://``, ``gs://``, ``az://``...)."""
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


def resource_export_root(clearml: ClearMLResource, export_root: str | None) -> Path | None:
    """The local export root by the resource's one rule (run config value, else its ``export_root``, else
    ``<home>/exports``); None for an object-store URL."""
    if is_remote_root(export_root):
        return None
    return clearml.export_root_dir(export_root or None)


def store_options(client, url: str) -> dict[str, Any]:
    """fsspec options for ``url`` from the account (``storage_options`` by URL prefix); empty: environment."""
    from ..storage import client_storage_options

    return client_storage_options(client, url)


def remote_metadata(remote: "RemoteExports | None", archive: Path) -> dict[str, Any]:
    """``archive_url`` of the published archive on the object store (nothing for a local export root)."""
    return {"archive_url": remote.store.url_of(remote.rel(archive))} if remote else {}


def _picked_table(picked: dict[str, Any]) -> dg.TableMetadataValue:
    rows = [dg.TableRecord({"metric": name, "series": str(p.get("series") or ""),
                            "last": _num(p.get("last")), "max": _num(p.get("max")),
                            "source": str(p.get("source", ""))})
            for name, p in picked.items()]
    schema = dg.TableSchema(columns=[dg.TableColumn("metric", "string"), dg.TableColumn("series", "string"),
                                     dg.TableColumn("last", "float"), dg.TableColumn("max", "float"),
                                     dg.TableColumn("source", "string")])
    return dg.MetadataValue.table(rows, schema)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def task_metadata(result: TaskExportResult) -> dict[str, Any]:
    """Secret-free metadata of one task export."""
    counts = result.counts
    meta: dict[str, Any] = {
        "task_id": result.task_id, "task_name": result.task_name, "project": result.project_name,
        "skipped_unchanged": result.skipped, "status": str(result.manifest.get("status")),
        "archive_path": dg.MetadataValue.path(str(result.archive)),
        "archive_sha256": str(result.manifest.get("archive", {}).get("sha256")),
        "archive_bytes": int(result.manifest.get("archive", {}).get("size") or 0),
        "folder": dg.MetadataValue.path(str(result.folder)),
        "scalar_points": int(counts.get("scalar_points", 0)), "log_lines": int(counts.get("log_lines", 0)),
        "log_events": int(counts.get("log_events", 0)), "plots": int(counts.get("plots", 0)),
        "files": int(counts.get("files", 0)),
        "bytes": int(counts.get("bytes", 0)), "issues": len(result.issues),
        "server_counts": dg.MetadataValue.json(result.manifest.get("server_counts", {})),
        "seconds": round(result.seconds, 3),
    }
    if result.web_url:
        meta["task_link"] = dg.MetadataValue.url(result.web_url)
    if result.picked_metrics:
        meta["metrics"] = _picked_table(result.picked_metrics)
    if result.issues:
        meta["issue_list"] = dg.MetadataValue.json(result.issues[:50])
    return meta


def build_clearml_task_archive_asset(account: str, *, max_partitions_per_run: int = 25,
                                     group_name: str | None = None,
                                     translator: DagsterClearMLTranslator | None = None,
                                     config_cls: type[ClearMLArchiveConfig] = ClearMLArchiveConfig
                                     ) -> dg.AssetsDefinition:
    """The task archive asset of ``account`` (partitioned by ClearML task id).

    Args:
        account: ClearML account name (resource ``clearml``).
        max_partitions_per_run: Backfills run this many task ids per run.
        group_name: Dagster asset group (default: the translator's, ``clearml_archives``).
        translator: Maps the account's archives to their asset key and group.
        config_cls: The run-config class (``ClearMLArchiveConfig`` with other defaults, see
            ``clearml_assets.run_config.config_with_defaults``).
    """

    @_archive_asset(account, "task", max_partitions_per_run, group_name, translator,
                    f"Complete export of a ClearML task of account {account!r}: task.json, the whole "
                    "console log, every scalar point (parquet + JSON lines), metrics summary, plots, debug "
                    "images, artifacts, models, manifest.json, and one verified archive file.")
    def _task_archive(context: dg.AssetExecutionContext, config: config_cls,  # type: ignore[valid-type]
                      clearml: ClearMLResource) -> dg.MaterializeResult:
        check_ops_config_keys(context)
        keep_event_log_connection(context.instance)
        exporter, remote = make_exporter(clearml, config, account)
        with exporter, locks_for_instance(context.instance) as locks:  # a lock connection per thread, for the run
            return _materialize_tasks(context, config, exporter, account, locks, remote)

    return _task_archive


def _materialize_tasks(context, config: ClearMLArchiveConfig, exporter: ClearMLTaskExporter, account: str,
                       locks: ClearMLLocks, remote: "RemoteExports | None" = None) -> dg.MaterializeResult:
    """Export every task partition of the run (one key, or a whole backfill range)."""
    keys = list(context.partition_keys)
    failures: list[str] = []
    done = skipped = 0
    root = remote.store.url if remote else exporter.root
    documents = exporter.prefetch(keys) if remote is None and len(keys) > 1 else {}

    def run(key: str) -> TaskExportResult:
        with locks.hold(export_lock_name(root, account, "tasks", key)):  # one export of a task at a time, any host
            if remote is not None:
                return remote.export_task(exporter, key, force=config.force)
            return exporter.export_task(key, force=config.force, document=documents.pop(key, None))

    with ThreadPoolExecutor(max_workers=min(len(keys), max(1, config.max_workers))) as pool:
        for key, future in [(k, pool.submit(run, k)) for k in keys]:
            try:
                result = future.result()
            except ArchiveError as exc:
                failures.append(f"{key}: {exc}")
                continue
            done += 1
            skipped += result.skipped
            context.add_asset_metadata({**task_metadata(result), **remote_metadata(remote, result.archive)},
                                       partition_key=key)
            if len(keys) <= LOGGED_TASKS:  # a log line is an event row: a big batch logs its summary only
                context.log.info(f"task {key}: {'unchanged, skipped' if result.skipped else 'exported'} "
                                 f"-> {result.archive}")
    if len(keys) > LOGGED_TASKS:
        context.log.info(f"{done} of {len(keys)} tasks archived ({skipped} unchanged, skipped); "
                         f"{len(failures)} failed")
    if failures:
        raise ArchiveError(f"{len(failures)} of {len(keys)} task archives of account {account!r} failed "
                           f"({done} done): " + "; ".join(failures)[:3000])
    return dg.MaterializeResult()


def export_project_locked(exporter: ClearMLTaskExporter, remote: "RemoteExports | None", locks: ClearMLLocks,
                          account: str, key: str, *, force: bool, statuses: Sequence[str]) -> ProjectExportResult:
    """Export project ``key`` under its project lock, each of its tasks under the lock the task archive asset
    takes: a project export and a task export never write (or upload) one task at once, on any host."""
    root = remote.store.url if remote else exporter.root

    def task_lock(task_id: str):
        return locks.hold(export_lock_name(root, account, "tasks", task_id))

    def export_one(task_id: str, **kwargs: Any) -> TaskExportResult:
        with task_lock(task_id):
            return exporter.export_task(task_id, **kwargs)

    with locks.hold(export_lock_name(root, account, "projects", key)):
        if remote is not None:
            return remote.export_project(exporter, key, force=force, statuses=statuses, task_lock=task_lock)
        return exporter.export_project(key, force=force, statuses=statuses, export_one=export_one)


def project_metadata(result: ProjectExportResult) -> dict[str, Any]:
    """Secret-free metadata of one project export."""
    manifest = result.manifest
    totals = manifest.get("task_totals", {})
    rows = [dg.TableRecord({"task_id": r.task_id, "task_name": r.task_name,
                            **{n: _num((r.picked_metrics.get(n) or {}).get("last"))
                               for n in ("mAP50", "mAP50-95", "precision", "recall", "F1")}})
            for r in result.tasks[:METRICS_TABLE_ROWS]]
    schema = dg.TableSchema(columns=[dg.TableColumn("task_id", "string"), dg.TableColumn("task_name", "string"),
                                     *(dg.TableColumn(n, "float")
                                       for n in ("mAP50", "mAP50-95", "precision", "recall", "F1"))])
    meta: dict[str, Any] = {
        "project_id": result.project_id, "project_name": result.project_name,
        "tasks": len(result.tasks), "tasks_reused": sum(1 for r in result.tasks if r.skipped),
        "skipped_unchanged": result.skipped,
        "archive_path": dg.MetadataValue.path(str(result.archive)),
        "archive_sha256": str(manifest.get("archive", {}).get("sha256")),
        "archive_bytes": int(manifest.get("archive", {}).get("size") or 0),
        "scalar_points": int(totals.get("scalar_points", 0)), "log_lines": int(totals.get("log_lines", 0)),
        "artifact_files": int(totals.get("artifact_files", 0)),
        "files": int(manifest.get("counts", {}).get("files", 0)),
        "bytes": int(manifest.get("counts", {}).get("bytes", 0)),
        "metrics": dg.MetadataValue.table(rows, schema), "seconds": round(result.seconds, 3),
        "status": str(manifest.get("status")),
    }
    if len(result.tasks) > METRICS_TABLE_ROWS:
        meta["metrics_rows"] = (f"the first {METRICS_TABLE_ROWS} of {len(result.tasks)} tasks; every task's "
                                "metrics are in the archive's metrics.csv")
    if result.failures:  # listed in the archive too; its check fails until a run exports them
        meta["failed_tasks"] = dg.MetadataValue.json(result.failures[:50])
    if manifest.get("web_url"):
        meta["project_link"] = dg.MetadataValue.url(manifest["web_url"])
    return meta


def build_clearml_project_archive_asset(account: str, *, max_partitions_per_run: int = 4,
                                        group_name: str | None = None,
                                        translator: DagsterClearMLTranslator | None = None,
                                        config_cls: type[ClearMLArchiveConfig] = ClearMLArchiveConfig
                                        ) -> dg.AssetsDefinition:
    """The project archive asset of ``account`` (partitioned by ClearML project id, or exact name); the
    arguments are those of :func:`build_clearml_task_archive_asset`, with project ids as partitions."""

    @_archive_asset(account, "project", max_partitions_per_run, group_name, translator,
                    f"Every completed task of a ClearML project of account {account!r} (paged, no cap), "
                    "exported like the task archive (current task exports are reused), gathered under "
                    "projects/<project>/ with a metrics table, plus one verified archive file.")
    def _project_archive(context: dg.AssetExecutionContext, config: config_cls,  # type: ignore[valid-type]
                         clearml: ClearMLResource) -> dg.MaterializeResult:
        check_ops_config_keys(context)
        exporter, remote = make_exporter(clearml, config, account)
        with exporter, locks_for_instance(context.instance) as locks:
            for key in context.partition_keys:
                result = export_project_locked(exporter, remote, locks, account, key, force=config.force,
                                               statuses=config.statuses)
                context.add_asset_metadata({**project_metadata(result), **remote_metadata(remote, result.archive)},
                                           partition_key=key)
                context.log.info(f"project {key}: {len(result.tasks)} tasks -> {result.archive}")
                if result.failures:
                    context.log.warning(f"project {key}: {len(result.failures)} task(s) could not be exported and "
                                        f"are listed in the archive as failed (first: {result.failures[0]['task_id']}: "
                                        f"{result.failures[0]['error'][:300]})")
        return dg.MaterializeResult()

    return _project_archive


def default_root_text() -> str:
    """The default export root, for descriptions."""
    return str(default_export_root())


def manifest_summary(manifest: dict[str, Any]) -> str:
    """One line describing a manifest (for logs)."""
    return json.dumps({k: manifest.get(k) for k in ("kind", "task_id", "project_id", "status", "counts")},
                      default=str)[:500]
