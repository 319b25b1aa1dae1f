"""``build_clearml_completed_tasks_sensor``: archive every ClearML task that completes, exactly once."""

from __future__ import annotations

import functools
from itertools import islice
from dataclasses import dataclass, field
from typing import Callable, Sequence

import dagster as dg

from ..archives.assets import clearml_project_partitions, clearml_task_partitions
from ..translator import account_slug
from ..errors import ClearMLAssetsError
from ..resource import ClearMLResource
from ..types import Task
from .cursor import ClearMLTaskCursor
from .jobs import build_clearml_archive_job
from .partitions import clearml_name_tag
from .polling import (FINISHED_STATUSES, ClearMLPollResult, account_host, poll_finished_tasks,
                      resolve_project_ids)


def clearml_completed_tasks_sensor_name(account: str) -> str:
    """``clearml_completed_tasks_sensor_<account>``."""
    return f"clearml_completed_tasks_sensor_{account_slug(account)}"


# Dagster's run tags of a partition range (what its own backfills set on a ranged run).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def clearml_task_run_key(task_id: str, status_changed: str) -> str:
    """``<task id>:<status_changed>``: a task completed again later gets a new archive run."""
    return f"{task_id}:{status_changed}"


def clearml_tasks_run_key(first: Task, last: Task, count: int) -> str:
    """``<first task's run key>..<last task's run key>+<count>``: the run key of a batch of new tasks."""
    return (f"{clearml_task_run_key(first.id, first.status_changed)}.."
            f"{clearml_task_run_key(last.id, last.status_changed)}+{count}")


def build_clearml_completed_tasks_sensor(
    account: str,
    *,
    projects: Sequence[str] | None = None,
    include_subprojects: bool = True,
    statuses: Sequence[str] = FINISHED_STATUSES,
    include_hidden: bool = False,
    job: dg.UnresolvedAssetJobDefinition | None = None,
    minimum_interval_seconds: int = 60,
    page_size: int = 500,
    max_pages_per_tick: int = 20,
    max_tasks_per_tick: int = 1000,
    max_tasks_per_run: int = 25,
    time_budget_seconds: float = 20.0,
    overlap_seconds: float = 5.0,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    name: str | None = None,
) -> dg.SensorDefinition:
    """A sensor that adds tasks of ``account`` reaching completed/published as task archive partitions
    and requests their archive runs in the same tick, ``max_tasks_per_run`` tasks to a run.

    The cursor holds the ClearML server's ``status_changed`` time and the ids seen at (or just before) it,
    so tasks sharing a timestamp, completing during a tick, or seen before a daemon restart or a failed
    tick are neither lost nor archived twice. Tasks that are new partitions are archived in runs of up to
    ``max_tasks_per_run`` (a partition range, as Dagster's own backfills run them: a Dagster run costs
    seconds before any work, so one run per task would spend a catch-up of thousands of tasks mostly
    starting runs); its run key is ``<first task id>:<status_changed>..<last task id>:<status_changed>+<n>``.
    A task that already was a partition (reset and completed again, or added by hand) gets a run of its
    own, run key ``<task id>:<status_changed>``: it is archived again. Each tick stops after ``max_pages_per_tick`` pages,
    ``max_tasks_per_tick`` tasks or ``time_budget_seconds``, and the next tick continues. If the server
    is down or refuses the keys, the tick fails naming the account and host, and the cursor stays put.

    Args:
        account: ClearML account name (resource ``clearml``, a ``ClearMLResource``).
        projects: Project ids or full names to watch (None: every project).
        include_subprojects: Named projects include their subprojects.
        statuses: Task statuses that count as finished.
        include_hidden: Also archive hidden tasks (e.g. dataset tasks); reports are archived either way.
        job: The task archive job to run (default: ``clearml_archive_job_<account>``).
        minimum_interval_seconds: Seconds between ticks.
        page_size: Tasks per ``tasks.get_all`` call.
        max_pages_per_tick: Most ``tasks.get_all`` calls per tick.
        max_tasks_per_tick: Most new tasks per tick.
        max_tasks_per_run: Most tasks archived by one run (1: a run per task).
        time_budget_seconds: No new page is requested after this (well inside Dagster's 60 s timeout).
        overlap_seconds: How far before the cursor each tick looks again, for tasks the server commits late.
        default_status: STOPPED (default) or RUNNING when the code location loads.
        name: Sensor name (default ``clearml_completed_tasks_sensor_<account>``).
    """
    sensor_name = name or clearml_completed_tasks_sensor_name(account)
    tick = _CompletedTasksTick(
        account=account, sensor_name=sensor_name, watched=list(projects) if projects else None,
        include_subprojects=include_subprojects, statuses=statuses, max_tasks_per_run=max(1, max_tasks_per_run),
        poll=functools.partial(
            poll_finished_tasks, statuses=statuses, include_hidden=include_hidden, page_size=page_size,
            max_pages=max_pages_per_tick, max_tasks=max_tasks_per_tick,
            time_budget_seconds=time_budget_seconds, overlap_seconds=overlap_seconds))

    @dg.sensor(name=sensor_name, job=job or build_clearml_archive_job(account),
               minimum_interval_seconds=minimum_interval_seconds, default_status=default_status,
               description=tick.description())
    def _sensor(context: dg.SensorEvaluationContext, clearml: ClearMLResource) -> dg.SensorResult:
        return tick.evaluate(context, clearml)

    return _sensor


