"""Benchmark at a ClearML deployment's scale: 100,000 tasks, a 10,000-partition backfill, a 20,000-task project.

A local server (its own process, reached by URL as a shared server is) is seeded with ``--tasks`` tasks
(:mod:`scale_seed`: three templates through the REST API, every other task written straight into the server's
store, which is set-up, not what is measured): most small (40 scalar points, 20 log lines, a plot, a debug
image, a 16 KB artifact), 1% big (``--big-events`` scalar points and as many log lines; their events are seeded
in the backfill's project, where they are read), ``--artifact-tasks`` with an artifact of ``--artifact-mb`` MB.
Dagster runs on PostgreSQL when Debian's ``postgresql`` is installed (else SQLite), with the project's own code
location (``clearml_assets.definitions``, the account ``scale`` from the environment). Then, in one run, each phase
run whatever the one before gave (a failed phase is printed):

1. **sensor**: the completed-task sensor as deployed (``clearml_completed_tasks_sensor_scale``, default bounds)
   takes every task into partitions, tick after tick in a child process as the daemon's code server evaluates
   it (partition requests applied to the instance as the daemon does; runs are not launched): ticks, HTTP
   requests, wall time, slowest tick, the process's peak memory; then idle ticks (target <= 3 requests).
2. **ui**: ``dagster dev`` with the instance holding every task as a partition: the asset's partitions page and
   launching a backfill of its missing partitions from the UI, timed in headless Chromium (``/usr/bin/chromium``
   through Playwright); the backfill launched there is cancelled, not run.
3. **backfill**: for each ``--concurrency`` level, ``dagster dev`` with a run queue of that many runs, a backfill
   of the ``--backfill`` partitions of project ``scale/backfill`` launched as the UI launches it (GraphQL
   ``launchPartitionBackfill``; the asset's ``BackfillPolicy`` batches them into runs), timed from the launch to
   the end of its last run, each level into its own export root; every partition checked archived once with
   the seeded counts; the time per run outside the asset (run start to end minus the asset's step). Beside it
   the bare parallel transfer of the same bytes (bench_export's, with the same page caps) with as many
   requests in flight as the level's runs may have (16 each). The runs use ``--executor`` (default
   ``in_process``: no process per step) and ``--per-run`` task ids a run (default 250; the product's default
   is 25, set with ``CLEARML_ASSETS_PARTITIONS_PER_RUN``).
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
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import bench_export  # noqa: E402
import scale_seed  # noqa: E402
from seeding import RawSeeder  # noqa: E402

ACCOUNT = "scale"
BIN = Path(sys.executable).parent
TASK_ASSET = [ACCOUNT, "clearml_task_archive"]
SENSOR = f"clearml_completed_tasks_sensor_{ACCOUNT}"
IN_FLIGHT_PER_RUN = 16  # a run's exporter: at most twice its max_workers (8) requests in flight


def load() -> str:
    """The load averages, for printing beside a figure."""
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ------------------------------------------------------------------------------------------ environment
@dataclasses.dataclass
class Deployment:
    """The Dagster side: its home, the environment of every Dagster process, the storage in use."""

    work: Path
    env: dict[str, str]
    storage: str
    pg: Any = None

    def write_yaml(self, max_concurrent_runs: int) -> None:
        base = self.pg.dagster_yaml(self.db) if self.pg else "telemetry:\n  enabled: false\n"
        queue = ("run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
                 f"  config:\n    max_concurrent_runs: {max_concurrent_runs}\n    dequeue_interval_seconds: 1\n")
        (Path(self.env["DAGSTER_HOME"]) / "dagster.yaml").write_text(base + queue)

    db = "dagster_scale"

    def instance(self):
        import dagster as dg

        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_")})
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])


def deployment(work: Path, info, choice: str) -> Deployment:
    """Dagster's home (PostgreSQL storage when installed, else SQLite) and the ``scale`` account's env."""
    home = work / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_", "DAGSTER_"))}
    suffix = ACCOUNT.upper()
    env.update({"DAGSTER_HOME": str(home), "CLEARML_ASSETS_HOME": str(work / "home"),
                "CLEARML_ASSETS_DEFAULT_ACCOUNT": ACCOUNT, "CLEARML_ASSETS_ARCHIVE_CRON": "off",
                f"CLEARML_KEY_{suffix}": info.access_key, f"CLEARML_SECRET_{suffix}": info.secret_key,
                f"CLEARML_API_HOST_{suffix}": info.api_host, f"CLEARML_FILES_HOST_{suffix}": info.files_host,
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    deploy = Deployment(work, env, "sqlite")
    if choice != "sqlite":
        from pgserver import postgres_bin_dir, start_postgres

        if postgres_bin_dir() is not None:
            deploy.pg = start_postgres()
            deploy.pg.create_database(deploy.db)
            env["DAGSTER_PG_PASSWORD"] = deploy.pg.password
            deploy.storage = "postgres"
        elif choice == "postgres":
            raise SystemExit("--storage postgres: PostgreSQL is not installed (apt-get install -y postgresql)")
    deploy.write_yaml(0)
    return deploy


@contextmanager
def dagster_dev(deploy: Deployment, max_concurrent_runs: int, log: Path, extra_env: dict | None = None
                ) -> Iterator[str]:
    """``dagster dev`` (webserver and daemon) on the project's code location; yields its URL."""
    deploy.write_yaml(max_concurrent_runs)
    port = scale_seed.free_port("127.0.0.1")
    env = {**deploy.env, **(extra_env or {})}
    out = log.open("w")
    proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-m", "clearml_assets.definitions", "-h", "127.0.0.1",
                             "-p", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while not _answers(f"{url}/server_info"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dagster dev did not come up:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        graphql(url, "mutation { setNuxSeen }")
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 600) -> dict:
    resp = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout)
    resp.raise_for_status()
    body = resp.json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL error: {json.dumps(body['errors'])[:2000]}")
    return body["data"]


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


