"""Asset checks: a published archive matches its manifest (every member's size and sha256), and the manifest
is signed with ``CLEARML_ASSETS_ARCHIVE_KEY`` when that is set."""


from pathlib import Path
from typing import Any, Iterator

import dagster as dg

from ..resource import ClearMLResource
from ..translator import DagsterClearMLTranslator
from .assets import (clearml_project_partitions, clearml_task_partitions, is_remote_root, keep_event_log_connection,
                     project_archive_key, resource_export_root, store_options, task_archive_key)
from .publish import find_export
from .manifest import read_manifest
from .packing import verify_archive
from .signing import archive_key, signature_problem


def verify_export(root: Path, account: str, kind: str, obj_id: str) -> tuple[bool, dict[str, Any]]:
    """Re-read the published archive of a task/project id and compare it with its manifest.

    Returns:
        ``(passed, metadata)``.
    """
    folder = find_export(root, account, kind, obj_id)
    if folder is None:
        return False, {"problem": f"no published export of {kind[:-1]} {obj_id!r} under {root}"}
    manifest = read_manifest(folder)
    if not manifest or not manifest.get("complete") or not manifest.get("archive"):
        return False, {"problem": f"{folder} has no complete manifest", "folder": str(folder)}
    if manifest.get("status") == "incomplete":
        lacking = [i for i in manifest.get("issues", []) if "error" in i][:20]
        return False, {"problem": "the archive lacks data the server holds (status incomplete); the next "
                                  "materialization exports it again", "folder": str(folder),
                       "issues": dg.MetadataValue.json(lacking)}
    key = archive_key()
    signature = signature_problem(manifest, key) if key is not None else None
    if signature:
        return False, {"problem": f"the manifest is refused under CLEARML_ASSETS_ARCHIVE_KEY: {signature}; the next "
                                  "materialization exports it again, signed", "folder": str(folder)}
    archive = folder.parent / manifest["archive"]["file"]
    problems = verify_archive(archive, manifest)
    return not problems, {"archive_path": dg.MetadataValue.path(str(archive)),
                          "archive_sha256": manifest["archive"]["sha256"],
                          "members_checked": len(manifest.get("files", {})) + 1,
                          "problems": dg.MetadataValue.json(problems[:50])}


def run_export_root(context, asset_key: dg.AssetKey, default: Path | str | None,
                    clearml: ClearMLResource) -> Path | str:
    """The export root the asset used in this run, by the asset's own rule: its run config ``export_root``
    (else ``default``), resolved by the ``clearml`` resource (its ``export_root``, else ``<home>/exports``)."""
    ops = (context.run.run_config or {}).get("ops") or {}
    op_config = (ops.get(asset_key.to_python_identifier()) or {}).get("config") or {}
    root = op_config.get("export_root") or (str(default) if default else None)
    if is_remote_root(root):
        return str(root)
    return resource_export_root(clearml, root)


def verify_remote(store: Any, account: str, kind: str, obj_id: str) -> tuple[bool, dict[str, Any]]:
    """``verify_export`` on an object store (every file and the archive re-read from the store)."""
    from ..storage import check_remote_export

    passed, meta = check_remote_export(store, account, kind, obj_id)
    meta = {k: v for k, v in meta.items() if v is not None}
    if "archive_url" in meta:
        meta["archive_url"] = dg.MetadataValue.url(meta["archive_url"])
    for name in ("problems", "issues"):
        if name in meta:
            meta[name] = dg.MetadataValue.json(meta[name])
    return passed, meta


def verify_partitions(root: Path | str, account: str, kind: str, keys: list[str],
                      storage_options: dict[str, Any] | None = None) -> dict[str, tuple[bool, dict[str, Any]]]:
    """``(passed, metadata)`` of every partition of the run (a backfill runs a range in one run)."""
    if is_remote_root(root):
        from ..storage import ArchiveStore

        store = ArchiveStore(str(root), storage_options)
        return {key: verify_remote(store, account, kind, key) for key in keys}
    return {key: verify_export(Path(root), account, kind, key) for key in keys}


def partition_evaluations(context, key: dg.AssetKey, check_name: str,
                          results: dict[str, tuple[bool, dict[str, Any]]]) -> Iterator[Any]:
    """One ``AssetCheckEvaluation`` per partition of the run, each naming its partition and the
    materialization it checked, then the check's output.

    Dagster records a partitioned check as planned for every partition of the run; an
    ``AssetCheckResult`` over a range carries no partition, so those partitions would stay "planned"
    (the UI shows them skipped). One evaluation per partition resolves every one of them.
    """
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData)

    keep_event_log_connection(context.instance)  # an evaluation per partition: not a connection each
    latest = latest_materializations(context.instance, key, list(results))
    for partition, (passed, meta) in results.items():
        record = latest.get(partition)
        target = (AssetCheckEvaluationTargetMaterializationData(
            run_id=record.event_log_entry.run_id, storage_id=record.storage_id,
            timestamp=record.timestamp) if record else None)
        yield dg.AssetCheckEvaluation(
            asset_key=key, check_name=check_name, passed=passed,
            metadata=meta, target_materialization_data=target,
            severity=dg.AssetCheckSeverity.ERROR, blocking=False, partition=partition)
    yield dg.Output(None)


def latest_materializations(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]) -> dict[str, Any]:
    """The newest materialization record of each partition: one query for the run's partitions (a range of
    thousands: one query, not one each), then one per partition that query did not reach."""
    found: dict[str, Any] = {}
    for start in range(0, len(partitions), 1000):
        part = partitions[start:start + 1000]
        for record in instance.fetch_materializations(  # newest first: the first record of a partition is its latest
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=part), limit=len(part)).records:
            found.setdefault(record.partition_key, record)
    for partition in [p for p in partitions if p not in found]:  # not materialized by this run (e.g. failed)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
        if records:
            found[partition] = records[0]
    return found


def build_clearml_archive_checks(account: str, export_root: Path | str | None = None,
                                 translator: DagsterClearMLTranslator | None = None
                                 ) -> list[dg.AssetChecksDefinition]:
    """Checks ``archive_matches_manifest`` on the task and project archive assets of ``account``.

    The check reads the export root the asset used in the same run (its run config ``export_root``),
    falling back to ``export_root`` and then the resource's export root; over a partition range it
    checks every partition of the range and records one evaluation per partition.

    Args:
        account: ClearML account name.
        export_root: The export root the assets use by default.
        translator: The translator the archive assets were built with (their keys).
    """
    checks = []
    for kind, key, partitions in (("tasks", task_archive_key(account, translator), clearml_task_partitions(account)),
                                  ("projects", project_archive_key(account, translator),
                                   clearml_project_partitions(account))):
        def make(kind: str = kind, key: dg.AssetKey = key, partitions=partitions):
            @dg.asset_check(asset=key, name="archive_matches_manifest", partitions_def=partitions,
                            description="Re-reads the published archive: every member's size and sha256 "
                                        "match manifest.json, the archive's own sha256 matches, and the "
                                        "manifest says nothing the server holds is missing.")
            def _check(context: dg.AssetCheckExecutionContext, clearml: ClearMLResource):
                root = run_export_root(context, key, export_root, clearml)
                options = store_options(clearml.client(account), str(root)) if is_remote_root(root) else None
                results = verify_partitions(root, account, kind, list(context.partition_keys), options)
                yield from partition_evaluations(context, key, "archive_matches_manifest", results)

            return _check

        checks.append(make())
    return checks
