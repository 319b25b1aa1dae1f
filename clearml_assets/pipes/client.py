"""``PipesClearMLClient``: run a script as a ClearML task, on an agent queue or in a local subprocess,
and stream its Dagster Pipes messages back while it runs (models: dagster-aws ``PipesECSClient``,
dagster-k8s ``PipesK8sClient``, dagster-prefect's logs reader)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import dagster as dg
from dagster._core.pipes.client import PipesClient, PipesClientCompletedInvocation
from dagster._core.pipes.utils import PipesEnvContextInjector, open_pipes_session
from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR, PipesExtras

from .local_runner import LOCAL_WORKER, LocalTaskRunner
from .protocol import CONTEXT_PARAM, MESSAGES_PARAM, SECTION
from .reader import PipesClearMLMessageReader
from .tasks_api import TaskControl

FINISHED = ("completed", "failed", "stopped", "closed", "published")


class ClearMLTaskFailure(dg.Failure):
    """The ClearML task failed, was stopped, or could not be started."""


class PipesClearMLClient(PipesClient):
    """Run a Python script as a ClearML task with Dagster Pipes, on a ClearML agent queue or locally.

    Both ways create the same ClearML task (script, ``DagsterPipes`` hyperparameters holding the Pipes
    context) and read the script's Pipes messages (logs, materialization metadata, asset checks, custom
    messages) from the task's log while it runs:

    - ``queue="gpu"``: the task is enqueued and a ``clearml-agent daemon --queue gpu`` runs it. If no live
      worker serves the queue, ``run`` refuses at once, naming the queue.
    - ``queue=None``: this process runs the script in a subprocess, as the agent would.

    A Dagster termination (or Ctrl-C) stops the task: a queued task is dequeued, a running one stopped
    (``tasks.stop``; the agent kills the script), and the task is marked failed with the reason. A task
    whose worker disappears (its registration expired: agent killed, machine lost) is marked failed too.

    Args:
        clearml: The ``ClearMLResource`` (its ``client(account)`` and ``sdk_env(account)``).
        account: Account to run in; default the resource's default.
        poll_interval: Seconds between two status/log reads.
        forward_console: Also print the script's console on this process's stderr when it runs locally
            (it is always in the ClearML task's console log).

    Example:
        .. code-block:: python

            @dg.asset
            def my_asset(context: dg.AssetExecutionContext, clearml: ClearMLResource):
                client = PipesClearMLClient(clearml)
                return client.run(context=context, script=Path("train.py"), queue="gpu",
                                  project="research", task_name="train", extras={"lr": 0.1}
                                  ).get_materialize_result()
    """

    def __init__(self, clearml: Any, account: str | None = None, poll_interval: float = 1.0,
                 forward_console: bool = False):
        self.clearml = clearml
        self.account = account
        self.poll_interval = poll_interval
        self.forward_console = forward_console

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def run(self, *, context: dg.OpExecutionContext | dg.AssetExecutionContext, script: str | Path | Callable[[], Any],
            queue: str | None = None, project: str = "dagster", task_name: str | None = None,
            extras: PipesExtras | None = None, task_type: str = "training", tags: Sequence[str] = (),
            timeout: float | None = None, entry_point: str | None = None,
            on_task_created: Any = None) -> PipesClientCompletedInvocation:
        """Run ``script`` as a ClearML task and return the Pipes results.

        Args:
            context: The asset or op context.
            script: Path of a Python file, its source text (then give ``entry_point``), or a module-level
                function (importable where the task runs) that the task calls without arguments.
            queue: Agent queue name; None runs the script here in a subprocess.
            project: ClearML project of the task (created if missing).
            task_name: Task name; default: the asset key or op name.
            extras: JSON-able values the script reads as ``pipes.extras``.
            task_type: ClearML task type.
            tags: Task tags.
            timeout: Seconds before the task is stopped and this fails; None waits as long as it runs.
            entry_point: File name of the script on the worker (default: the script's file name).
            on_task_created: Called with the task id once the task exists (e.g. to record it).

        Raises:
            ClearMLTaskFailure: no live worker on ``queue``, the task failed, was stopped, timed out or
                was lost with its worker; its metadata links the task.
        """
        control = TaskControl(self.clearml.client(self.account))
        source, default_entry = _script_source(script)
        entry_point = entry_point or default_entry
        queue_id = self._live_queue(control, queue) if queue else None
        reader = PipesClearMLMessageReader(control, self.poll_interval)
        name = task_name or _default_name(context)
        with open_pipes_session(context=context, context_injector=PipesEnvContextInjector(),
                                message_reader=reader, extras=extras) as session:
            env_vars = session.get_bootstrap_env_vars()
            project_id = control.project_id(project)
            task_id = _create_task(control, env_vars, name=name, project_id=project_id,
                                   task_type=task_type, tags=tags, entry_point=entry_point, source=source)
            if on_task_created is not None:
                on_task_created(task_id)
            url = control.client.web_url("task", task_id, project_id)
            context.log.info(f"ClearML task {task_id} ({'queue ' + repr(queue) if queue else 'local'}): {url}")
            reader.attach(task_id)
            status = self._start_and_wait(control, task_id, url=url, queue=queue, queue_id=queue_id, source=source,
                                          entry_point=entry_point, timeout=timeout, log=context.log)
            _read_messages_and_check_status(control, reader, task_id, url, status)
        return PipesClientCompletedInvocation(session, metadata=_task_metadata(task_id, url))

    def _start_and_wait(self, control: TaskControl, task_id: str, *, url: str, queue: str | None,
                        queue_id: str | None, source: str, entry_point: str, timeout: float | None,
                        log: Any) -> str:
        """Enqueue the task (or run it here) and wait for its final status.

        Whatever interrupts the wait stops the task and marks it failed before it is raised, so no task
        is left queued or in progress.
        """
        runner = None
        try:
            if queue_id:
                control.enqueue(task_id, queue_id)
            else:
                runner = LocalTaskRunner(control, task_id, source, entry_point,
                                      self.clearml.sdk_env(self.account), self.forward_console)
            return self._wait(control, task_id, queue, runner, timeout)
        except (LostWorkerError, TimeoutError) as exc:
            self._terminate(control, task_id, runner, reason=str(exc), log=log)
            raise ClearMLTaskFailure(description=f"{exc}; the task was stopped and marked failed.",
                                     metadata=_task_metadata(task_id, url)) from None
        except BaseException as exc:
            self._terminate(control, task_id, runner, reason=_reason(exc), log=log)
            raise

    def _live_queue(self, control: TaskControl, queue: str) -> str:
        queue_id = control.queue_id(queue)
        if queue_id is None:
            raise ClearMLTaskFailure(
                description=f"There is no ClearML queue named '{queue}' on {control.client.api_host}. Start an "
                            f"agent for it: clearml-agent daemon --queue {queue} --create-queue")
        if not control.live_workers(queue_id):
            raise ClearMLTaskFailure(
                description=f"No live ClearML worker serves queue '{queue}' on {control.client.api_host}: the "
                            f"task would stay pending. Start one (clearml-agent daemon --queue {queue}) or run "
                            "with execution 'local'.")
        return queue_id

    def _wait(self, control: TaskControl, task_id: str, queue: str | None, runner: LocalTaskRunner | None,
              timeout: float | None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if runner is not None and runner.finished():
                return control.get(task_id)["status"]
            doc = control.get(task_id)
            status = doc["status"]
            if runner is None and status in FINISHED:
                return status
            if runner is None:
                self._check_alive(control, doc, queue)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"ClearML task {task_id} did not finish within {timeout:.0f}s")
            time.sleep(self.poll_interval)

    def _check_alive(self, control: TaskControl, doc: dict, queue: str | None) -> None:
        """A queued task needs a live worker on its queue; a running one a live worker or recent signs of life."""
        if doc["status"] == "queued":
            queue_id = (doc.get("execution") or {}).get("queue")
            if queue_id and not control.live_workers(queue_id):
                raise LostWorkerError(f"No live ClearML worker serves queue '{queue}' any more.")
        elif doc["status"] == "in_progress":
            live = control.live_worker_ids()
            worker = doc.get("last_worker")
            queue_id = (doc.get("execution") or {}).get("queue")
            if worker and worker != LOCAL_WORKER and worker not in live:
                raise LostWorkerError(f"ClearML worker '{worker}' running the task stopped reporting "
                                      "(agent killed or machine lost).")
            if not worker and queue_id and not control.live_workers(queue_id):
                raise LostWorkerError(f"No live ClearML worker serves queue '{queue}' any more while the task "
                                      "runs (agent killed or machine lost).")

    def _terminate(self, control: TaskControl, task_id: str, runner: LocalTaskRunner | None, *, reason: str,
                   log: Any) -> None:
        """Stop the task wherever it is and mark it failed with ``reason``; never raises."""
        try:
            doc = control.get(task_id)
            if runner is not None:
                runner.terminate()
            elif doc["status"] == "queued":
                control.dequeue(task_id, reason=reason)
            elif doc["status"] == "in_progress":
                control.stop(task_id, reason=reason)
            control.failed(task_id, reason=reason, message="stopped by Dagster")
            log.warning(f"ClearML task {task_id} stopped and marked failed: {reason}")
        except Exception as exc:  # noqa: BLE001 - the original error is the one to raise
            log.warning(f"Could not stop ClearML task {task_id}: {exc}")


class LostWorkerError(RuntimeError):
    """The worker serving the task or its queue went away."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
        return "Interrupted: the Dagster run was terminated (SIGINT/SIGTERM or UI terminate)"
    return f"{type(exc).__name__}: {exc}"[:900]


def _create_task(control: TaskControl, env_vars: Mapping[str, str], *, name: str, project_id: str,
                 task_type: str, tags: Sequence[str], entry_point: str, source: str) -> str:
    """Create the task: the script as its diff, the Pipes context and messages params as hyperparameters."""
    return control.create_task(
        name=name, project_id=project_id, task_type=task_type, tags=list(tags),
        script={"entry_point": entry_point, "working_dir": ".", "diff": source, "binary": "python3"},
        params={SECTION: {CONTEXT_PARAM: env_vars[DAGSTER_PIPES_CONTEXT_ENV_VAR],
                          MESSAGES_PARAM: env_vars[DAGSTER_PIPES_MESSAGES_ENV_VAR]}})


def _read_messages_and_check_status(control: TaskControl, reader: PipesClearMLMessageReader, task_id: str,
                                    url: str, status: str) -> None:
    """Read the messages the task wrote before it ended; raise unless it completed.

    Raises:
        ClearMLTaskFailure: The task ended with another status; the reason is the exception the script
            reported through Pipes (then the task is marked failed with it) or the task's own.
    """
    reader.drain(timeout=60 if status == "completed" else 10)
    if status != "completed":
        doc = control.get(task_id)
        reason = (f"{reader.exception.get('name')}: {reader.exception.get('message')}" if reader.exception
                  else doc.get("status_reason") or doc.get("status_message") or "no reason given")
        if reader.exception and status == "failed":
            control.failed(task_id, reason=reason, message="script failed")
        raise ClearMLTaskFailure(description=f"ClearML task {task_id} ended {status}: {reason}",
                                 metadata=_task_metadata(task_id, url))


def _script_source(script: str | Path | Callable[[], Any]) -> tuple[str, str]:
    """The task's script text and its default file name."""
    if isinstance(script, Path):
        return script.read_text(), script.name
    if callable(script):
        module, name = script.__module__, script.__qualname__
        if module == "__main__" or "." in name or "<" in name:
            raise ValueError(f"{script!r} is not a module-level function of an importable module: the task "
                             "imports it by name where it runs.")
        return f"from {module} import {name}\n\n{name}()\n", f"{name}.py"
    return str(script), "pipes_script.py"


def _default_name(context: Any) -> str:
    try:
        return context.asset_key.to_user_string()
    except Exception:  # noqa: BLE001 - an op, or several assets
        return context.op.name


def _task_metadata(task_id: str, url: str) -> dict:
    return {"clearml_task_id": task_id, "clearml_task_url": dg.MetadataValue.url(url)}
