"""Benchmark at a ClearML deployment's scale: 100,000 tasks, a 10,000-partition backfill, a 20,000-task project.

A local server (its own process, reached by URL as a shared server is) is seeded with ``--tasks`` tasks
(:mod:`scale_seed`: three templates through the REST API, every other task written straight into the server's
store, which is set-up, not what is measured): most small (40 scalar points, 20 log lines, a plot, a debug
image, a 16 KB artifact), 1% big (``--big-events`` scalar points and as many log lines), ``--artifact-tasks`` with
an artifact of ``--artifact-mb`` MB. Events are seeded where they are read (the backfill's and the two projects'
tasks; in the backfill ``--backfill-big-fraction``, 0.2%, are big); the other tasks are task records only.
Dagster runs on PostgreSQL when Debian's ``postgresql`` is installed (else SQLite), with the project's own code
location (``clearml_assets.definitions``, the account ``scale`` from the environment). Then, in one run, each phase
run whatever the one before gave (a failed phase is printed):

1. **sensor**: the completed-task sensor as deployed (``clearml_completed_tasks_sensor_scale``, default bounds)
   takes every task into partitions, tick after tick in a child process as the daemon's code server evaluates
   it (partition requests applied to the instance as the daemon does; runs are not launched): ticks, HTTP
   requests, wall time, slowest tick, the process's peak memory; then idle ticks (target <= 3 requests).
2. **ui**: ``dagster dev`` with the instance holding every task as a partition: the asset's partitions page,
   launching a backfill of its missing partitions from Dagster's dialog (bounded by ``--ui-dialog-timeout``), and
   turning the missing-archives sensor on from its page (until its first ranged runs are queued), timed in
   headless Chromium (``/usr/bin/chromium`` through Playwright); what they launch is cancelled, not run.
3. **backfill**: for each ``--concurrency`` level, ``dagster dev`` with a run queue of that many runs, a backfill
   of the ``--backfill`` partitions of project ``scale/backfill`` launched as the UI launches it (GraphQL
   ``launchPartitionBackfill``; the asset's ``BackfillPolicy`` batches them into runs), timed from the launch to
   the end of its last run, each level into its own export root; every partition checked archived once with
   the seeded counts; the time per run outside the asset (run start to end minus the asset's step). Beside it
   the bare parallel transfer of the same bytes (bench_export's, with the same page caps) with as many
   requests in flight as the level's runs may have (16 each). The runs use ``--executor`` (default
   ``in_process``: no process per step), ``--per-run`` task ids a run (default 250; the product's default
   is 25, set with ``CLEARML_ASSETS_PARTITIONS_PER_RUN``) and ``DAGSTER_EVENT_BATCH_SIZE`` ``--event-batch-size``.
4. **project**: the project archive of ``scale/project`` (``--project`` tasks) and of ``scale/project_small``
   (a tenth of it) in child processes: peak memory (target: within 20%).

The load average is printed beside every figure (the machine may be shared).

Usage: python benchmarks/bench_scale.py [--tasks 100000] [--backfill 10000] [--project 20000]
           [--big-events 100000] [--artifact-tasks 5] [--artifact-mb 100] [--concurrency 1,2,4]
           [--phases sensor,ui,backfill,project] [--storage auto|postgres|sqlite] [--keep]
A small version, minutes: --tasks 5000 --backfill 500 --project 2000 --big-events 10000 --artifact-mb 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_seed  # noqa: E402
from scale_backfill import run_backfill  # noqa: E402
from scale_deploy import ACCOUNT, ROOT, Deployment, deployment, load, say  # noqa: E402
from scale_ui import run_ui  # noqa: E402

SENSOR = f"clearml_completed_tasks_sensor_{ACCOUNT}"


# ------------------------------------------------------------------------------------------------ sensor
SENSOR_CHILD = """
import json, os, sys, time
import requests
import dagster as dg
counts = {"n": 0}
send = requests.Session.send
def counting(self, request, **kw):
    counts["n"] += 1
    return send(self, request, **kw)
requests.Session.send = counting
from clearml_assets.definitions import defs
from clearml_assets.automation.sensors import PARTITION_RANGE_START_TAG
sensor = defs.get_sensor_def(sys.argv[1])
resources = {"clearml": defs.resources["clearml"]}
def hwm_kb():  # this process's own peak (ru_maxrss would count the parent's memory copied before exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
rss_loaded = hwm_kb()
instance = dg.DagsterInstance.get()
cursor, ticks, t0 = None, [], time.perf_counter()
def tick(cursor):
    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                      resources=resources, definitions=defs)
    before, started = counts["n"], time.perf_counter()
    data = sensor.evaluate_tick(context)
    seconds = time.perf_counter() - started
    for request in data.dynamic_partitions_requests or []:  # what the daemon does with them
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    runs = data.run_requests or []
    tasks = sum(int(r.tags.get("clearml/tasks", 1)) for r in runs)
    return data, {"seconds": seconds, "calls": counts["n"] - before, "runs": len(runs), "tasks": tasks,
                  "applied": time.perf_counter() - started - seconds}
