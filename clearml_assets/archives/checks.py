"""Asset checks: a published archive matches its manifest (every member's size and sha256)."""


from pathlib import Path
from typing import Any

import dagster as dg

from .assets import (clearml_project_partitions, clearml_task_partitions, project_archive_key,
                     task_archive_key)
from .exporter import find_export
from .manifest import read_manifest
from .packing import verify_archive
from .paths import default_export_root


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
    archive = folder.parent / manifest["archive"]["file"]
    problems = verify_archive(archive, manifest)
    return not problems, {"archive_path": dg.MetadataValue.path(str(archive)),
                          "archive_sha256": manifest["archive"]["sha256"],
                          "members_checked": len(manifest.get("files", {})) + 1,
                          "problems": dg.MetadataValue.json(problems[:50])}


def build_clearml_archive_checks(account: str, export_root: Path | str | None = None
                                 ) -> list[dg.AssetChecksDefinition]:
    """Checks ``archive_matches_manifest`` on the task and project archive assets of ``account``.

    Args:
        account: ClearML account name.
        export_root: The export root the assets use (default ``$CLEARML_ASSETS_HOME/exports``).
    """
    checks = []
    for kind, key, partitions in (("tasks", task_archive_key(account), clearml_task_partitions(account)),
                                  ("projects", project_archive_key(account),
                                   clearml_project_partitions(account))):
        def make(kind: str = kind, key: dg.AssetKey = key, partitions=partitions):
            @dg.asset_check(asset=key, name="archive_matches_manifest", partitions_def=partitions,
                            description="Re-reads the published archive: every member's size and sha256 "
                                        "match manifest.json, and the archive's own sha256 matches.")
            def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
                root = Path(export_root).expanduser() if export_root else default_export_root()
                passed, meta = verify_export(root, account, kind, context.partition_key)
                return dg.AssetCheckResult(passed=passed, metadata=meta)

            return _check

        checks.append(make())
    return checks
