"""Automation: the completed-task and missing-archives sensors, archive and retraining schedules, and named jobs."""

from .cursor import ClearMLTaskCursor
from .defs import build_automation_defs
from .jobs import (CLEARML_TRAINING_JOB, build_clearml_archive_job, build_clearml_project_archive_job,
                   build_clearml_training_job, clearml_archive_job_name, clearml_project_archive_job_name)
from .missing import build_clearml_missing_archives_sensor, clearml_missing_archives_sensor_name
from .polling import ClearMLPollResult, poll_finished_tasks, resolve_project_ids
from .schedules import (CLEARML_RETRAINING_SCHEDULE, build_clearml_project_archive_schedule,
                        build_clearml_retraining_schedule, clearml_project_archive_schedule_name)
from .sensors import (build_clearml_completed_tasks_sensor, clearml_completed_tasks_sensor_name,
                      clearml_task_run_key)

__all__ = [
    "CLEARML_RETRAINING_SCHEDULE", "CLEARML_TRAINING_JOB", "ClearMLPollResult", "ClearMLTaskCursor",
    "build_automation_defs", "build_clearml_archive_job", "build_clearml_completed_tasks_sensor",
    "build_clearml_missing_archives_sensor", "clearml_missing_archives_sensor_name",
    "build_clearml_project_archive_job", "build_clearml_project_archive_schedule",
    "build_clearml_retraining_schedule", "build_clearml_training_job", "clearml_archive_job_name",
    "clearml_completed_tasks_sensor_name", "clearml_project_archive_job_name",
    "clearml_project_archive_schedule_name", "clearml_task_run_key", "poll_finished_tasks",
    "resolve_project_ids",
]