# ---------------------------------------------------------------------------------------------- backfill
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidSubsetError { message }
  }
}"""


def launch_backfill(url: str, keys: list[str]) -> str:
    data = graphql(url, LAUNCH, {"params": {"partitionNames": keys, "assetSelection": [{"path": TASK_ASSET}],
                                            "fromFailure": False, "tags": []}})["launchPartitionBackfill"]
    if data["__typename"] != "LaunchBackfillSuccess":
        raise SystemExit(f"backfill not launched: {json.dumps(data)[:2000]}")
    return data["backfillId"]


def wait_backfill(deploy: Deployment, backfill_id: str, timeout: float) -> list:
    """Wait until the backfill is done; returns its runs."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    with deploy.instance() as instance:
        deadline = time.monotonic() + timeout
        while True:
            backfill = instance.get_backfill(backfill_id)
            if backfill.status not in (BulkActionStatus.REQUESTED,):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"backfill {backfill_id} not done after {timeout:.0f} s")
            time.sleep(2)
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        return [(r, instance.get_run_stats(r.run_id), instance.get_run_step_stats(r.run_id)) for r in runs]


def run_backfill_level(deploy: Deployment, keys: list[str], concurrency: int, settings: dict[str, str]) -> dict:
    root_home = deploy.work / f"home_c{concurrency}"
    log = deploy.work / f"dagster_dev_c{concurrency}.log"
    with dagster_dev(deploy, concurrency, log, {"CLEARML_ASSETS_HOME": str(root_home), **settings}) as url:
        say(f"backfill of {len(keys):,} partitions at {concurrency} concurrent run(s): launching; {load()}")
        started = time.time()
        backfill_id = launch_backfill(url, keys)
        launched = time.time() - started
        runs = wait_backfill(deploy, backfill_id, timeout=48 * 3600)
    ends = [stats.end_time for _, stats, _ in runs if stats.end_time]
    wall = max(ends) - started if ends else float("nan")
    outside = [(stats.end_time - stats.start_time) - sum((s.end_time or 0) - (s.start_time or 0) for s in steps)
               for _, stats, steps in runs if stats.end_time and stats.start_time]
    failed = [r.run_id for r, _, _ in runs if r.status.value != "SUCCESS"]
    return {"concurrency": concurrency, "wall": wall, "launch": launched, "runs": len(runs), "failed": failed,
            "outside_mean": sum(outside) / max(1, len(outside)), "root": str(root_home / "exports"),
            "load": os.getloadavg()}


