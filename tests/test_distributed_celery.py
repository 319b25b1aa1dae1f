"""The task-archive backfill and a sync backfill on Dagster's Celery executor, with workers on two simulated hosts
(network, mount and UTS namespaces made here; tests/netns.py), one of which is killed mid-restore.

The hosts share only PostgreSQL (Dagster's storage and the locks), Redis (the Celery broker and results),
SeaweedFS S3 (the export root) and the ClearML server, all on the lab bridge's 198.51.100.x address. The
worker host running a sync step is frozen while that step's copy is still tagged ``restore-incomplete`` and
the step has written no result, then its whole process tree is killed. Celery hands the step to the other host
once the visibility timeout has passed (late acknowledgement); the run then succeeds.

In the end: every run succeeded; every task partition has exactly one materialization and a verified archive on
S3 (re-read here, and by the asset check); every synced task has exactly one finished copy; no step but the
steps the killed host was running ran twice; the killed restore was resumed on the other host; and no host took a
lock file (the locks were PostgreSQL's).
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.archives.assets import build_clearml_task_archive_asset, task_archive_key
from clearml_assets.restore.engine import INCOMPLETE_TAG, provenance_tag
from clearml_assets.restore.sync import build_clearml_sync_asset, sync_asset_key
from components import missing_binary, require_or_skip
from netns import lab_unavailable, netns_lab
from netns_deploy import (ACCOUNT, MIRROR, SYNC_PARTITIONS, archive_problems, backfill_done, backfill_runs,
                          deployment, kill_mid_step, launch_backfill, step_executions, step_problems, sync_problems,
                          wait_for)
from pgserver import postgres_bin_dir
from redisserver import redis_binary
from seaweedfs import weed_binary
from seeding import DemoSpec, RawSeeder

ARCHIVED = 50
SYNCED = 3
SMALL = DemoSpec(scalar_series=2, points_per_series=40, log_lines=20, artifacts=1, artifact_bytes=4096, plots=0,
                 debug_images=0)
# big enough that a restore sends several event batches: the window in which its copy is incomplete
RICH = DemoSpec(scalar_series=4, points_per_series=6000, log_lines=6000, artifacts=2, artifact_bytes=256 << 10,
                plots=1, debug_images=1)


def _requirements() -> None:
    require_or_skip(lab_unavailable())
    require_or_skip(None if postgres_bin_dir() else "PostgreSQL is not installed: apt-get install -y postgresql")
    require_or_skip(missing_binary(redis_binary))
    require_or_skip(missing_binary(weed_binary))


def _copies(seeder: RawSeeder, source_id: str) -> list[dict]:
    return seeder.call("tasks.get_all", system_tags=[provenance_tag(source_id)], search_hidden=True,
                       only_fields=["id", "system_tags", "status"])["tasks"]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_killed_worker_host_loses_nothing_and_restores_nothing_twice(tmp_path: Path):
    _requirements()
    started = time.monotonic()
    with netns_lab(tmp_path / "lab") as lab, deployment(tmp_path, lab, workers=2, concurrency=1) as dep, \
            dep.instance() as instance:
        seeder = RawSeeder(dep.server["api_host"], dep.server["files_host"], dep.server["access_key"],
                           dep.server["secret_key"])
        archived = seeder.seed_project("distributed", ARCHIVED, SMALL, workers=4)
        project = seeder.project("distributed sync")
        synced = [seeder.seed_task(project, "distributed sync", f"rich {i}", RICH, i) for i in range(SYNCED)]
        instance.add_dynamic_partitions(f"clearml_tasks_{ACCOUNT}", archived)
        instance.add_dynamic_partitions(SYNC_PARTITIONS, synced)

        archive_asset = build_clearml_task_archive_asset(ACCOUNT)
        sync_asset = build_clearml_sync_asset(ACCOUNT, MIRROR)
        archive_op = task_archive_key(ACCOUNT).to_python_identifier()
        sync_op = sync_asset_key(ACCOUNT, MIRROR).to_python_identifier()
        sync_backfill = launch_backfill(instance, sync_asset, synced, {"ops": {sync_op: {"config": {
            "export_root": dep.sync_root, "project": "Mirror"}}}})
        archive_backfill = launch_backfill(instance, archive_asset, archived, {"ops": {archive_op: {"config": {
            "export_root": dep.export_root}}}})

        def mid_restore(step) -> bool:  # checked while the host is frozen
            source = instance.get_run_by_id(step.run_id).tags["dagster/partition"]
            return any(INCOMPLETE_TAG in (c.get("system_tags") or []) for c in _copies(seeder, source))

        killed, running = kill_mid_step(dep, instance,
                                        lambda: [r.run_id for r in backfill_runs(instance, sync_backfill)], mid_restore)
        killed_at = time.monotonic()
        victim = dep.worker(killed.worker)
        assert (killed.run_id, killed.step_key) in {(e.run_id, e.step_key) for e in running}
        killed_source = instance.get_run_by_id(killed.run_id).tags["dagster/partition"]
        backfills = (archive_backfill, sync_backfill)
        wait_for(lambda: all(backfill_done(instance, b) for b in backfills)
                 and all(r.is_finished for b in backfills for r in backfill_runs(instance, b)),
                 "both backfills finished", 1800,
                 lambda: str([(r.run_id[:8], r.status) for b in backfills for r in backfill_runs(instance, b)]))
        finished = time.monotonic()

        runs = [r for b in backfills for r in backfill_runs(instance, b)]
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), \
            [(r.run_id, r.status) for r in runs]
        problems = step_problems(instance, runs, running, victim.name)
        problems += archive_problems(dep, instance, archived)
        problems += sync_problems(instance, seeder, synced, killed_source)
        assert not problems, problems
        assert len({e.worker for r in runs for e in step_executions(instance, r.run_id)}) == 2  # both hosts worked
        for host in dep.workers + [dep.control]:  # every lock was PostgreSQL's: no host made a lock file
            assert not (host.tmp / "clearml_assets" / "locks").exists(), host.name
        survivor = next(h for h in dep.workers if h is not victim)
        assert (survivor.home / ".clearml_assets" / "staging").is_dir()  # its own HOME, its own staging
    print(f"\ndistributed test: {len(runs)} runs, {ARCHIVED} task partitions + {SYNCED} synced tasks; killed "
          f"{victim.name} mid-restore with {len(running)} steps running; recovered in {finished - killed_at:.0f}s; "
          f"whole test "
          f"{time.monotonic() - started:.0f}s")
