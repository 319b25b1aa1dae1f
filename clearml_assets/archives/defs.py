"""``build_archive_defs``: the task/project archive assets and checks of every account."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from ..run_config import config_with_defaults
from ..translator import DagsterClearMLTranslator
from .assets import ClearMLArchiveConfig, build_clearml_project_archive_asset, build_clearml_task_archive_asset
from .checks import build_clearml_archive_checks


def build_archive_defs(accounts: list[str], *, export_root: Path | str | None = None,
                       max_partitions_per_run: int = 25, resources: dict | None = None,
                       translator: DagsterClearMLTranslator | None = None,
                       config_defaults: Mapping[str, Any] | None = None) -> dg.Definitions:
    """Archive assets (``[<account>, "clearml_task_archive"]``, ``[<account>, "clearml_project_archive"]``, or as
    ``translator`` maps them) and their checks, one set per account. The sensor that adds finished tasks as partitions is
    ``clearml_assets.automation.build_clearml_completed_tasks_sensor``.

    Args:
        accounts: ClearML account names known to the ``clearml`` resource.
        export_root: Export root the checks read (the assets take it from run config; keep them equal).
        max_partitions_per_run: Task ids per backfill run.
        resources: Resources to bind (the lead binds ``clearml`` once for all capabilities).
        translator: Maps each account's archives to asset keys and groups (see
            :class:`clearml_assets.translator.DagsterClearMLTranslator`); pass the same one to
            ``build_automation_defs``.
        config_defaults: Defaults of the assets' run config (``ClearMLArchiveConfig`` fields, e.g.
            ``{"archive_format": "tar.gz"}``); ``export_root`` defaults to ``export_root``.
    """
    defaults = {**({"export_root": str(export_root)} if export_root else {}), **(config_defaults or {})}
    config_cls = config_with_defaults(ClearMLArchiveConfig, defaults)
    assets = []
    checks = []
    for account in accounts:
        assets.append(build_clearml_task_archive_asset(account, max_partitions_per_run=max_partitions_per_run,
                                                       translator=translator, config_cls=config_cls))
        assets.append(build_clearml_project_archive_asset(account, translator=translator, config_cls=config_cls))
        checks.extend(build_clearml_archive_checks(account, export_root, translator))
    return dg.Definitions(assets=assets, asset_checks=checks, resources=resources or {})