def check_backfill(deploy: Deployment, keys: list[str], root: str) -> list[str]:
    """Partitions without exactly one materialization into ``root`` (a level's export root)."""
    import dagster as dg

    problems: list[str] = []
    with deploy.instance() as instance:
        counts: dict[str, int] = {}
        for start in range(0, len(keys), 1000):  # 1,000 partitions x 3 levels: below the 10,000 records a call
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(TASK_ASSET), asset_partitions=keys[start:start + 1000]),
                limit=10_000).records
            for record in records:
                meta = record.asset_materialization.metadata
                folder = str(getattr(meta.get("folder"), "value", ""))
                if folder.startswith(root):
                    counts[record.asset_materialization.partition] = counts.get(
                        record.asset_materialization.partition, 0) + 1
                    if str(getattr(meta.get("status"), "value", "")) != "ok":
                        problems.append(f"{record.asset_materialization.partition}: status "
                                        f"{getattr(meta.get('status'), 'value', None)}")
    problems += [f"{k}: {counts.get(k, 0)} materializations" for k in keys if counts.get(k, 0) != 1]
    return problems


def bare_transfer(seeded: scale_seed.Seeded, ids: list[str], in_flight: int, work: Path) -> float:
    info = seeded.server.info
    reader = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    urls = bench_export.file_urls(reader, ids)
    seconds = bench_export.bare_downloads(reader.token, urls, work / "bare_files", in_flight)
    shutil.rmtree(work / "bare_files", ignore_errors=True)
    return seconds + bench_export.bare_events(reader, ids, in_flight)


def run_backfill(deploy: Deployment, seeded: scale_seed.Seeded, levels: list[int], settings: dict[str, str]
                 ) -> list[dict]:
    keys = seeded.ids["scale/backfill"]
    rows = []
    say(f"backfill settings: {settings}")
    for n in levels:
        level = run_backfill_level(deploy, keys, n, settings)
        problems = check_backfill(deploy, keys, level["root"])
        say(f"bare parallel transfer of the same {len(keys):,} tasks, {IN_FLIGHT_PER_RUN * n} requests in "
            f"flight; {load()}")
        bare = bare_transfer(seeded, keys, IN_FLIGHT_PER_RUN * n, deploy.work)
        level.update(bare=bare, problems=len(problems))
        say(f"backfill at {n} concurrent run(s): {level['wall']:.1f} s for {len(keys):,} partitions in "
            f"{level['runs']} runs ({len(level['failed'])} failed; launch {level['launch']:.1f} s; per run "
            f"{level['outside_mean']:.1f} s outside the asset); bare transfer {bare:.1f} s; ratio "
            f"{level['wall'] / bare:.2f} (target <= 1.5); wrong or missing archives {len(problems)}; "
            "load average {:.1f} {:.1f} {:.1f}".format(*level["load"]))
        for line in problems[:5]:
            say(f"  {line}")
        shutil.rmtree(level["root"], ignore_errors=True)
        rows.append(level)
    return rows


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


# ---------------------------------------------------------------------------------------------------- UI
def run_ui(deploy: Deployment, partitions: int) -> dict:
    """The task archive's partitions page and a backfill of its missing partitions, timed in Chromium."""
    from chromium import CHROMIUM, chromium_page

    if not CHROMIUM.is_file():
        say(f"ui: no Chromium at {CHROMIUM} (apt-get install chromium); skipped")
        return {}
    out: dict[str, Any] = {}
    shots = ROOT / "test-artifacts" / "bench_scale_ui"
    shots.mkdir(parents=True, exist_ok=True)
    with dagster_dev(deploy, 0, deploy.work / "dagster_dev_ui.log") as url, \
            chromium_page(600_000, ("--disable-quic",), viewport={"width": 1600, "height": 1000}) as page:
        say(f"ui: {partitions:,} partitions; opening the asset's partitions page; {load()}")
        started = time.perf_counter()
        page.goto(f"{url}/assets/{'/'.join(TASK_ASSET)}?view=partitions")
        page.get_by_text(f"{partitions:,}").first.wait_for()
        out["partitions_page"] = time.perf_counter() - started
        page.screenshot(path=str(shots / "partitions.png"))
        say(f"ui: partitions page showed {partitions:,} partitions after {out['partitions_page']:.1f} s; {load()}")
        out.update(_launch_missing(page, url, shots))
        say(f"ui: backfill of the missing partitions: dialog {out['dialog']:.1f} s, launch "
            f"{out['launch']:.1f} s ({out.get('backfill_partitions', '?')} partitions requested); {load()}")
    return out


