"""Benchmark: a task-archive backfill on Dagster's Celery executor across simulated hosts, one host killed.

The deployment of docs/deployment.md, built by tests/netns_deploy.py (needs root, ``ip``, ``unshare``, cgroup v2,
PostgreSQL, ``redis-server`` and SeaweedFS): a control host running ``dagster-daemon`` and ``--hosts`` worker
hosts running ``dagster-celery worker start``, each its own network/mount/UTS namespace on 198.51.100.0/24,
sharing only PostgreSQL, Redis, S3 and the ClearML server. ``--tasks`` tasks are seeded (raw HTTP, not timed)
and backfilled into ``s3://`` (runs of 25 partitions: the asset's backfill policy) together with a sync backfill
of ``--sync`` richer tasks; while a sync step's copy is incomplete the host running it is frozen and killed
(``--no-kill``: nobody dies). Then it checks what the CI test checks (exactly one verified archive per task, one
finished copy per synced task, no step run twice but the killed host's) and prints the figures.

Usage (as root): python benchmarks/bench_distributed.py [--tasks 300] [--hosts 3] [--sync 4]
       [--visibility-timeout 900] [--no-kill] [--keep]
Exits 1 when anything was lost, duplicated or failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the simulated hosts, services and seeding live with the tests

import dagster as dg  # noqa: E402

from clearml_assets.archives.assets import build_clearml_task_archive_asset, task_archive_key  # noqa: E402
from clearml_assets.restore.engine import INCOMPLETE_TAG, provenance_tag  # noqa: E402
from clearml_assets.restore.sync import build_clearml_sync_asset, sync_asset_key  # noqa: E402
from netns import lab_unavailable, netns_lab  # noqa: E402
from netns_deploy import (ACCOUNT, MIRROR, SYNC_PARTITIONS, archive_problems, backfill_done, backfill_runs,  # noqa: E402
                          deployment, kill_mid_step, launch_backfill, step_executions, step_problems, sync_problems,
                          wait_for)
from seeding import DemoSpec, RawSeeder  # noqa: E402

SMALL = DemoSpec(scalar_series=4, points_per_series=250, log_lines=500, artifacts=1, artifact_bytes=64 << 10,
                 plots=1, debug_images=1)
RICH = DemoSpec(scalar_series=4, points_per_series=6000, log_lines=6000, artifacts=2, artifact_bytes=256 << 10,
                plots=1, debug_images=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300, help="task-archive partitions (default 300)")
    parser.add_argument("--hosts", type=int, default=3, help="worker hosts (default 3)")
    parser.add_argument("--sync", type=int, default=4, help="synced tasks (default 4)")
    parser.add_argument("--concurrency", type=int, default=1, help="Celery processes per worker host (default 1)")
    parser.add_argument("--visibility-timeout", type=int, default=900,
                        help="seconds (default 900: above the slowest 25-task step of a loaded 2-core machine)")
    parser.add_argument("--no-kill", action="store_true", help="kill no host")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    missing = lab_unavailable()
    if missing:
        raise SystemExit(f"cannot make simulated hosts here: {missing}")
    work = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    try:
        with netns_lab(work / "lab") as lab, deployment(work, lab, workers=args.hosts, concurrency=args.concurrency,
                                                        visibility_timeout=args.visibility_timeout) as dep, \
                dep.instance() as instance:
            return _bench(args, dep, instance)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args, dep, instance) -> int:
    seeder = RawSeeder(dep.server["api_host"], dep.server["files_host"], dep.server["access_key"],
                       dep.server["secret_key"])
    t0 = time.perf_counter()
    archived = seeder.seed_project("bench distributed", args.tasks, SMALL, workers=4)
    project = seeder.project("bench distributed sync")
    synced = [seeder.seed_task(project, "bench distributed sync", f"rich {i}", RICH, i) for i in range(args.sync)]
    instance.add_dynamic_partitions(f"clearml_tasks_{ACCOUNT}", archived)
    instance.add_dynamic_partitions(SYNC_PARTITIONS, synced)
    print(f"seeded {len(archived)} + {len(synced)} tasks in {time.perf_counter() - t0:.0f}s; {args.hosts} worker "
          f"hosts x {args.concurrency} Celery processes, visibility timeout {args.visibility_timeout}s", flush=True)
    start = time.perf_counter()
    sync_id = launch_backfill(instance, build_clearml_sync_asset(ACCOUNT, MIRROR), synced, {"ops": {
        sync_asset_key(ACCOUNT, MIRROR).to_python_identifier(): {"config": {
            "export_root": dep.sync_root, "project": "Mirror"}}}})
    archive_id = launch_backfill(instance, build_clearml_task_archive_asset(ACCOUNT), archived, {"ops": {
        task_archive_key(ACCOUNT).to_python_identifier(): {"config": {"export_root": dep.export_root}}}})
    killed, running, victim, killed_source, killed_at = None, [], None, None, None
    if not args.no_kill:
        def mid_restore(step) -> bool:
            source = instance.get_run_by_id(step.run_id).tags["dagster/partition"]
            copies = seeder.call("tasks.get_all", system_tags=[provenance_tag(source)], search_hidden=True,
                                 only_fields=["system_tags"])["tasks"]
            return any(INCOMPLETE_TAG in (c.get("system_tags") or []) for c in copies)

        killed, running = kill_mid_step(dep, instance, lambda: [r.run_id for r in backfill_runs(instance, sync_id)],
                                        mid_restore, limit_s=3600)
        killed_at = time.perf_counter()
        victim = dep.worker(killed.worker).name
        killed_source = instance.get_run_by_id(killed.run_id).tags["dagster/partition"]
        print(f"killed {victim} at {killed_at - start:.0f}s, mid-restore of {killed_source}, with "
              f"{len(running)} step(s) running", flush=True)
    ids = (archive_id, sync_id)
    wait_for(lambda: all(backfill_done(instance, b) for b in ids)
             and all(r.is_finished for b in ids for r in backfill_runs(instance, b)), "both backfills finished", 7200)
    seconds = time.perf_counter() - start
    runs = [r for b in ids for r in backfill_runs(instance, b)]
    problems = [f"run {r.run_id}: {r.status}" for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    if killed is not None:
        problems += step_problems(instance, runs, running, victim)
    problems += archive_problems(dep, instance, archived)
    problems += sync_problems(instance, seeder, synced, killed_source)
    per_host = Counter(e.worker.split("@")[0] for r in runs for e in step_executions(instance, r.run_id))
    print(f"\n{len(archived)} task partitions + {len(synced)} synced tasks, {len(runs)} runs, {args.hosts} worker "
          f"hosts: {seconds:.0f}s end to end = {len(archived) / seconds * 60:.0f} task archives/min "
          f"(steps per host: {dict(sorted(per_host.items()))})")
    if killed_at is not None:
        print(f"recovery: every run finished {time.perf_counter() - killed_at:.0f}s after the kill "
              f"(visibility timeout {args.visibility_timeout}s)")
    for line in problems[:20]:
        print(f"  PROBLEM {line}")
    print("nothing lost, nothing twice" if not problems else f"PROBLEMS: {len(problems)}")
    return 0 if not problems else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
