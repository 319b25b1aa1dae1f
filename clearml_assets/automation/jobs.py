"""Named jobs for the common selections, so the Dagster UI launchpad and CLI have targets.

``clearml_training_job`` (datasets -> model), and per account ``clearml_archive_job_<account>`` (task
archives, partitioned by task id) and ``clearml_project_archive_job_<account>`` (project archives,
partitioned by project id). The two archive assets have different partitions, and Dagster allows one
partitions definition per job, hence two archive jobs per account.
"""

from __future__ import annotations

import dagster as dg

from ..archives.assets import project_archive_key, task_archive_key
from ..translator import account_slug
from ..translator import DagsterClearMLTranslator

CLEARML_TRAINING_JOB = "clearml_training_job"
DATASETS_GROUP = "datasets"
TRAINING_GROUP = "training"


def clearml_archive_job_name(account: str) -> str:
    """``clearml_archive_job_<account>``: the task archive job of ``account``."""
    return f"clearml_archive_job_{account_slug(account)}"


def clearml_project_archive_job_name(account: str) -> str:
    """``clearml_project_archive_job_<account>``: the project archive job of ``account``."""
    return f"clearml_project_archive_job_{account_slug(account)}"


def build_clearml_training_job(dataset_group: str = DATASETS_GROUP, training_group: str = TRAINING_GROUP,
                               name: str = CLEARML_TRAINING_JOB) -> dg.UnresolvedAssetJobDefinition:
    """The job materializing the dataset versions and the model trained on them.

    Args:
        dataset_group: Asset group of the dataset assets.
        training_group: Asset group of the model asset.
        name: Job name.
    """
    return dg.define_asset_job(
        name, selection=dg.AssetSelection.groups(dataset_group, training_group),
        description="Dataset versions (raw -> curated -> training view) and the YOLO model trained on them.")


def build_clearml_archive_job(account: str, translator: DagsterClearMLTranslator | None = None
                              ) -> dg.UnresolvedAssetJobDefinition:
    """The job archiving tasks of ``account`` (one partition = one ClearML task id)."""
    return dg.define_asset_job(
        clearml_archive_job_name(account),
        selection=dg.AssetSelection.assets(task_archive_key(account, translator)),
        description=f"Complete exports of ClearML tasks of account {account!r}, one partition per task id "
                    "(launched by the completed-task sensor, or pick partitions in the launchpad).")


def build_clearml_project_archive_job(account: str, translator: DagsterClearMLTranslator | None = None
                                      ) -> dg.UnresolvedAssetJobDefinition:
    """The job archiving projects of ``account`` (one partition = one ClearML project id)."""
    return dg.define_asset_job(
        clearml_project_archive_job_name(account),
        selection=dg.AssetSelection.assets(project_archive_key(account, translator)),
        description=f"Project archives of ClearML account {account!r}, one partition per project id "
                    "(launched by the project archive schedule, or pick partitions in the launchpad).")