def _launch_missing(page, url: str, shots: Path) -> dict:
    """Materialize... > Failed and missing > Launch backfill, as a person does; timed until the backfill exists."""
    import re

    from playwright.sync_api import expect

    out: dict[str, Any] = {}
    before = _backfill_ids(url)
    started = time.perf_counter()
    page.get_by_role("button", name=re.compile("Materialize")).first.click()
    page.get_by_role("button", name="Failed and missing", exact=True).click()
    launch = page.get_by_role("button", name=re.compile(r"^Launch (\d+ runs?|backfill)$")).first
    expect(launch).to_be_enabled(timeout=600_000)
    out["dialog"] = time.perf_counter() - started
    page.screenshot(path=str(shots / "launch_dialog.png"))
    started = time.perf_counter()
    launch.click()
    deadline = time.monotonic() + 600
    while not (new := [b for b in _backfill_ids(url) if b["id"] not in before]):
        if time.monotonic() > deadline:
            raise SystemExit("the UI launched no backfill within 600 s")
        time.sleep(0.5)
    out["launch"] = time.perf_counter() - started
    out["backfill_partitions"] = new[0]["numPartitions"]
    page.screenshot(path=str(shots / "launched.png"))
    graphql(url, "mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }",
            {"id": new[0]["id"]})
    return out


def _backfill_ids(url: str) -> list[dict]:
    data = graphql(url, "{ partitionBackfillsOrError(limit: 5) { ... on PartitionBackfills { results { id "
                        "numPartitions status } } } }")
    return data["partitionBackfillsOrError"]["results"]


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

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    spec = scale_seed.ScaleSpec()
    parser.add_argument("--tasks", type=int, default=spec.tasks, help="tasks on the server (default 100,000)")
    parser.add_argument("--backfill", type=int, default=spec.backfill, help="partitions backfilled (10,000)")
    parser.add_argument("--project", type=int, default=spec.project, help="tasks of the big project (20,000)")
    parser.add_argument("--big-events", type=int, default=spec.big_events, help="scalar points and log lines "
                                                                                "of a big task (100,000)")
    parser.add_argument("--artifact-tasks", type=int, default=spec.artifact_tasks)
    parser.add_argument("--artifact-mb", type=int, default=spec.artifact_mb)
    parser.add_argument("--concurrency", default="1,2,4", help="concurrent runs of the backfill levels")
    parser.add_argument("--phases", default="sensor,ui,backfill,project")
    parser.add_argument("--executor", default="in_process", help="CLEARML_ASSETS_EXECUTOR of the backfill's "
                        "runs (default in_process; '' for Dagster's multiprocess default)")
    parser.add_argument("--per-run", default="250", help="CLEARML_ASSETS_PARTITIONS_PER_RUN of the backfill "
                        "(task ids a run; default 250, the product's default is 25)")
    parser.add_argument("--storage", choices=["auto", "postgres", "sqlite"], default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the servers it started
    spec = scale_seed.ScaleSpec(tasks=args.tasks, backfill=args.backfill, project=args.project,
                                project_small=max(1, args.project // 10), big_events=args.big_events,
                                artifact_tasks=args.artifact_tasks, artifact_mb=args.artifact_mb)
    phases = set(args.phases.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    seeded = deploy = None
    ok = True
    try:
        say(f"seeding {spec}; {load()}")
        t0 = time.perf_counter()
        seeded = scale_seed.seed(spec, work / "server", work / "server.log")
        say(f"seeded {spec.tasks:,} tasks ({seeded.events:,} events) in {time.perf_counter() - t0:.0f} s; {load()}")
        deploy = deployment(work, seeded.server.info, args.storage)
        say(f"Dagster storage: {deploy.storage}")
        if "sensor" in phases:
            ok &= _phase("sensor", lambda: run_sensor(deploy, spec.tasks + 3)["ok"])  # + the 3 templates
        elif phases & {"ui", "backfill"}:
            with deploy.instance() as instance:  # what the sensor would have added
                instance.add_dynamic_partitions(f"clearml_tasks_{ACCOUNT}", seeded.ids["scale/backfill"])
        if "ui" in phases:
            ok &= _phase("ui", lambda: bool(run_ui(deploy, _partition_count(deploy))))
        if "backfill" in phases:
            settings = {"CLEARML_ASSETS_EXECUTOR": args.executor, "CLEARML_ASSETS_PARTITIONS_PER_RUN": args.per_run}
            levels = [int(n) for n in args.concurrency.split(",")]
            ok &= _phase("backfill", lambda: all(not r["problems"] and not r["failed"]
                                                 for r in run_backfill(deploy, seeded, levels, settings)))
        if "project" in phases:
            ok &= _phase("project", lambda: run_project(deploy, seeded)["ratio"] <= 1.2)
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