while True:
    data, row = tick(cursor)
    cursor = data.cursor or cursor
    if not row["runs"]:
        break
    ticks.append(row)
wall = time.perf_counter() - t0
idle = [tick(cursor)[1] for _ in range(5)]
print(json.dumps({"ticks": ticks, "wall": wall, "idle": idle, "rss_loaded_kb": rss_loaded,
                  "peak_rss_kb": hwm_kb()}))
"""


def run_sensor(deploy: Deployment, expected: int) -> dict:
    """The deployed sensor taking every task into partitions, in a child process (as the code server)."""
    deploy.write_yaml(0)
    say(f"sensor: catching up on {expected:,} tasks; {load()}")
    proc = subprocess.run([sys.executable, "-c", SENSOR_CHILD, SENSOR], env=deploy.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=14400)
    if proc.returncode != 0:
        raise SystemExit(f"sensor child failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ticks = out["ticks"]
    tasks = sum(t["tasks"] for t in ticks)
    secs = sorted(t["seconds"] for t in ticks)
    idle_calls = max(t["calls"] for t in out["idle"])
    idle_ms = sorted(t["seconds"] for t in out["idle"])[2] * 1000
    say(f"sensor: {tasks:,} tasks into partitions (expected {expected:,}) in {len(ticks)} ticks, "
        f"{sum(t['runs'] for t in ticks):,} runs requested, {sum(t['calls'] for t in ticks):,} HTTP requests, "
        f"{out['wall']:.1f} s wall; tick median {secs[len(secs) // 2]:.2f} s, slowest {secs[-1]:.2f} s; "
        f"peak RSS {out['peak_rss_kb'] / 1024:.0f} MiB (after loading the definitions "
        f"{out['rss_loaded_kb'] / 1024:.0f} MiB); {load()}")
    say(f"sensor idle tick at {expected:,} tasks: {idle_calls} HTTP requests (target <= 3), median "
        f"{idle_ms:.0f} ms; {load()}")
    return {"tasks": tasks, "ok": tasks == expected and idle_calls <= 3, **out}

# ----------------------------------------------------------------------------------------------- project
PROJECT_CHILD = """
import json, sys, time, warnings
import dagster as dg
warnings.filterwarnings("ignore")
from clearml_assets.archives.assets import build_clearml_project_archive_asset, project_archive_key
from clearml_assets.resource import ClearMLResource
project_id, root, account = sys.argv[1], sys.argv[2], sys.argv[3]
asset = build_clearml_project_archive_asset(account)
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions(f"clearml_projects_{account}", [project_id])
def hwm_kb():  # this process's own peak (ru_maxrss would count the parent's memory copied before exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
base = hwm_kb()
t0 = time.perf_counter()
result = dg.materialize([asset], instance=instance, partition_key=project_id,
                        resources={"clearml": ClearMLResource.from_env()},
                        run_config={"ops": {project_archive_key(account).to_python_identifier(): {"config": {
                            "export_root": root}}}})
meta = result.asset_materializations_for_node(project_archive_key(account).to_python_identifier())[0].metadata
print(json.dumps({"seconds": time.perf_counter() - t0, "ok": result.success, "tasks": meta["tasks"].value,
                  "rss_before_kb": base, "peak_rss_kb": hwm_kb()}))
