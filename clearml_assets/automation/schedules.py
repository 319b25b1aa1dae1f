"""Schedules: nightly project archive refresh per account, and an optional retraining schedule."""

from __future__ import annotations

from typing import Sequence

import dagster as dg

from ..archives.assets import clearml_project_partitions
from ..translator import account_slug
from ..errors import ClearMLAssetsError
from ..resource import ClearMLResource
from .jobs import TRAINING_GROUP, build_clearml_project_archive_job
from .polling import account_host, resolve_project_ids

DEFAULT_PROJECT_ARCHIVE_CRON = "0 2 * * *"
DEFAULT_RETRAINING_CRON = "0 3 * * 0"
CLEARML_RETRAINING_SCHEDULE = "clearml_retraining_schedule"


def clearml_project_archive_schedule_name(account: str) -> str:
    """``clearml_project_archive_schedule_<account>``."""
    return f"clearml_project_archive_schedule_{account_slug(account)}"


def build_clearml_project_archive_schedule(
    account: str,
    *,
    cron_schedule: str = DEFAULT_PROJECT_ARCHIVE_CRON,
    projects: Sequence[str] | None = None,
    include_subprojects: bool = True,
    discover_projects: bool = True,
    execution_timezone: str | None = None,
    job: dg.UnresolvedAssetJobDefinition | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    name: str | None = None,
) -> dg.ScheduleDefinition:
    """A schedule refreshing the project archives of ``account`` (nightly at 02:00 by default).

    Each evaluation requests one run per project partition (run key ``<project id>:<scheduled time>``).
    With ``projects`` it archives those projects (ids or names, subprojects included) and adds them as
    partitions; without, it archives every known partition of ``clearml_projects_<account>`` (the
    completed-task sensor adds the projects of archived tasks) plus, with ``discover_projects``, every
    visible project the account has.

    Args:
        account: ClearML account name (resource ``clearml``).
        cron_schedule: When to run (cron syntax).
        projects: Project ids or full names to archive (None: known and discovered projects).
        include_subprojects: Named projects include their subprojects.
        discover_projects: Without ``projects``, also archive every visible project of the account.
        execution_timezone: Time zone of ``cron_schedule`` (default UTC).
        job: The project archive job (default ``clearml_project_archive_job_<account>``).
        default_status: STOPPED (default) or RUNNING when the code location loads.
        name: Schedule name (default ``clearml_project_archive_schedule_<account>``).
    """
    parts = clearml_project_partitions(account)
    schedule_name = name or clearml_project_archive_schedule_name(account)
    watched = list(projects) if projects else None

    @dg.schedule(
        name=schedule_name, cron_schedule=cron_schedule, job=job or build_clearml_project_archive_job(account),
        execution_timezone=execution_timezone, default_status=default_status,
        description=f"Refreshes the project archives of ClearML account {account!r} "
                    f"({', '.join(repr(p) for p in watched) if watched else 'every known project'}).")
    def _schedule(context: dg.ScheduleEvaluationContext, clearml: ClearMLResource):
        host = account_host(clearml, account)
        try:
            client = clearml.client(account)
            if watched:
                ids = resolve_project_ids(client, watched, include_subprojects)
            else:
                ids = list(context.instance.get_dynamic_partitions(parts.name))
                if discover_projects:
                    ids += [project.id for project in client.projects.iter(only_fields=["id"])]
        except ClearMLAssetsError as exc:
            raise type(exc)(f"Schedule {schedule_name} (ClearML account '{account}' at {host}): {exc}",
                            metadata={"account": account, "api_host": host}) from None
        ids = sorted(set(ids))
        if not ids:
            return dg.SkipReason(f"ClearML account {account!r} has no project to archive"
                                 f"{' among ' + str(watched) if watched else ''}.")
        known = set(context.instance.get_dynamic_partitions(parts.name))
        missing = [p for p in ids if p not in known]
        if missing:
            context.instance.add_dynamic_partitions(parts.name, missing)
        when = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
        return [dg.RunRequest(run_key=f"{p}:{when}", partition_key=p,
                              tags={"clearml/account": account_slug(account)}) for p in ids]

    return _schedule


def build_clearml_retraining_schedule(
    *,
    cron_schedule: str = DEFAULT_RETRAINING_CRON,
    training_group: str = TRAINING_GROUP,
    execution_timezone: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    name: str = CLEARML_RETRAINING_SCHEDULE,
) -> dg.ScheduleDefinition:
    """A schedule re-materializing the model asset(s) of ``training_group`` on the latest training view.

    Args:
        cron_schedule: When to retrain (default Sundays 03:00).
        training_group: Asset group of the model asset.
        execution_timezone: Time zone of ``cron_schedule`` (default UTC).
        default_status: STOPPED (default) or RUNNING when the code location loads.
        name: Schedule name.
    """
    return dg.ScheduleDefinition(
        name=name, cron_schedule=cron_schedule, target=dg.AssetSelection.groups(training_group),
        execution_timezone=execution_timezone, default_status=default_status,
        description=f"Retrains the model asset(s) of group {training_group!r} on the latest training view.")
