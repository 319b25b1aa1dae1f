"""How ClearML objects become Dagster asset keys, groups and descriptions (like dagster-dbt's
``DagsterDbtTranslator``).

Subclass :class:`DagsterClearMLTranslator` and override a method to map your own ClearML projects and
datasets onto your asset graph without forking the factories, e.g.::

    class TeamTranslator(DagsterClearMLTranslator):
        def get_dataset_asset_key(self, dataset):
            return dg.AssetKey(["vision", dataset.project.replace("/", "_"), dataset.name])

    build_dataset_defs(dataset_project="Vision/Detection", translator=TeamTranslator())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dagster as dg

DatasetStage = Literal["raw", "raw_external", "curated", "training_view"]


@dataclass(frozen=True)
class ClearMLDatasetRef:
    """One ClearML dataset the definitions build an asset for.

    Attributes:
        project: The dataset's ClearML project (as given to ``Dataset.create``).
        name: The ClearML dataset name.
        stage: Its role: ``raw``, ``raw_external`` (its newest version observed in ClearML), ``curated``,
            ``training_view``.
    """

    project: str
    name: str
    stage: DatasetStage


class DagsterClearMLTranslator:
    """The default mapping: ``<key_prefix>/<dataset name>`` keys (``..._clearml_latest`` for the observed raw
    dataset), one group for every dataset asset.

    Args:
        key_prefix: Prefix of every dataset asset key.
        group_name: Group of every dataset asset.
    """

    def __init__(self, key_prefix: tuple[str, ...] | list[str] = ("datasets",), group_name: str = "datasets"):
        self.key_prefix = tuple(key_prefix)
        self.group_name = group_name

    def get_dataset_asset_key(self, dataset: ClearMLDatasetRef) -> dg.AssetKey:
        """The asset key of a dataset stage."""
        suffix = "_clearml_latest" if dataset.stage == "raw_external" else ""
        return dg.AssetKey([*self.key_prefix, f"{dataset.name}{suffix}"])

    def get_dataset_group_name(self, dataset: ClearMLDatasetRef) -> str:
        """The asset group of a dataset stage."""
        return self.group_name
