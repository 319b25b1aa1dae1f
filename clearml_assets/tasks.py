"""The user's seed operations for scripts and assets: start a ClearML task, log a text result, close it.

These use the ClearML SDK, whose credentials are process-global: call them in a process configured for
one account (``run_in_sdk_process(..., env=clearml.sdk_env(account))``), or use
:func:`run_clearml_text_task`, which does that for you.
"""

from __future__ import annotations

from typing import Any

from .sdk_process import run_in_sdk_process

DEFAULT_PROJECT = "YOLOv8 Research"


def start_clearml_task(name: str, description: str = "", project_name: str = DEFAULT_PROJECT,
                       task_type: str = "training", tags: list[str] | None = None) -> Any:
    """Create and start a ClearML task in the current process's account (seed: ``start_clearml_task``).

    Args:
        name: Task name.
        description: Task comment.
        project_name: Project the task belongs to (created if missing).
        task_type: ClearML task type.
        tags: Tags of the task.

    Returns:
        The running ``clearml.Task``.
    """
    from clearml import Task

    task = Task.init(project_name=project_name, task_name=name, task_type=task_type, tags=tags,
                     reuse_last_task_id=False, auto_connect_frameworks=False,
                     auto_connect_arg_parser=False, auto_resource_monitoring=False)
    if description:
        task.set_comment(description)
    return task


def log_clearml_result(task: Any, result: str, title: str = "result") -> None:
    """Log a text result on the task and close it (seed: ``log_clearml_result``).

    ``close()`` is used, never ``mark_completed()``: the SDK kills its own process when a running
    task's status changes under it.
    """
    task.get_logger().report_text(f"{title}: {result}")
    task.flush(wait_for_uploads=True)
    task.close()


def _text_task(name: str, description: str, project_name: str, result: str) -> str:
    task = start_clearml_task(name, description, project_name)
    task_id = task.id
    log_clearml_result(task, result)
    return task_id


def run_clearml_text_task(clearml: Any, name: str, result: str, description: str = "",
                          project_name: str = DEFAULT_PROJECT, account: str | None = None,
                          timeout: float = 300.0) -> str:
    """Start a task, log ``result`` and close it, in a child process of ``account``; return the task id.

    Args:
        clearml: A ``ClearMLResource``.
        name: Task name.
        result: Text to log.
        description: Task comment.
        project_name: ClearML project.
        account: Account name; default: the resource's default.
        timeout: Seconds before the child is stopped.
    """
    return run_in_sdk_process(_text_task, name, description, project_name, result,
                              env=clearml.sdk_env(account), timeout=timeout,
                              what=f"ClearML task {project_name}/{name}")
