"""``build_training_defs``: the training capability's Dagster definitions."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import dagster as dg

from ..translator import ClearMLDatasetRef, DagsterClearMLTranslator
from .assets import ClearMLTrainingNames, build_training_assets
from .checks import build_model_checks


def build_training_defs(
    *,
    project: str = "clearml_assets_demo",
    model_name: str = "shapes_yolo",
    training_view_key: Sequence[str] | dg.AssetKey | None = None,
    account: str | None = None,
    key_prefix: Sequence[str] = ("training",),
    group_name: str = "training",
    metric_floor: float = 0.3,
    clearml: Any = None,
    translator: DagsterClearMLTranslator | None = None,
    config_defaults: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """The YOLO model asset ``training/shapes_yolo`` and its ``main_metric_floor`` check.

    The model asset depends on the training view asset and trains on the ClearML ``dataset_id``
    recorded in that asset's latest materialization metadata. The resource key is ``clearml``
    (a ``ClearMLResource``).

    Args:
        project: ClearML project of the training tasks and models (champion scope).
        model_name: Output model name and asset key name.
        training_view_key: Key of the upstream training view asset; default: the key ``translator`` gives the
            ``shapes_training_view`` dataset of ``project`` (``datasets/shapes_training_view``).
        account: Account to train on; None = the resource's default.
        key_prefix: Asset key prefix of the model asset (without a translator).
        group_name: Dagster asset group (without a translator; with one, its model group).
        metric_floor: Floor of the main metric for the check.
        clearml: A ``ClearMLResource`` bound as resource ``clearml``; None leaves it to the merged
            Definitions.
        translator: Maps the model (and the default training view) to asset keys and the model's group.
        config_defaults: Defaults of the model asset's run config (``ClearMLTrainingConfig`` fields, e.g.
            ``{"execution": "queue", "queue": "gpu", "epochs": 50}``).
    """
    names = ClearMLTrainingNames(project=project, model_name=model_name, account=account,
                                 key_prefix=tuple(key_prefix), translator=translator,
                                 training_view_key=_view_key(training_view_key, project, translator))
    group = translator.get_model_group_name(names.model_ref) if translator else group_name
    return dg.Definitions(assets=build_training_assets(names, group_name=group, config_defaults=config_defaults),
                          asset_checks=[build_model_checks(names.model_key, metric_floor=metric_floor)],
                          resources={"clearml": clearml} if clearml is not None else None)


def _view_key(key: Sequence[str] | dg.AssetKey | None, project: str,
              translator: DagsterClearMLTranslator | None) -> dg.AssetKey:
    if key is not None:
        return key if isinstance(key, dg.AssetKey) else dg.AssetKey(list(key))
    view = ClearMLDatasetRef(project, "shapes_training_view", "training_view")
    return (translator or DagsterClearMLTranslator()).get_dataset_asset_key(view)
