"""How ClearML objects become Dagster asset keys and groups (like dagster-dbt's ``DagsterDbtTranslator``).

Subclass :class:`DagsterClearMLTranslator` and override a method to map your own ClearML projects,
datasets, models and accounts onto your asset graph without forking the factories, then hand the one
translator to every factory (``build_definitions(translator=...)`` does), e.g.::

    class TeamTranslator(DagsterClearMLTranslator):
        def get_dataset_asset_key(self, dataset):
            return dg.AssetKey(["vision", dataset.project.replace("/", "_"), dataset.name])

        def get_archive_asset_key(self, archive):
            return dg.AssetKey(["backups", archive.account, f"{archive.kind}_archive"])

    defs = build_definitions(translator=TeamTranslator())
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import dagster as dg

_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_]")

DatasetStage = Literal["raw", "raw_external", "curated", "training_view"]
ArchiveKind = Literal["task", "project"]


def account_slug(account: str) -> str:
    """``account`` as an identifier usable in Dagster names (``[A-Za-z0-9_]``)."""
    return _NOT_IN_NAMES.sub("_", account) or "default"


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


@dataclass(frozen=True)
class ClearMLModelRef:
    """The ClearML output model the training asset registers.

    Attributes:
        project: ClearML project of the training tasks and models.
        name: Output model name.
    """

    project: str
    name: str


@dataclass(frozen=True)
class ClearMLArchiveRef:
    """The archives of one ClearML account.

    Attributes:
        account: Account name (as the ``clearml`` resource knows it).
        kind: ``task`` (one partition per task id) or ``project`` (one per project id).
    """

    account: str
    kind: ArchiveKind


class DagsterClearMLTranslator:
    """The default mapping: ``<key_prefix>/<dataset name>`` dataset keys (``..._clearml_latest`` for the
    observed raw dataset), ``training/<model name>`` for the model, ``<account>/clearml_<kind>_archive`` for
    the archives, and one group per capability.

    Args:
        key_prefix: Prefix of every dataset asset key.
        group_name: Group of every dataset asset.
        model_key_prefix: Prefix of the model asset key.
        model_group_name: Group of the model asset.
        archive_group_name: Group of the archive assets.
    """

    def __init__(self, key_prefix: tuple[str, ...] | list[str] = ("datasets",), group_name: str = "datasets", *,
                 model_key_prefix: tuple[str, ...] | list[str] = ("training",), model_group_name: str = "training",
                 archive_group_name: str = "clearml_archives"):
        self.key_prefix = tuple(key_prefix)
        self.group_name = group_name
        self.model_key_prefix = tuple(model_key_prefix)
        self.model_group_name = model_group_name
        self.archive_group_name = archive_group_name

    def get_dataset_asset_key(self, dataset: ClearMLDatasetRef) -> dg.AssetKey:
        """The asset key of a dataset stage."""
        suffix = "_clearml_latest" if dataset.stage == "raw_external" else ""
        return dg.AssetKey([*self.key_prefix, f"{dataset.name}{suffix}"])

    def get_dataset_group_name(self, dataset: ClearMLDatasetRef) -> str:
        """The asset group of a dataset stage."""
        return self.group_name

    def get_model_asset_key(self, model: ClearMLModelRef) -> dg.AssetKey:
        """The asset key of the trained model."""
        return dg.AssetKey([*self.model_key_prefix, model.name])

    def get_model_group_name(self, model: ClearMLModelRef) -> str:
        """The asset group of the trained model."""
        return self.model_group_name

    def get_archive_asset_key(self, archive: ClearMLArchiveRef) -> dg.AssetKey:
        """The asset key of an account's task or project archives."""
        return dg.AssetKey([account_slug(archive.account), f"clearml_{archive.kind}_archive"])

    def get_archive_group_name(self, archive: ClearMLArchiveRef) -> str:
        """The asset group of an account's archives."""
        return self.archive_group_name
