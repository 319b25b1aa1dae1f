"""Named jobs for the common selections, so the Dagster UI launchpad and CLI have targets.

``clearml_training_job`` (datasets -> model), and per account ``clearml_archive_job_<account>`` (task
archives, partitioned by task id) and ``clearml_project_archive_job_<account>`` (project archives,
partitioned by project id). The two archive assets have different partitions, and Dagster allows one
partitions definition per job, hence two archive jobs per account.
"""

from __future__ import annotations

import os
from typing import Mapping

import dagster as dg

from ..archives.assets import project_archive_key, task_archive_key
from ..deployment import EXECUTOR_ENV, deployment_executor
from ..translator import DagsterClearMLTranslator, account_slug

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


def archive_job_executor(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The archive jobs' executor: ``CLEARML_ASSETS_EXECUTOR`` when set (``celery``, ``in_process``, ``multiprocess``),
    else in process. A run of archive partitions is one step and its check: Dagster's default executor would
    start a process for each (seconds apiece, before any work)."""
    env = os.environ if environ is None else environ
    return deployment_executor(env) if env.get(EXECUTOR_ENV, "").strip() else dg.in_process_executor


def build_clearml_archive_job(account: str, translator: DagsterClearMLTranslator | None = None
                              ) -> dg.UnresolvedAssetJobDefinition:
    """The job archiving tasks of ``account`` (one partition = one ClearML task id; :func:`archive_job_executor`)."""
    return dg.define_asset_job(
        clearml_archive_job_name(account), executor_def=archive_job_executor(),
        selection=dg.AssetSelection.assets(task_archive_key(account, translator)),
        description=f"Complete exports of ClearML tasks of account {account!r}, one partition per task id "
                    "(launched by the completed-task sensor, or pick partitions in the launchpad).")


def build_clearml_project_archive_job(account: str, translator: DagsterClearMLTranslator | None = None
                                      ) -> dg.UnresolvedAssetJobDefinition:
    """The job archiving projects of ``account`` (one partition = one ClearML project id; :func:`archive_job_executor`)."""
    return dg.define_asset_job(
        clearml_project_archive_job_name(account), executor_def=archive_job_executor(),
        selection=dg.AssetSelection.assets(project_archive_key(account, translator)),
        description=f"Project archives of ClearML account {account!r}, one partition per project id "
                    "(launched by the project archive schedule, or pick partitions in the launchpad).")
