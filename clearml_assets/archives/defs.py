"""``build_archive_defs``: the task/project archive assets and checks of every account."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from ..errors import ClearMLConfigError
from ..run_config import config_with_defaults
from ..translator import DagsterClearMLTranslator
from .assets import ClearMLArchiveConfig, build_clearml_project_archive_asset, build_clearml_task_archive_asset
from .checks import build_clearml_archive_checks

PARTITIONS_PER_RUN_ENV = "CLEARML_ASSETS_PARTITIONS_PER_RUN"
DEFAULT_PARTITIONS_PER_RUN = 25


def partitions_per_run(environ: Mapping[str, str] | None = None) -> int:
    """Task ids per backfill run: ``CLEARML_ASSETS_PARTITIONS_PER_RUN``, default 25.

    Raises:
        ClearMLConfigError: The variable is not a whole number from 1 up.
    """
    raw = (os.environ if environ is None else environ).get(PARTITIONS_PER_RUN_ENV, "").strip()
    if not raw:
        return DEFAULT_PARTITIONS_PER_RUN
    if not raw.isdigit() or int(raw) < 1:
        raise ClearMLConfigError(f"{PARTITIONS_PER_RUN_ENV}={raw!r} is not a number of task ids per run; set a "
                                 f"whole number from 1 up (default {DEFAULT_PARTITIONS_PER_RUN})")
    return int(raw)


def build_archive_defs(accounts: list[str], *, export_root: Path | str | None = None,
                       max_partitions_per_run: int | None = None, resources: dict | None = None,
                       translator: DagsterClearMLTranslator | None = None,
                       config_defaults: Mapping[str, Any] | None = None) -> dg.Definitions:
    """Archive assets (``[<account>, "clearml_task_archive"]``, ``[<account>, "clearml_project_archive"]``, or as
    ``translator`` maps them) and their checks, one set per account. The sensor that adds finished tasks as partitions is
    ``clearml_assets.automation.build_clearml_completed_tasks_sensor``.

    Args:
        accounts: ClearML account names known to the ``clearml`` resource.
        export_root: Export root the checks read (the assets take it from run config; keep them equal).
        max_partitions_per_run: Task ids per backfill run (default: :func:`partitions_per_run`, from
            ``CLEARML_ASSETS_PARTITIONS_PER_RUN``, else 25). A Dagster run costs seconds before any work
            (process start, loading the definitions): a backfill of thousands of tasks wants hundreds a run.
        resources: Resources to bind (the lead binds ``clearml`` once for all capabilities).
        translator: Maps each account's archives to asset keys and groups (see
            :class:`clearml_assets.translator.DagsterClearMLTranslator`); pass the same one to
            ``build_automation_defs``.
        config_defaults: Defaults of the assets' run config (``ClearMLArchiveConfig`` fields, e.g.
            ``{"archive_format": "tar.gz"}``); ``export_root`` defaults to ``export_root``.
    """
    per_run = max_partitions_per_run or partitions_per_run()
    defaults = {**({"export_root": str(export_root)} if export_root else {}), **(config_defaults or {})}
    config_cls = config_with_defaults(ClearMLArchiveConfig, defaults)
    assets = []
    checks = []
    for account in accounts:
        assets.append(build_clearml_task_archive_asset(account, max_partitions_per_run=per_run,
                                                       translator=translator, config_cls=config_cls))
        assets.append(build_clearml_project_archive_asset(account, translator=translator, config_cls=config_cls))
        checks.extend(build_clearml_archive_checks(account, export_root, translator))
    return dg.Definitions(assets=assets, asset_checks=checks, resources=resources or {})
