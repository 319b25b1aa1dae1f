"""The executor of a deployment that spans machines: Dagster's Celery executor (``dagster-celery``) with Redis.

``CLEARML_ASSETS_EXECUTOR=celery`` makes every job of the code location (the archive backfills included) send
each step to the Celery workers listening on the broker ``CLEARML_ASSETS_CELERY_BROKER``
(``redis://:password@host:6379/0``), with results in ``CLEARML_ASSETS_CELERY_BACKEND`` (default: the broker).
The run itself (one process per run, started by the daemon's run launcher) only hands out steps and collects
their results; the workers run on as many hosts as you like and share nothing but PostgreSQL (Dagster's storage
and the locks of :mod:`clearml_assets.locks`), Redis, the export root (an object store) and ClearML.

A worker host that dies mid-step is recovered by Celery, not by code of ours: tasks are acknowledged only once
they finished (``task_acks_late``), so the step's message stays in Redis' unacknowledged set and is handed to
another worker when its visibility timeout (``CLEARML_ASSETS_CELERY_VISIBILITY_TIMEOUT``, seconds, default
7200) has passed; the run waiting for the step gets its result from whichever worker ran it. The timeout must
exceed the longest step (a batch of ``max_partitions_per_run`` tasks): a step still running when it expires is
handed out a second time. The export and restore locks make such a second execution write no archive or copy twice
(it records its materializations again). docs/deployment.md says what Redis' transport can still lose.

Start the workers with the same settings (:func:`celery_worker_config` writes the file)::

    dagster-celery worker start -A dagster_celery.app -y celery.yaml -n "$(hostname)"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from .errors import ClearMLConfigError

EXECUTOR_ENV = "CLEARML_ASSETS_EXECUTOR"
BROKER_ENV = "CLEARML_ASSETS_CELERY_BROKER"
BACKEND_ENV = "CLEARML_ASSETS_CELERY_BACKEND"
VISIBILITY_ENV = "CLEARML_ASSETS_CELERY_VISIBILITY_TIMEOUT"
DEFAULT_VISIBILITY_TIMEOUT = 7200


def celery_settings(visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT) -> dict[str, Any]:
    """The Celery settings (``config_source``) of the executor and of every worker: late acknowledgement, one
    task reserved per worker process, and a dead worker's tasks handed out again after ``visibility_timeout``."""
    timeout = int(visibility_timeout)
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            "visibility_timeout": timeout,
            # sweep for abandoned tasks every few seconds instead of every interval x throttle (100 s)
            "unacked_restore_interval": max(1, min(10, timeout // 10)), "unacked_restore_throttle": 1,
            "max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
        },
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
    }


def _visibility_timeout(env: Mapping[str, str]) -> int:
    value = env.get(VISIBILITY_ENV, "").strip()
    try:
        timeout = int(value) if value else DEFAULT_VISIBILITY_TIMEOUT
    except ValueError:
        timeout = 0
    if timeout <= 0:
        raise ClearMLConfigError(f"{VISIBILITY_ENV}={value!r} is not a number of seconds; set it above the "
                                 "longest step (a batch of task archives), e.g. 7200")
    return timeout


def deployment_executor(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor ``CLEARML_ASSETS_EXECUTOR`` names: ``celery`` (see the module docstring), ``in_process``
    (every step in the run's own process: a run of archive partitions then starts no process per step), or
    None for Dagster's default (every step in a process of its own on the run's machine).

    Raises:
        ClearMLConfigError: An unknown executor, a missing broker, or ``dagster-celery`` not installed.
    """
    env = os.environ if environ is None else environ
    name = env.get(EXECUTOR_ENV, "").strip().lower()
    if name in ("", "default", "multiprocess"):
        return None
    if name == "in_process":  # every step in the run's own process: no process start per step
        return dg.in_process_executor
    if name != "celery":
        raise ClearMLConfigError(f"{EXECUTOR_ENV}={name!r} is not an executor this project knows; use celery, in_process "
                                 "(or leave it unset for Dagster's default)")
    if not env.get(BROKER_ENV, "").strip():
        raise ClearMLConfigError(f"{EXECUTOR_ENV}=celery needs {BROKER_ENV}, the Redis broker's URL "
                                 "(redis://:password@host:6379/0)")
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ClearMLConfigError(f"{EXECUTOR_ENV}=celery needs dagster-celery: pip install "
                                 "'clearml_assets[celery]'") from None
    backend = BACKEND_ENV if env.get(BACKEND_ENV, "").strip() else BROKER_ENV
    return celery_executor.configured(
        {"broker": {"env": BROKER_ENV}, "backend": {"env": backend},
         "config_source": celery_settings(_visibility_timeout(env))},
        name="clearml_assets_celery_executor")


def celery_worker_config(visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT, *, backend: bool = False) -> str:
    """The ``-y`` file of ``dagster-celery worker start``: the executor's settings, the broker (and, with
    ``backend``, the result backend) read from the worker's environment (no secret in the file)."""
    import yaml

    config = {"broker": {"env": BROKER_ENV}, "backend": {"env": BACKEND_ENV if backend else BROKER_ENV},
              "config_source": celery_settings(visibility_timeout)}
    return yaml.safe_dump({"execution": {"config": config}}, sort_keys=False)


__all__ = ["BACKEND_ENV", "BROKER_ENV", "EXECUTOR_ENV", "VISIBILITY_ENV", "celery_settings", "celery_worker_config",
           "deployment_executor"]