@dataclass
class _CompletedTasksTick:
    """One tick of the completed tasks sensor: poll past the cursor, request the new tasks' archive runs.

    Attributes:
        account: ClearML account name.
        sensor_name: The sensor's name, for error messages.
        watched: Project ids or full names to watch (None: every project).
        include_subprojects: Named projects include their subprojects.
        statuses: Task statuses that count as finished.
        poll: ``poll_finished_tasks`` with the sensor's bounds bound; called with client, cursor and
            ``project_ids``.
        max_tasks_per_run: Most new partitions archived by one (ranged) run.
    """

    account: str
    sensor_name: str
    watched: list[str] | None
    include_subprojects: bool
    statuses: Sequence[str]
    poll: Callable[..., ClearMLPollResult]
    max_tasks_per_run: int = 25
    task_parts: dg.DynamicPartitionsDefinition = field(init=False)
    project_parts: dg.DynamicPartitionsDefinition = field(init=False)

    def __post_init__(self) -> None:
        self.task_parts = clearml_task_partitions(self.account)
        self.project_parts = clearml_project_partitions(self.account)

    def description(self) -> str:
        """The sensor's description: what it archives and the run key."""
        watched = self.watched
        return (f"Archives every task of ClearML account {self.account!r} that reaches "
                f"{'/'.join(self.statuses)}"
                f"{' in ' + ', '.join(repr(p) for p in watched) if watched else ''}: adds its id as a "
                f"partition of {self.task_parts.name} and requests its archive run, up to "
                f"{self.max_tasks_per_run} new tasks to a run (run key <task id>:<status_changed>, or "
                "<first>..<last>+<n> for a batch).")

    def evaluate(self, context: dg.SensorEvaluationContext, clearml: ClearMLResource) -> dg.SensorResult:
        """Poll from the stored cursor; skip, or request the runs of the tasks found and move the cursor."""
        cursor = ClearMLTaskCursor.from_json(context.cursor)
        polled = self._poll(clearml, cursor)
        if polled is None:
            return dg.SensorResult(skip_reason=f"None of the projects {self.watched} exist in ClearML "
                                               f"account {self.account!r} yet.")
        if not polled.tasks:
            return dg.SensorResult(
                skip_reason=f"No task of ClearML account {self.account!r} reached {'/'.join(self.statuses)} "
                            f"since {cursor.time or 'the beginning'} ({polled.pages} page(s)).",
                cursor=polled.cursor.to_json())
        result = self._archive_requests(polled, context.instance)
        context.log.info(
            f"{len(polled.tasks)} task(s) of account {self.account!r} reached {'/'.join(self.statuses)} "
            f"({polled.pages} page(s), stopped: {polled.stop_reason}"
            f"{'; the next tick continues' if polled.more else ''}).")
        return result

    def _poll(self, clearml: ClearMLResource, cursor: ClearMLTaskCursor) -> ClearMLPollResult | None:
        """The tasks finished after ``cursor``; None when none of the watched projects exists yet.

        Raises:
            ClearMLAssetsError: The server is down or refused the query (the message names the account
                and host; the cursor does not move).
        """
        host = account_host(clearml, self.account)
        try:
            client = clearml.client(self.account)
            project_ids = None
            if self.watched:
                project_ids = resolve_project_ids(client, self.watched, self.include_subprojects)
                if not project_ids:
                    return None
            return self.poll(client, cursor, project_ids=project_ids)
        except ClearMLAssetsError as exc:
            raise type(exc)(
                f"Sensor {self.sensor_name} (ClearML account '{self.account}' at {host}): {exc} The cursor "
                "did not move; the next tick retries from the same point.",
                metadata={"account": self.account, "api_host": host}) from None

    def _archive_requests(self, polled: ClearMLPollResult, instance: dg.DagsterInstance) -> dg.SensorResult:
        """The new tasks (and their projects) as partitions, their archive runs, and the new cursor.

        Tasks that are not partitions yet are added in the order polled, so each batch of them is a
        contiguous range of the partitions; a task that already is one gets a run of its own.
        """
        tasks = list({t.id: t for t in polled.tasks}.values())
        known = instance.get_existing_dynamic_partitions(self.task_parts.name, [t.id for t in tasks])
        fresh = [t for t in tasks if t.id not in known]
        partition_requests = [self.task_parts.build_add_request([t.id for t in fresh])] if fresh else []
        project_ids_found = sorted({t.project for t in polled.tasks if t.project})
        if project_ids_found:
            partition_requests.append(self.project_parts.build_add_request(project_ids_found))
        run_requests = [self._single_run(t) for t in tasks if t.id in known]
        for batch in _batches(fresh, self.max_tasks_per_run):
            run_requests.append(self._single_run(batch[0]) if len(batch) == 1 else self._batch_run(batch))
        return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests,
                               cursor=polled.cursor.to_json())

    def _single_run(self, task: Task) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=clearml_task_run_key(task.id, task.status_changed), partition_key=task.id,
            tags={"clearml/account": account_slug(self.account), "clearml/task_status": task.status,
                  "clearml/task_name": clearml_name_tag(task.name), "clearml/status_changed": task.status_changed})

    def _batch_run(self, batch: list[Task]) -> dg.RunRequest:
        first, last = batch[0], batch[-1]
        return dg.RunRequest(
            run_key=clearml_tasks_run_key(first, last, len(batch)),
            tags={"clearml/account": account_slug(self.account), "clearml/tasks": str(len(batch)),
                  "clearml/task_names": clearml_name_tag(", ".join(clearml_name_tag(t.name, 40) for t in batch), 200),
                  "clearml/status_changed": f"{first.status_changed}..{last.status_changed}",
                  PARTITION_RANGE_START_TAG: first.id, PARTITION_RANGE_END_TAG: last.id})


def _batches(tasks: list[Task], size: int) -> list[list[Task]]:
    """``tasks`` in consecutive batches of at most ``size``."""
    it = iter(tasks)
    return list(iter(lambda: list(islice(it, size)), []))
