"""The restore asset of one target account: a task or project archive restored into it (run config names
the archive)."""


from typing import Any

import dagster as dg
from pydantic import Field

from ..translator import account_slug
from ..locks import locks_for_instance
from ..resource import ClearMLResource
from ..run_config import check_ops_config_keys
from .engine import RestoreResult, TaskRestorer

RESTORE_ASSET_NAME = "clearml_restored_tasks"
RESTORE_GROUP = "clearml_restore"


class ClearMLRestoreConfig(dg.Config):
    """Run configuration of the restore asset.

    Run config goes under its op name, ``<account>__clearml_restored_tasks`` (the asset key joined by ``__``).
    """

    archive: str = Field(description="Task or project archive (.zip/.tar.gz/.tar.xz/.tar) or export folder made by "
                                     "clearml-assets, on the machine the run executes on.")
    project: str | None = Field(default=None, description="Target project (full name); default: the source "
                                                          "task's project name.")
    max_workers: int = Field(default=4, ge=1, le=32, description="Uploads and event batches in flight at once.")


def restore_asset_key(account: str) -> dg.AssetKey:
    """``[<account>, "clearml_restored_tasks"]``."""
    return dg.AssetKey([account_slug(account), RESTORE_ASSET_NAME])


def restore_metadata(results: list[RestoreResult]) -> dict[str, Any]:
    """Secret-free metadata of a restore (ids, what was done, counts)."""
    rows = [r.as_dict() for r in results]
    meta: dict[str, Any] = {
        "tasks": len(results), "created": sum(r.created for r in results),
        "resumed": sum(r.resumed for r in results), "unchanged": sum(r.unchanged for r in results),
        "task_ids": dg.MetadataValue.json({r.source_task_id: r.task_id for r in results}),
        "details": dg.MetadataValue.json(rows[:200]),
    }
    if len(results) == 1 and results[0].web_url:
        meta["task_link"] = dg.MetadataValue.url(results[0].web_url)
    return meta


def build_clearml_restore_asset(account: str, *, group_name: str = RESTORE_GROUP) -> dg.AssetsDefinition:
    """The asset restoring the archive named in run config into ClearML account ``account``.

    A second materialization of the same archive finds the copies (provenance tag) and writes nothing;
    one that died half-way is finished by the next.
    """

    @dg.asset(key=restore_asset_key(account), group_name=group_name, kinds={"clearml"},
              description=f"A task or project archive made by clearml-assets, restored into ClearML account "
                          f"{account!r}: every scalar, log line, plot, debug image, artifact and model, "
                          "with provenance (idempotent and resumable).")
    def _restore(context: dg.AssetExecutionContext, config: ClearMLRestoreConfig,
                 clearml: ClearMLResource) -> dg.MaterializeResult:
        check_ops_config_keys(context)
        restorer = TaskRestorer(clearml.client(account), project=config.project, max_workers=config.max_workers,
                                locks=locks_for_instance(context.instance))
        results = restorer.restore_path(config.archive)
        for r in results:
            context.log.info(f"task {r.source_task_id} -> {r.task_id}: "
                             f"{'unchanged' if r.unchanged else 'resumed' if r.resumed else 'restored'}")
        return dg.MaterializeResult(metadata=restore_metadata(results))

    return _restore
