"""The missing-archives sensor (automation/missing.py): Dagster's "Failed and missing" backfill for any number of task
partitions, in ranged runs, against the local ClearML server and a real Dagster instance.

Each tick is evaluated with ``build_sensor_context``; the runs it requests are executed as the daemon would launch
them (the archive job, the request's partition or range tags), and the next tick sees what they did.
"""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from clearml_assets.archives.assets import build_clearml_task_archive_asset, clearml_task_partitions, task_archive_key
from clearml_assets.archives.checks import build_clearml_archive_checks
from clearml_assets.archives.defs import build_archive_defs
from clearml_assets.automation import build_automation_defs
from clearml_assets.automation.missing import (LAUNCHER_TAG, build_clearml_missing_archives_sensor,
                                               consecutive_ranges)
from clearml_assets.automation.sensors import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from clearml_assets.resource import ClearMLResource
from seeding import DemoSpec, RawSeeder

ACCOUNT = "acme"
SPEC = DemoSpec(scalar_series=1, points_per_series=5, log_lines=3, artifacts=0, artifact_bytes=0, plots=0,
                debug_images=0)


def test_ranges_hold_consecutive_partitions_only():
    order = list("abcdefgh")
    assert list(consecutive_ranges(order, list("bcdfgh"), 2)) == [["b", "c"], ["d"], ["f", "g"], ["h"]]
    assert list(consecutive_ranges(order, list("abcdefgh"), 8)) == [order]
    assert list(consecutive_ranges(order, [], 3)) == []


@pytest.fixture
def world(clearml_server, tmp_path):
    seeder = RawSeeder.of(clearml_server)
    project = seeder.project("missing")
    ids = [seeder.seed_task(project, "missing", f"task {i}", SPEC) for i in range(5)]
    bad = uuid.uuid4().hex  # a partition whose task the server does not have: its archive fails every time
    resource = ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / "home"), account=ACCOUNT)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        order = [ids[0], ids[1], ids[2], ids[3], bad, ids[4]]
        instance.add_dynamic_partitions(clearml_task_partitions(ACCOUNT).name, order)
        yield instance, resource, order, bad, tmp_path


def _run(request: dg.RunRequest, instance, resource, root) -> bool:
    """Launch a requested run as the daemon would: the archive asset and its check, the request's tags."""
    asset = build_clearml_task_archive_asset(ACCOUNT)
    result = dg.materialize(
        [asset, *build_clearml_archive_checks(ACCOUNT)], instance=instance, resources={"clearml": resource},
        partition_key=request.partition_key, tags=request.tags, raise_on_error=False,
        selection=[task_archive_key(ACCOUNT)],
        run_config={"ops": {task_archive_key(ACCOUNT).to_python_identifier(): {"config": {"export_root": str(root)}}}})
    return result.success


def _tick(sensor, instance, resource, cursor=None):
    """One tick inside a code location holding the archive assets (ranged run requests resolve against them)."""
    defs = dg.Definitions.merge(build_archive_defs([ACCOUNT]), dg.Definitions(sensors=[sensor],
                                                                              resources={"clearml": resource}))
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                                        definitions=defs))


def test_missing_and_failed_partitions_are_archived_in_ranges_then_alone(world):
    instance, resource, order, bad, tmp_path = world
    sensor = build_clearml_missing_archives_sensor(ACCOUNT, max_partitions_per_run=2, max_runs_in_flight=10)
    assert _run(dg.RunRequest(partition_key=order[0]), instance, resource, tmp_path / "x")  # archived by hand

    first = _tick(sensor, instance, resource)
    ranges = [(r.tags.get(PARTITION_RANGE_START_TAG, r.partition_key), r.tags.get(PARTITION_RANGE_END_TAG,
                                                                                   r.partition_key))
              for r in first.run_requests]
    assert ranges == [(order[1], order[2]), (order[3], bad), (order[5], order[5])]  # consecutive, 2 a run
    assert all(r.tags[LAUNCHER_TAG] == sensor.name for r in first.run_requests)
    outcomes = [_run(r, instance, resource, tmp_path / "x") for r in first.run_requests]
    assert outcomes == [True, False, True]  # the bad task fails its range: both of its partitions failed

    second = _tick(sensor, instance, resource, first.cursor)  # each partition of the failed range in a run of its own
    assert sorted(r.partition_key for r in second.run_requests) == sorted([order[3], bad])
    assert [_run(r, instance, resource, tmp_path / "x") for r in second.run_requests] == [
        r.partition_key != bad for r in second.run_requests]

    third = _tick(sensor, instance, resource, second.cursor)  # the bad one failed on its own: left alone, said so
    assert not third.run_requests
    assert "1 partition(s) failed again" in third.skip_message and bad in third.skip_message
    materialized = instance.get_materialized_partitions(task_archive_key(ACCOUNT))
    assert materialized == set(order) - {bad}


def test_runs_in_flight_are_bounded_and_their_partitions_not_requested_twice(world):
    from dagster._core.storage.dagster_run import DagsterRun

    instance, resource, order, _, _ = world
    sensor = build_clearml_missing_archives_sensor(ACCOUNT, max_partitions_per_run=10, max_runs_in_flight=1)
    instance.add_run(DagsterRun(job_name="clearml_archive_job_acme", run_id=uuid.uuid4().hex,
                                status=dg.DagsterRunStatus.STARTED, tags={LAUNCHER_TAG: sensor.name}))
    busy = _tick(sensor, instance, resource)
    assert not busy.run_requests and "queued or running" in busy.skip_message


def test_the_sensor_is_deployed_stopped_for_every_account():
    defs = build_automation_defs(["personal", "acme"], environ={})
    sensors = {s.name: s for s in defs.sensors}
    for account in ("personal", "acme"):
        sensor = sensors[f"clearml_missing_archives_sensor_{account}"]
        assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
        assert sensor.job_name == f"clearml_archive_job_{account}"
