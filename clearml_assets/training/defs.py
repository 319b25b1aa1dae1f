"""``build_training_defs``: the training capability's Dagster definitions."""

from __future__ import annotations

from typing import Any, Sequence

import dagster as dg

from .assets import ClearMLTrainingNames, build_training_assets
from .checks import build_model_checks


def build_training_defs(
    *,
    project: str = "clearml_assets_demo",
    model_name: str = "shapes_yolo",
    training_view_key: Sequence[str] | dg.AssetKey = ("datasets", "shapes_training_view"),
    account: str | None = None,
    key_prefix: Sequence[str] = ("training",),
    group_name: str = "training",
    metric_floor: float = 0.3,
    clearml: Any = None,
) -> dg.Definitions:
    """The YOLO model asset ``training/shapes_yolo`` and its ``main_metric_floor`` check.

    The model asset depends on the training view asset and trains on the ClearML ``dataset_id``
    recorded in that asset's latest materialization metadata. The resource key is ``clearml``
    (a ``ClearMLResource``).

    Args:
        project: ClearML project of the training tasks and models (champion scope).
        model_name: Output model name and asset key name.
        training_view_key: Key of the upstream training view asset.
        account: Account to train on; None = the resource's default.
        key_prefix: Asset key prefix of the model asset.
        group_name: Dagster asset group.
        metric_floor: Floor of the main metric for the check.
        clearml: A ``ClearMLResource`` bound as resource ``clearml``; None leaves it to the merged
            Definitions.
    """
    view_key = training_view_key if isinstance(training_view_key, dg.AssetKey) else dg.AssetKey(list(training_view_key))
    names = ClearMLTrainingNames(project=project, model_name=model_name, account=account,
                                 key_prefix=tuple(key_prefix), training_view_key=view_key)
    return dg.Definitions(assets=build_training_assets(names, group_name=group_name),
                          asset_checks=[build_model_checks(names.model_key, metric_floor=metric_floor)],
                          resources={"clearml": clearml} if clearml is not None else None)
