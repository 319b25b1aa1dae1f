"""``build_clearml_completed_tasks_sensor``: archive every ClearML task that completes, exactly once."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import dagster as dg

from ..archives.assets import clearml_project_partitions, clearml_task_partitions
from ..archives.paths import account_slug
from ..errors import ClearMLAssetsError
from ..resource import ClearMLResource
from .cursor import ClearMLTaskCursor
from .jobs import build_clearml_archive_job
from .partitions import clearml_name_tag
from .polling import (FINISHED_STATUSES, ClearMLPollResult, account_host, poll_finished_tasks,
                      resolve_project_ids)


def clearml_completed_tasks_sensor_name(account: str) -> str:
    """``clearml_completed_tasks_sensor_<account>``."""
    return f"clearml_completed_tasks_sensor_{account_slug(account)}"


def clearml_task_run_key(task_id: str, status_changed: str) -> str:
    """``<task id>:<status_changed>``: a task completed again later gets a new archive run."""
    return f"{task_id}:{status_changed}"


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
    time_budget_seconds: float = 20.0,
    overlap_seconds: float = 5.0,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    name: str | None = None,
) -> dg.SensorDefinition:
    """A sensor that adds tasks of ``account`` reaching completed/published as task archive partitions
    and requests their archive runs in the same tick.

    The cursor holds the ClearML server's ``status_changed`` time and the ids seen at (or just before) it,
    so tasks sharing a timestamp, completing during a tick, or seen before a daemon restart or a failed
    tick are neither lost nor archived twice. Run keys are ``<task id>:<status_changed>``: a task that is
    reset and completed again is archived again. Each tick stops after ``max_pages_per_tick`` pages,
    ``max_tasks_per_tick`` tasks or ``time_budget_seconds``, and the next tick continues. If the server
    is down or refuses the keys, the tick fails naming the account and host, and the cursor stays put.

    Args:
        account: ClearML account name (resource ``clearml``, a ``ClearMLResource``).
        projects: Project ids or full names to watch (None: every project).
        include_subprojects: Named projects include their subprojects.
        statuses: Task statuses that count as finished.
        include_hidden: Also archive hidden tasks (e.g. dataset tasks).
        job: The task archive job to run (default: ``clearml_archive_job_<account>``).
        minimum_interval_seconds: Seconds between ticks.
        page_size: Tasks per ``tasks.get_all`` call.
        max_pages_per_tick: Most ``tasks.get_all`` calls per tick.
        max_tasks_per_tick: Most new tasks (runs) per tick.
        time_budget_seconds: No new page is requested after this (well inside Dagster's 60 s timeout).
        overlap_seconds: How far before the cursor each tick looks again, for tasks the server commits late.
        default_status: STOPPED (default) or RUNNING when the code location loads.
        name: Sensor name (default ``clearml_completed_tasks_sensor_<account>``).
    """
    sensor_name = name or clearml_completed_tasks_sensor_name(account)
    tick = _CompletedTasksTick(
        account=account, sensor_name=sensor_name, watched=list(projects) if projects else None,
        include_subprojects=include_subprojects, statuses=statuses,
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
    """

    account: str
    sensor_name: str
    watched: list[str] | None
    include_subprojects: bool
    statuses: Sequence[str]
    poll: Callable[..., ClearMLPollResult]
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
                f"partition of {self.task_parts.name} and requests its archive run (run key "
                "<task id>:<status_changed>).")

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
        result = self._archive_requests(polled)
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

    def _archive_requests(self, polled: ClearMLPollResult) -> dg.SensorResult:
        """The new tasks (and their projects) as partitions, one archive run each, and the new cursor."""
        task_ids = list(dict.fromkeys(t.id for t in polled.tasks))
        project_ids_found = sorted({t.project for t in polled.tasks if t.project})
        partition_requests = [self.task_parts.build_add_request(task_ids)]
        if project_ids_found:
            partition_requests.append(self.project_parts.build_add_request(project_ids_found))
        run_requests = [
            dg.RunRequest(
                run_key=clearml_task_run_key(t.id, t.status_changed), partition_key=t.id,
                tags={"clearml/account": account_slug(self.account), "clearml/task_status": t.status,
                      "clearml/task_name": clearml_name_tag(t.name),
                      "clearml/status_changed": t.status_changed})
            for t in polled.tasks]
        return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests,
                               cursor=polled.cursor.to_json())