"""


def run_project(deploy: Deployment, seeded: scale_seed.Seeded) -> dict:
    """Peak memory of the project archive of the big project against a tenth of it (each in its own process)."""
    rows = {}
    for name in ("scale/project_small", "scale/project"):
        say(f"project archive of {name} ({len(seeded.ids[name]):,} tasks); {load()}")
        root = deploy.work / f"project_{name.rsplit('/', 1)[-1]}"
        proc = subprocess.run([sys.executable, "-c", PROJECT_CHILD, seeded.projects[name], str(root), ACCOUNT],
                              env=deploy.env, cwd=ROOT, capture_output=True, text=True, timeout=48 * 3600)
        if proc.returncode != 0:
            raise SystemExit(f"project archive of {name} failed:\n{proc.stderr[-4000:]}")
        rows[name] = out = json.loads(proc.stdout.strip().splitlines()[-1])
        say(f"project archive of {name}: {out['tasks']:,} tasks in {out['seconds']:.1f} s, peak RSS "
            f"{out['peak_rss_kb'] / 1024:.0f} MiB (after imports {out['rss_before_kb'] / 1024:.0f} MiB); {load()}")
        shutil.rmtree(root, ignore_errors=True)
    small, big = rows["scale/project_small"]["peak_rss_kb"], rows["scale/project"]["peak_rss_kb"]
    say(f"project archive peak RSS, {len(seeded.ids['scale/project']):,} vs "
        f"{len(seeded.ids['scale/project_small']):,} tasks: {big / small:.2f}x (target <= 1.20)")
    return {"ratio": big / small, **rows}

# -------------------------------------------------------------------------------------------------- main
def _phase(name: str, run) -> bool:
    """Run one phase; a failure is printed and the next phase still runs (the seeding is costly)."""
    try:
        return bool(run())
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, then the other phases go on
        say(f"{name}: FAILED: {type(exc).__name__}: {str(exc)[-3000:]}")
        return False


def _partition_count(deploy: Deployment) -> int:
    with deploy.instance() as instance:
        return len(instance.get_dynamic_partitions(f"clearml_tasks_{ACCOUNT}"))

def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    spec = scale_seed.ScaleSpec()
    parser.add_argument("--tasks", type=int, default=spec.tasks, help="tasks on the server (default 100,000)")
    parser.add_argument("--backfill", type=int, default=spec.backfill, help="partitions backfilled (10,000)")
    parser.add_argument("--project", type=int, default=spec.project, help="tasks of the big project (20,000)")
    parser.add_argument("--big-events", type=int, default=spec.big_events, help="scalar points and log lines "
                                                                                "of a big task (100,000)")
    parser.add_argument("--artifact-tasks", type=int, default=spec.artifact_tasks)
    parser.add_argument("--artifact-mb", type=int, default=spec.artifact_mb)
    parser.add_argument("--backfill-big-fraction", type=float, default=spec.backfill_big_fraction,
                        help="share of the backfill's tasks that are big (0.002: 20 of 10,000)")
    parser.add_argument("--concurrency", default="1,2,4", help="concurrent runs of the backfill levels")
    parser.add_argument("--phases", default="sensor,ui,backfill,project")
    parser.add_argument("--executor", default="in_process", help="CLEARML_ASSETS_EXECUTOR of the backfill's "
                        "runs (default in_process; '' for Dagster's multiprocess default)")
    parser.add_argument("--per-run", default="250", help="CLEARML_ASSETS_PARTITIONS_PER_RUN of the backfill "
                        "(task ids a run; default 250, the product's default is 25)")
    parser.add_argument("--event-batch-size", default="1000", help="DAGSTER_EVENT_BATCH_SIZE of the backfill's runs "
                        "(a range's materializations written in one insert; '' for one row at a time)")
    parser.add_argument("--storage", choices=["auto", "postgres", "sqlite"], default="auto")
    parser.add_argument("--ui-dialog-timeout", type=float, default=600, help="seconds Dagster's backfill dialog "
                        "gets to offer its launch button")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def _run_phases(args: argparse.Namespace, spec: scale_seed.ScaleSpec, seeded: scale_seed.Seeded,
                deploy: Deployment) -> bool:
    phases, ok = set(args.phases.split(",")), True
    if "sensor" in phases:
        ok &= _phase("sensor", lambda: run_sensor(deploy, spec.tasks + 3)["ok"])  # + the 3 templates
    elif phases & {"ui", "backfill"}:
        with deploy.instance() as instance:  # what the sensor would have added
            instance.add_dynamic_partitions(f"clearml_tasks_{ACCOUNT}", seeded.ids["scale/backfill"])
    if "ui" in phases:
        ok &= _phase("ui", lambda: bool(run_ui(deploy, _partition_count(deploy), args.ui_dialog_timeout)))
    if "backfill" in phases:
        settings = {"CLEARML_ASSETS_EXECUTOR": args.executor, "CLEARML_ASSETS_PARTITIONS_PER_RUN": args.per_run,
                    "DAGSTER_EVENT_BATCH_SIZE": args.event_batch_size}
        levels = [int(n) for n in args.concurrency.split(",")]
        ok &= _phase("backfill", lambda: all(not r["problems"] and not r["failed"] and r["wall"] <= 1.5 * r["bare"]
                                             for r in run_backfill(deploy, seeded, levels, settings)))
    if "project" in phases:
        ok &= _phase("project", lambda: run_project(deploy, seeded)["ratio"] <= 1.2)
    return ok


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the servers it started
    spec = scale_seed.ScaleSpec(tasks=args.tasks, backfill=args.backfill, project=args.project,
                                project_small=max(1, args.project // 10), big_events=args.big_events,
                                backfill_big_fraction=args.backfill_big_fraction,
                                artifact_tasks=args.artifact_tasks, artifact_mb=args.artifact_mb)
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    seeded = deploy = None
    ok = False
    try:
        say(f"seeding {spec}; {load()}")
        t0 = time.perf_counter()
        seeded = scale_seed.seed(spec, work / "server", work / "server.log")
        say(f"seeded {spec.tasks:,} tasks ({seeded.events:,} events) in {time.perf_counter() - t0:.0f} s; {load()}")
        deploy = deployment(work, seeded.server.info, args.storage)
        say(f"Dagster storage: {deploy.storage}")
        ok = _run_phases(args, spec, seeded, deploy)
    finally:
        if seeded is not None:
            seeded.server.stop()
        if deploy is not None and deploy.pg is not None:
            deploy.pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    say("every target met, nothing lost" if ok else "A TARGET MISSED, A PHASE FAILED OR SOMETHING LOST")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
