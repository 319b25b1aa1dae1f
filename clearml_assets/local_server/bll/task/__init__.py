"""Task logic (clearml-server ``bll/task``): documents and cloning, legacy fields, status changes, cleanup."""

from .param_utils import (LEGACY_PARAMS_MAX, MODELS_COMPAT_MAX, models_prepare_for_save, params_prepare_for_save,
                          unprepare_for_version)
from .task_bll import (check_name, check_updatable, clone_task, get_task, get_task_readable, new_task_doc,
                       properties_only, save_task, validate_references)
from .task_cleanup import cleanup_outputs, delete_task, delete_task_events, event_urls, reset_task
from .task_operations import (back_from_queue, change_status, dequeue, dequeue_any, dequeue_one, enqueue_one,
                              move_task, pipeline_steps, publish_task, set_archived, stop_task,
                              with_pipeline_steps)

__all__ = ["LEGACY_PARAMS_MAX", "MODELS_COMPAT_MAX", "back_from_queue", "change_status", "check_name",
           "check_updatable", "cleanup_outputs", "clone_task", "delete_task", "delete_task_events", "dequeue",
           "dequeue_any", "dequeue_one", "enqueue_one", "event_urls", "get_task", "get_task_readable",
           "models_prepare_for_save", "move_task", "new_task_doc", "params_prepare_for_save", "pipeline_steps",
           "properties_only", "publish_task", "reset_task", "save_task", "set_archived", "stop_task",
           "unprepare_for_version", "validate_references", "with_pipeline_steps"]
