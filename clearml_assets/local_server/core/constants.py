"""Names and limits every layer of the local server shares (clearml-server's ``database/model`` enums).

The task statuses, types and state machine are the real server's (``database/model/task/task.py``,
``bll/task/utils.py``); the invalid-id errors are ``apierrors/errors.conf``'s.
"""

from __future__ import annotations

API_VERSION = "2.23"  # what the server claims: clearml-server 1.9.2 serves API 2.23
SERVER_VERSION = "1.9.2"  # the last clearml-server release serving API 2.23

TASK_STATUSES = ("created", "queued", "in_progress", "stopped", "publishing", "published", "closed", "failed",
                 "completed", "unknown")
LOCKED_STATUSES = ("publishing", "published")
"""A task in one of these takes no events (unless ``allow_locked``)."""
TASK_TYPES = ("training", "testing", "inference", "data_processing", "application", "monitor",
              "controller", "report", "optimizer", "service", "qc", "custom")
# The real server's allowed status changes (apiserver/bll/task/utils.py state_machine).
STATE_MACHINE = {
    "created": {"queued", "in_progress"},
    "queued": {"created", "in_progress", "stopped"},
    "in_progress": {"stopped", "failed", "created", "completed"},
    "stopped": {"closed", "created", "failed", "queued", "in_progress", "published", "publishing", "completed"},
    "closed": {"created", "failed", "published", "publishing", "stopped"},
    "failed": {"created", "stopped", "published", "queued"},
    "publishing": {"published"},
    "published": set(),
    "completed": {"published", "in_progress", "created"},
}
DELETED_PREFIX = "__DELETED__"
"""A reference to a deleted task: children and published models point at ``__DELETED__<id>``."""

# (subcode, message) of each collection's "invalid id" error
INVALID_TASK = (101, "Invalid task id")
INVALID_MODEL = (201, "Invalid model id")
INVALID_PROJECT = (401, "Invalid project id")
INVALID_QUEUE = (701, "Invalid queue id")

EVENT_TYPES = ("log", "training_stats_scalar", "training_stats_vector", "training_debug_image", "plot")
SINGLE_VALUE_ITER = -(2 ** 31)
"""The iteration of single-value scalars (``Logger.report_single_value``)."""
