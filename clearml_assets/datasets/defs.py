"""``build_dataset_defs``: the dataset capability's Dagster definitions."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import dagster as dg

from ..resource import ClearMLResource
from ..translator import DagsterClearMLTranslator
from .assets import build_dataset_assets
from .config import DEFAULT_PROJECT, ClearMLDatasetNames, check_dataset_names
from .checks import build_training_view_checks
from .observe import build_dataset_observation


def build_dataset_defs(
    *,
    dataset_project: str = DEFAULT_PROJECT,
    raw_name: str = "shapes_raw",
    curated_name: str = "shapes_curated",
    training_view_name: str = "shapes_training_view",
    account: str | None = None,
    key_prefix: Sequence[str] = ("datasets",),
    group_name: str = "datasets",
    min_class_fraction: float = 0.05,
    observe_interval_minutes: int | None = None,
    clearml: ClearMLResource | None = None,
    translator: DagsterClearMLTranslator | None = None,
    config_defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> dg.Definitions:
    """Assets raw -> curated -> training view, the raw observation, and the training view checks.

    Asset keys (with the default prefix): ``datasets/shapes_raw``, ``datasets/shapes_raw_clearml_latest``
    (observable source: newest raw version in ClearML, including uploads outside Dagster),
    ``datasets/shapes_curated``, ``datasets/shapes_training_view``. The resource key is ``clearml``
    (a ``ClearMLResource``); the caller supplies it.

    Args:
        dataset_project: ClearML project of the three datasets (overridable per run in config).
        raw_name: Dataset (and asset key) name of the raw stage.
        curated_name: Dataset name of the curated stage.
        training_view_name: Dataset name of the training view.
        account: Account for every dataset; None = the resource's default.
        key_prefix: Asset key prefix.
        group_name: Dagster asset group.
        min_class_fraction: Class balance check threshold.
        observe_interval_minutes: If set, a schedule observes the raw dataset that often.
        clearml: A ``ClearMLResource`` bound as resource ``clearml``; None leaves it to the merged
            Definitions.
        translator: Maps each ClearML dataset to its asset key and group (overrides ``key_prefix`` and
            ``group_name``); see :class:`clearml_assets.translator.DagsterClearMLTranslator`.
        config_defaults: Run-config defaults by stage (``raw``, ``curated``, ``training_view``), e.g.
            ``{"raw": {"source_folder": "/data/shapes", "demo": False}}`` (the components set them).

    Raises:
        ClearMLConfigError: A project or dataset name is shorter than the 3 characters ClearML needs.
    """
    for dataset_name in (raw_name, curated_name, training_view_name):
        check_dataset_names(dataset_project, dataset_name)
    names = ClearMLDatasetNames(project=dataset_project, raw=raw_name, curated=curated_name,
                                training_view=training_view_name, account=account, key_prefix=tuple(key_prefix),
                                translator=translator)
    assets: list = build_dataset_assets(names, group_name=group_name, config_defaults=config_defaults)
    observation = build_dataset_observation(names.raw_external_key, project=dataset_project, name=raw_name,
                                             account=account, group_name=names.group("raw_external", group_name))
    checks = build_training_view_checks(names.training_view_key, min_class_fraction=min_class_fraction)
    schedules = []
    if observe_interval_minutes:
        job = dg.define_asset_job(f"observe_{raw_name}", selection=[names.raw_external_key])
        schedules.append(dg.ScheduleDefinition(job=job, cron_schedule=f"*/{observe_interval_minutes} * * * *"))
    return dg.Definitions(assets=[*assets, observation], asset_checks=[checks], schedules=schedules,
                          resources={"clearml": clearml} if clearml is not None else None)
