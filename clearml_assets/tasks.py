"""The user's seed operations for scripts and assets: start a ClearML task, log a text result, close it.

These use the ClearML SDK, whose credentials are process-global: one process talks to one account.
In assets, run them in a child process of the account
(``run_in_sdk_process(..., env=clearml.sdk_env(account))``) or use :func:`run_clearml_text_task`.
In a script, ``start_clearml_task(..., account="personal")`` configures the process for that account
on first use (like the seed's ``setup_credentials_clearml_task``) and refuses to switch to another
account afterwards.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from .errors import ClearMLConfigError
from .sdk_process import run_in_sdk_process

DEFAULT_PROJECT = "YOLOv8 Research"
ACCOUNT_VAR = "CLEARML_ASSETS_ACCOUNT"
# What the SDK reads to find its server and keys; replaced as a whole so no value of another account stays.
SDK_VARS = ("CLEARML_API_HOST", "CLEARML_WEB_HOST", "CLEARML_FILES_HOST", "CLEARML_API_ACCESS_KEY",
            "CLEARML_API_SECRET_KEY", "CLEARML_CONFIG_FILE", "CLEARML_CACHE_DIR", "CLEARML_TASK_NO_REUSE",
            ACCOUNT_VAR)


def configure_sdk_process(env: Mapping[str, str]) -> None:
    """Point this process's ClearML SDK at one account (``ClearMLResource.sdk_env(account)``).

    Call it before the SDK is first used. Calling it again for the same account does nothing.

    Raises:
        ClearMLConfigError: The SDK is already imported here for another (or an unknown) account; its
            session is process-global, so use a child process (``run_in_sdk_process``) instead.
    """
    wanted = env.get(ACCOUNT_VAR, "")
    current = os.environ.get(ACCOUNT_VAR, "")
    if current == wanted and wanted and all(os.environ.get(k) == v for k, v in env.items() if k in SDK_VARS):
        return
    if "clearml" in sys.modules:
        raise ClearMLConfigError(
            f"This process already imported the ClearML SDK (account '{current or 'from clearml.conf/env'}'), "
            f"so it cannot switch to account '{wanted or '?'}': the SDK's credentials are process-global. "
            "Run the other account's work in its own process: "
            "run_in_sdk_process(..., env=clearml.sdk_env(account)).")
    for name in SDK_VARS:
        os.environ.pop(name, None)
    os.environ.update(env)


def _account_from_seed_type(account_type: Any) -> str:
    # seed 000: account_type '0' is the personal account, any other value the original one
    return "personal" if str(account_type) == "0" else "original"


def start_clearml_task(name: str, description: str = "", project_name: str = DEFAULT_PROJECT,
                       account: str | None = None, *, account_type: Any = None, clearml: Any = None,
                       task_type: str = "training", tags: list[str] | None = None) -> Any:
    """Create and start a ClearML task (seed: ``start_clearml_task``).

    Args:
        name: Task name.
        description: Task comment.
        project_name: Project the task belongs to (created if missing).
        account: Account to use; configures this process for it on first use (see
            :func:`configure_sdk_process`). None: the account this process is already configured for.
        account_type: The seed's selector: ``'0'`` = ``personal``, anything else = ``original``.
        clearml: The ``ClearMLResource`` to take the account from; default ``ClearMLResource.from_env()``.
        task_type: ClearML task type.
        tags: Tags of the task.

    Returns:
        The running ``clearml.Task``.

    Raises:
        ClearMLConfigError: The account is unknown, or this process already uses another account.
        ClearMLConnectionError: The account's server is unreachable or refuses the keys (within 10 s).
    """
    if account is None and account_type is not None:
        account = _account_from_seed_type(account_type)
    if account is not None and os.environ.get(ACCOUNT_VAR) != account:
        if clearml is None:
            from .resource import ClearMLResource

            clearml = ClearMLResource.from_env()
        configure_sdk_process(clearml.sdk_env(account))
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
