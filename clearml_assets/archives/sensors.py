"""Sensor adding finished ClearML tasks/projects as archive partitions and requesting their runs."""

import hashlib
import json
from typing import Any

import dagster as dg

from .assets import (clearml_project_partitions, clearml_task_partitions, project_archive_key,
                     task_archive_key)
from .exporter import DEFAULT_STATUSES
from .paths import account_slug


def build_clearml_archive_sensor(account: str, *, statuses: tuple[str, ...] = DEFAULT_STATUSES,
                                 minimum_interval_seconds: int = 300,
                                 default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED
                                 ) -> dg.SensorDefinition:
    """Watch ``account`` for finished tasks: new or changed ones get a partition and a task archive run,
    and their projects a project archive run.

    Args:
        account: ClearML account name (resource ``clearml``).
        statuses: Task statuses that count as finished.
        minimum_interval_seconds: Seconds between evaluations.
        default_status: Whether the sensor starts running.
    """
    task_parts, project_parts = clearml_task_partitions(account), clearml_project_partitions(account)

    @dg.sensor(name=f"clearml_archive_sensor_{account_slug(account)}",
               asset_selection=[task_archive_key(account), project_archive_key(account)],
               minimum_interval_seconds=minimum_interval_seconds, default_status=default_status,
               required_resource_keys={"clearml"},
               description=f"Adds finished tasks of ClearML account {account!r} as archive partitions and "
                           "requests archive runs for new or changed tasks and their projects.")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        client = context.resources.clearml.client(account)
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        rows: list[dict[str, Any]] = list(client.iter_pages(
            "tasks.get_all", "tasks", status=list(statuses), only_fields=["id", "project", "last_update"],
            order_by=["last_update"]))
        fresh = [r for r in rows if _stamp(r) != seen.get(r["id"])]
        known_tasks = set(context.instance.get_dynamic_partitions(task_parts.name))
        known_projects = set(context.instance.get_dynamic_partitions(project_parts.name))
        new_tasks = sorted({r["id"] for r in fresh} - known_tasks)
        projects = sorted({r["project"] for r in fresh if r.get("project")})
        requests = [dg.RunRequest(run_key=f"task:{r['id']}:{_stamp(r)}", partition_key=r["id"],
                                  asset_selection=[task_archive_key(account)]) for r in fresh]
        requests += [dg.RunRequest(run_key=f"project:{p}:{_digest(fresh, p)}", partition_key=p,
                                   asset_selection=[project_archive_key(account)]) for p in projects]
        seen.update({r["id"]: _stamp(r) for r in fresh})
        return dg.SensorResult(
            run_requests=requests, cursor=json.dumps(seen, separators=(",", ":")),
            dynamic_partitions_requests=[task_parts.build_add_request(new_tasks),
                                         project_parts.build_add_request(sorted(set(projects) - known_projects))])

    return _sensor


def _stamp(row: dict[str, Any]) -> str:
    return str(row.get("last_update"))


def _digest(rows: list[dict[str, Any]], project: str) -> str:
    text = ",".join(sorted(f"{r['id']}@{_stamp(r)}" for r in rows if r.get("project") == project))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
