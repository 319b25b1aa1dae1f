"""``build_clearml_missing_archives_sensor``: archive every task partition that is missing or failed, in ranged runs.

Dagster's own "Materialize... > Failed and missing" dialog lists every partition before it can launch: at tens of
thousands of task partitions it never becomes clickable (dagster-io/dagster#15679, #11157, #10330). This sensor is
the same action for any number of partitions, one partition per task still: turned on (UI: Automation), each tick
reads the asset's partition status once (Dagster's status cache: materialized, failed, in progress) and requests
ranged runs of up to ``CLEARML_ASSETS_PARTITIONS_PER_RUN`` consecutive partitions that are missing or failed,
keeping at most ``max_runs_in_flight`` of its runs queued or running. Partitions in progress are left to their
run. A partition whose ranged run failed is retried in a run of its own (one bad task no longer holds up the
others of its range); one whose own run (launched by this sensor) failed is left alone and counted in the tick's
skip reason: a run of it launched by hand, once the cause is fixed, archives it. When nothing is missing the
tick skips: the sensor can stay on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import dagster as dg

from ..archives.assets import clearml_task_partitions, task_archive_key
from ..archives.defs import partitions_per_run
from ..translator import DagsterClearMLTranslator, account_slug
from .jobs import build_clearml_archive_job
from .sensors import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

LAUNCHER_TAG = "clearml/launcher"
RETRY_TAG = "clearml/retry"
_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED]


def clearml_missing_archives_sensor_name(account: str) -> str:
    """``clearml_missing_archives_sensor_<account>``."""
    return f"clearml_missing_archives_sensor_{account_slug(account)}"


@dataclass
class MissingPlan:
    """What one tick found.

    Attributes:
        ranged: Partitions to archive in ranges (missing, or failed in a run this sensor did not launch).
        single: Partitions whose ranged run (launched by this sensor) failed: each gets a run of its own.
        given_up: Partitions whose own run (launched by this sensor) failed: left alone.
        in_progress: Partitions a queued or running run will archive.
        total: Every partition.
    """

    ranged: list[str] = field(default_factory=list)
    single: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    in_progress: int = 0
    total: int = 0


def plan_missing(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: dg.DynamicPartitionsDefinition,
                 launcher: str, keys: Sequence[str] | None = None) -> MissingPlan:
    """Sort the asset's partitions into what to archive and how (see :class:`MissingPlan`).

    Args:
        keys: The partitions' keys in order, when already read (else read here).
    """
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    keys = instance.get_dynamic_partitions(partitions.name) if keys is None else keys
    status = get_and_update_asset_status_cache_value(instance, key, partitions)
    if status is None:
        return MissingPlan(ranged=list(keys), total=len(keys))
    materialized = set(status.deserialize_materialized_partition_subsets(partitions).get_partition_keys())
    failed = set(status.deserialize_failed_partition_subsets(partitions).get_partition_keys())
    running = set(status.deserialize_in_progress_partition_subsets(partitions).get_partition_keys())
    retry = _failed_by(instance, key, failed, launcher)
    plan = MissingPlan(in_progress=len(running), total=len(keys))
    for partition in keys:
        if partition in running or (partition in materialized and partition not in failed):
            continue
        how = retry.get(partition, "ranged")
        (plan.ranged if how == "ranged" else plan.single if how == "single" else plan.given_up).append(partition)
    return plan


def _failed_by(instance: dg.DagsterInstance, key: dg.AssetKey, failed: set[str], launcher: str) -> dict[str, str]:
    """How each failed partition is retried, from the run that failed it: ``single`` after a ranged run of this
    sensor, ``none`` after a run of its own by this sensor, else ``ranged``."""
    if not failed:
        return {}
    attempts = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)
    run_ids = sorted({attempts[p][0] for p in failed if p in attempts})
    tags = {}
    for start in range(0, len(run_ids), 100):
        for run in instance.get_runs(filters=dg.RunsFilter(run_ids=run_ids[start:start + 100])):
            tags[run.run_id] = run.tags
    out = {}
    for partition in failed:
        run_tags = tags.get(attempts[partition][0], {}) if partition in attempts else {}
        if run_tags.get(LAUNCHER_TAG) == launcher:
            out[partition] = "none" if run_tags.get(RETRY_TAG) == "single" else "single"
    return out


def consecutive_ranges(order: Sequence[str], wanted: Sequence[str], size: int) -> Iterator[list[str]]:
    """``wanted`` in runs of at most ``size`` partitions that are consecutive in ``order`` (a ranged run archives
    every partition between its first and last)."""
    wanted_set, current = set(wanted), []
    for partition in order:
        if partition in wanted_set and len(current) < size:
            current.append(partition)
            continue
        if current:
            yield current
        current = [partition] if partition in wanted_set else []
    if current:
        yield current


def build_clearml_missing_archives_sensor(
    account: str,
    *,
    job: dg.UnresolvedAssetJobDefinition | None = None,
    max_partitions_per_run: int | None = None,
    max_runs_in_flight: int = 4,
    minimum_interval_seconds: int = 30,
    translator: DagsterClearMLTranslator | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    name: str | None = None,
) -> dg.SensorDefinition:
    """The sensor archiving every missing or failed task partition of ``account`` (module docstring).

    Args:
        account: ClearML account name.
        job: The task archive job (default: ``clearml_archive_job_<account>``).
        max_partitions_per_run: Partitions a ranged run archives (default ``CLEARML_ASSETS_PARTITIONS_PER_RUN``).
        max_runs_in_flight: Most of its runs queued or running at once (new runs are requested as they finish).
        minimum_interval_seconds: Seconds between ticks.
        translator: The translator the archive assets were built with (their key).
        default_status: STOPPED (default): turn it on to launch.
        name: Sensor name (default ``clearml_missing_archives_sensor_<account>``).
    """
    sensor_name = name or clearml_missing_archives_sensor_name(account)
    key, partitions = task_archive_key(account, translator), clearml_task_partitions(account)
    per_run = max(1, max_partitions_per_run or partitions_per_run())

    @dg.sensor(name=sensor_name, job=job or build_clearml_archive_job(account, translator),
               minimum_interval_seconds=minimum_interval_seconds, default_status=default_status,
               description=f"Archives every task partition of ClearML account {account!r} that is missing or "
                           f"failed, in ranged runs of up to {per_run} consecutive partitions, at most "
                           f"{max_runs_in_flight} runs at a time (Dagster's 'Failed and missing' backfill, for any "
                           "number of partitions). Turn it on to launch; it skips once every partition is archived.")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        instance = context.instance
        room = max_runs_in_flight - instance.get_runs_count(
            dg.RunsFilter(tags={LAUNCHER_TAG: sensor_name}, statuses=_IN_FLIGHT))
        if room <= 0:
            return dg.SkipReason(f"{max_runs_in_flight} runs of this sensor are queued or running; more are "
                                 "requested as they finish.")
        order = instance.get_dynamic_partitions(partitions.name)  # read once a tick: tens of thousands of keys
        plan = plan_missing(instance, key, partitions, sensor_name, order)
        generation = int(context.cursor or 0) + 1
        batches = [(b, "range") for b in consecutive_ranges(order, plan.ranged, per_run)] + \
            [([p], "single") for p in plan.single]
        requests = [_run_request(sensor_name, generation, batch, how) for batch, how in batches[:room]]
        left = len(plan.ranged) + len(plan.single) - sum(len(b) for b, _ in batches[:room])
        note = (f"{len(plan.given_up)} partition(s) failed again in a run of their own and are left to a run "
                f"launched by hand (first: {plan.given_up[0]})" if plan.given_up else "")
        if not requests:
            return dg.SkipReason(f"Nothing to launch: {plan.total} partition(s), {plan.in_progress} in progress"
                                 f"{'; ' + note if note else ''}.")
        context.log.info(f"{sum(len(b) for b, _ in batches[:room])} missing or failed partition(s) in "
                         f"{len(requests)} run(s); {left} left for the next ticks; {plan.in_progress} in progress"
                         f"{'; ' + note if note else ''}.")
        return dg.SensorResult(run_requests=requests, cursor=str(generation))

    return _sensor


def _run_request(launcher: str, generation: int, batch: list[str], how: str) -> dg.RunRequest:
    tags = {LAUNCHER_TAG: launcher, "clearml/tasks": str(len(batch))}
    if how == "single":
        tags[RETRY_TAG] = "single"
    run_key = f"{generation}:{batch[0]}..{batch[-1]}+{len(batch)}"
    if len(batch) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=batch[0], tags=tags)
    return dg.RunRequest(run_key=run_key, tags={**tags, PARTITION_RANGE_START_TAG: batch[0],
                                                PARTITION_RANGE_END_TAG: batch[-1]})
