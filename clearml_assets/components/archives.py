"""``ClearMLArchivesComponent``: complete, verified task and project archives of one ClearML account."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from ..archives.assets import ClearMLArchiveConfig
from ..archives.defs import build_archive_defs
from ..archives.packing import ARCHIVE_FORMATS
from ..automation.defs import build_automation_defs
from ..restore.sync import build_sync_definitions
from .base import ClearMLComponent, run_config_field
from .scaffold import scaffolded_with_example

_EXAMPLE = """\
  # export_root: "{{ context.project_root }}/clearml_exports"  # or s3://bucket/prefix; default: <home>/exports
  # archive_format: tar.gz           # zip (default), tar.gz, tar.xz, tar
  # max_workers: 8                   # tasks exported at once
  # projects: [my_project]           # what the sensor and the schedule watch (default: every project)
  # sensor_interval_seconds: 60
  # project_archive_cron: "0 2 * * *"  # null: no project archive schedule
  # automation_running: false        # true: the sensor and the schedule run as soon as the code location loads
"""


@scaffolded_with_example("Task and project archives of ClearML account '{account}'.", _EXAMPLE)
class ClearMLArchivesComponent(ClearMLComponent):
    """Complete, verified archives of one ClearML account's tasks and projects.

    Builds ``<account>/clearml_task_archive`` (one partition per task id) and
    ``<account>/clearml_project_archive`` (one per project id) with their ``archive_matches_manifest`` checks,
    the sensor ``clearml_completed_tasks_sensor_<account>`` that adds every task reaching completed/published
    as a partition and archives it, the project archive schedule, the archive jobs and the restore asset
    ``<account>/clearml_restored_tasks``: what ``build_definitions`` builds for each account, through the same
    builders. The account's keys come from the environment (``CLEARML_KEY_<NAME>``, ``CLEARML_SECRET_<NAME>``,
    ``CLEARML_API_HOST_<NAME>``; ``local`` is the embedded server).
    """

    account: str = Field(description="ClearML account whose tasks are archived: 'local' (the embedded server) or "
                                     "a lower-case name whose keys are in the environment (CLEARML_KEY_<NAME>, "
                                     "CLEARML_SECRET_<NAME>, CLEARML_API_HOST_<NAME>).")
    export_root: str | None = run_config_field(ClearMLArchiveConfig, "export_root")
    archive_format: Literal[tuple(ARCHIVE_FORMATS)] = run_config_field(  # type: ignore[valid-type]
        ClearMLArchiveConfig, "archive_format")
    max_workers: int = run_config_field(ClearMLArchiveConfig, "max_workers")
    max_partitions_per_run: int = Field(default=25, ge=1, description="Task ids archived by one run of a backfill.")
    projects: list[str] | None = Field(default=None, description="Project names or ids the sensor and the schedule "
                                                                 "watch; default: every project of the account.")
    sensor_interval_seconds: int = Field(default=60, ge=10, description="Seconds between ticks of the "
                                                                        "completed-task sensor.")
    project_archive_cron: str | None = Field(default="0 2 * * *", description="When the project archive "
                                                                              "schedule refreshes the project "
                                                                              "archives (cron); null: no schedule.")
    automation_running: bool = Field(default=False, description="Start the sensor and the schedule when the code "
                                                                "location loads (default: stopped, start them in the "
                                                                "UI's Automation tab).")

    def build_clearml_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The account's archive assets, checks, jobs, sensor, schedule and restore asset."""
        archives = build_archive_defs(
            [self.account], export_root=self.export_root, max_partitions_per_run=self.max_partitions_per_run,
            config_defaults={"archive_format": self.archive_format, "max_workers": self.max_workers})
        automation = build_automation_defs(
            [self.account], projects=self.projects, sensor_interval_seconds=self.sensor_interval_seconds,
            project_archive_cron=self.project_archive_cron, retraining_cron=None, include_training_job=False,
            default_status_running=self.automation_running, environ={})
        return dg.Definitions.merge(archives, automation, build_sync_definitions(pairs=[], accounts=[self.account]))
