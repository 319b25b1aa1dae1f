"""``build_automation_defs``: sensors, schedules and named jobs of every account."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import dagster as dg

from ..archives.defs import partitions_per_run
from ..translator import DagsterClearMLTranslator
from .jobs import (DATASETS_GROUP, TRAINING_GROUP, build_clearml_archive_job, build_clearml_project_archive_job,
                   build_clearml_training_job)
from .schedules import (DEFAULT_PROJECT_ARCHIVE_CRON, build_clearml_project_archive_schedule,
                        build_clearml_retraining_schedule)
from .missing import build_clearml_missing_archives_sensor
from .sensors import build_clearml_completed_tasks_sensor

_FROM_ENV = object()
_OFF = ("", "off", "none", "disabled")


def _projects_from_env(account: str, env: Mapping[str, str]) -> list[str] | None:
    raw = env.get(f"CLEARML_ASSETS_PROJECTS_{account.upper()}", env.get("CLEARML_ASSETS_PROJECTS", ""))
    names = [p.strip() for p in raw.split(",") if p.strip()]
    return names or None


def _cron(value: str | None | object, env: Mapping[str, str], variable: str, default: str | None) -> str | None:
    """A cron given, or from ``variable`` (else ``default``); None when unset or ``off``."""
    if value is _FROM_ENV:
        value = env.get(variable, default)
    return None if value is None or str(value).strip().lower() in _OFF else str(value)


def _watched(account: str, projects: Mapping[str, Sequence[str]] | Sequence[str] | None | object,
             env: Mapping[str, str]) -> list[str] | None:
    """The projects the account's sensor and schedule watch (None: every project)."""
    if projects is _FROM_ENV:
        return _projects_from_env(account, env)
    if isinstance(projects, Mapping):
        return list(projects.get(account) or []) or None
    return list(projects or []) or None  # type: ignore[arg-type]


def build_automation_defs(
    accounts: Sequence[str],
    *,
    projects: Mapping[str, Sequence[str]] | Sequence[str] | None | object = _FROM_ENV,
    sensor_interval_seconds: int = 60,
    project_archive_cron: str | None | object = _FROM_ENV,
    retraining_cron: str | None | object = _FROM_ENV,
    include_training_job: bool = True,
    dataset_group: str = DATASETS_GROUP,
    training_group: str = TRAINING_GROUP,
    default_status_running: bool = False,
    environ: Mapping[str, str] | None = None,
    translator: DagsterClearMLTranslator | None = None,
) -> dg.Definitions:
    """Per account: the completed-task sensor, the project archive schedule and the two archive jobs;
    plus ``clearml_training_job`` and the (optional) retraining schedule. Everything starts stopped.

    Names: ``clearml_completed_tasks_sensor_<account>``, ``clearml_missing_archives_sensor_<account>`` (archives
    every missing or failed task partition, :mod:`.missing`), ``clearml_project_archive_schedule_<account>``,
    ``clearml_archive_job_<account>``, ``clearml_project_archive_job_<account>``, ``clearml_training_job``,
    ``clearml_retraining_schedule``. Arguments left out come from the environment:

    * ``CLEARML_ASSETS_PROJECTS_<ACCOUNT>`` / ``CLEARML_ASSETS_PROJECTS``: comma-separated project names
      the sensor and schedule watch (unset: every project).
    * ``CLEARML_ASSETS_ARCHIVE_CRON``: project archive cron (default ``0 2 * * *``; ``off`` disables).
    * ``CLEARML_ASSETS_RETRAIN_CRON``: retraining cron (unset or ``off``: no retraining schedule).
    * ``CLEARML_ASSETS_PARTITIONS_PER_RUN``: most new tasks the sensor archives in one run (default 25, as the
      task archive's backfill policy).

    Args:
        accounts: ClearML account names known to the ``clearml`` resource.
        projects: Project ids/names for every account, or per account (``{"personal": [...]}``).
        sensor_interval_seconds: Seconds between sensor ticks.
        project_archive_cron: Cron of the project archive schedule; None: no schedule.
        retraining_cron: Cron of the retraining schedule; None: no schedule.
        include_training_job: Define ``clearml_training_job`` (datasets -> model).
        dataset_group: Asset group of the dataset assets.
        training_group: Asset group of the model asset.
        default_status_running: Start sensors and schedules when the code location loads.
        environ: Environment to read (default ``os.environ``).
        translator: The translator the archive assets were built with (the archive jobs select their keys).
    """
    env = os.environ if environ is None else environ
    archive_cron = _cron(project_archive_cron, env, "CLEARML_ASSETS_ARCHIVE_CRON", DEFAULT_PROJECT_ARCHIVE_CRON)
    retrain_cron = _cron(retraining_cron, env, "CLEARML_ASSETS_RETRAIN_CRON", None)
    sensor_status = dg.DefaultSensorStatus.RUNNING if default_status_running else dg.DefaultSensorStatus.STOPPED
    schedule_status = (dg.DefaultScheduleStatus.RUNNING if default_status_running
                       else dg.DefaultScheduleStatus.STOPPED)

    jobs: list = []
    sensors: list = []
    schedules: list = []
    for account in accounts:
        watched = _watched(account, projects, env)
        archive_job = build_clearml_archive_job(account, translator)
        project_job = build_clearml_project_archive_job(account, translator)
        jobs += [archive_job, project_job]
        sensors.append(build_clearml_completed_tasks_sensor(
            account, projects=watched, job=archive_job, minimum_interval_seconds=sensor_interval_seconds,
            max_tasks_per_run=partitions_per_run(env), default_status=sensor_status))
        sensors.append(build_clearml_missing_archives_sensor(
            account, job=archive_job, max_partitions_per_run=partitions_per_run(env), translator=translator,
            default_status=sensor_status))
        if archive_cron:
            schedules.append(build_clearml_project_archive_schedule(
                account, cron_schedule=archive_cron, projects=watched, job=project_job,
                default_status=schedule_status))
    if include_training_job:
        jobs.append(build_clearml_training_job(dataset_group, training_group))
    if retrain_cron:
        schedules.append(build_clearml_retraining_schedule(cron_schedule=retrain_cron, training_group=training_group,
                                                           default_status=schedule_status))
    return dg.Definitions(jobs=jobs, sensors=sensors, schedules=schedules)
