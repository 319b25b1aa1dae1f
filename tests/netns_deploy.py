"""The distributed deployment of docs/deployment.md on simulated hosts (tests/netns.py), for the test and the
benchmark: Dagster on PostgreSQL, the Celery executor with Redis, SeaweedFS S3 as the export root, one ClearML
server; a control host running ``dagster-daemon`` (which launches every run there) and worker hosts each running
``dagster-celery worker start``.

The shared services listen on the lab's bridge address in the root namespace and nowhere else; every host
reaches them by that address, has its own HOME (``/home``), ``/tmp``, hostname and loopback, and keeps its own
``DAGSTER_HOME`` (the same ``dagster.yaml``) and staging folder. Two accounts point at the one server: ``local``
(archives) and ``mirror`` (the target of the ``local->mirror`` sync, whose copies go to the project ``Mirror``).

:func:`kill_mid_step` freezes a worker host while one of its steps runs (seen in Dagster's event log) and kills
its whole process tree once the chosen condition holds in the frozen state; the run waits for Celery to hand
the step to another host (late acknowledgement, visibility timeout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import dagster as dg
import psycopg2

from netns import Host, NetnsLab
from pgserver import PostgresServer, start_postgres
from redisserver import RedisServer, start_redis
from seaweedfs import SeaweedFS

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACCOUNT, MIRROR = "local", "mirror"
SYNC_PARTITIONS = "clearml_sync_local_to_mirror"
EXECUTING = "Executing steps"


@dataclass
class Deployment:
    """Everything a distributed run needs, and the handles to stop it."""

    folder: Path
    lab: NetnsLab
    pg: PostgresServer
    redis: RedisServer
    s3: SeaweedFS
    bucket: str
    server: dict
    env: dict[str, str]
    control: Host
    workers: list[Host]
    dagster_home: Path
    visibility_timeout: int
    stops: list[Callable[[], None]] = field(default_factory=list)

    @property
    def export_root(self) -> str:
        return f"s3://{self.bucket}/exports"

    @property
    def sync_root(self) -> str:
        return f"s3://{self.bucket}/sync"

    def worker(self, celery_name: str) -> Host:
        """The host of a Celery worker name (``w1@w1``)."""
        return next(h for h in self.workers if celery_name.split("@")[0] == h.name)

    def instance(self) -> dg.DagsterInstance:
        """The deployment's Dagster instance (PostgreSQL), for the test process."""
        os.environ["DAGSTER_PG_PASSWORD"] = self.pg.password
        return dg.DagsterInstance.from_config(str(self.dagster_home))


def _dagster_yaml(pg: PostgresServer, db: str, max_concurrent_runs: int) -> str:
    return pg.dagster_yaml(db) + (
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        f"  config:\n    max_concurrent_runs: {max_concurrent_runs}\n")


def _start_server(folder: Path, gateway: str) -> dict:
    """``clearml-assets local-server start`` bound to the bridge address (the shared ClearML server)."""
    from clearml_assets.local_server.auth import load_or_create_credentials

    home = folder / "server_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    proc = subprocess.run(
        [str(BIN / "clearml-assets"), "local-server", "start", "--home", str(home), "--host", gateway,
         "--api-port", "0", "--files-port", "0", "--web-port", "none", "--quiet"],
        env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(f"local-server start failed: {proc.stderr[-2000:]}")
    record = json.loads((home / "server" / "server.json").read_text())
    keys = dataclasses.asdict(load_or_create_credentials(home / "server")[0])
    return {"home": home, **record, **keys}


def _host_env(server: dict, pg: PostgresServer, redis: RedisServer, s3: SeaweedFS, visibility_timeout: int
              ) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_", "DAGSTER_", "AWS_"))}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "DAGSTER_HOME": "/home/dagster_home", "DAGSTER_PG_PASSWORD": pg.password,
        "CLEARML_ASSETS_LOCAL_SERVER": server["api_host"],
        "CLEARML_ASSETS_SERVER_ACCESS_KEY": server["access_key"],
        "CLEARML_ASSETS_SERVER_SECRET_KEY": server["secret_key"],
        "CLEARML_KEY_MIRROR": server["access_key"], "CLEARML_SECRET_MIRROR": server["secret_key"],
        "CLEARML_API_HOST_MIRROR": server["api_host"], "CLEARML_FILES_HOST_MIRROR": server["files_host"],
        "CLEARML_WEB_HOST_MIRROR": server["api_host"],
        "CLEARML_ASSETS_SYNC": f"{ACCOUNT}->{MIRROR}", "CLEARML_ASSETS_ARCHIVE_CRON": "off",
        "CLEARML_ASSETS_EXECUTOR": "celery", "CLEARML_ASSETS_CELERY_BROKER": redis.url(0),
        "CLEARML_ASSETS_CELERY_BACKEND": redis.url(1),
        "CLEARML_ASSETS_CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout),
        **s3.env(), "PYTHONUNBUFFERED": "1",
    })
    return env


def _prepare_host(host: Host, dagster_yaml: str, celery_yaml: str) -> None:
    home = host.home / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml)
    (host.home / "celery.yaml").write_text(celery_yaml)


@contextlib.contextmanager
def deployment(folder: Path, lab: NetnsLab, *, workers: int = 2, concurrency: int = 2, visibility_timeout: int = 90,
               max_concurrent_runs: int = 4) -> Iterator[Deployment]:
    """Start the services on the lab's bridge, a control host and ``workers`` worker hosts; stop all after."""
    from clearml_assets.deployment import celery_worker_config

    stops: list[Callable[[], None]] = []
    try:
        pg = start_postgres(listen=lab.gateway, clients=lab.cidr)
        stops.append(pg.stop)
        db = pg.create_database("dagster")
        redis = start_redis(lab.gateway)
        stops.append(redis.stop)
        s3 = SeaweedFS(folder / "s3", ip=lab.gateway)
        stops.append(s3.stop)
        s3.start()
        bucket = s3.create_bucket().name
        server = _start_server(folder, lab.gateway)
        stops.append(lambda: _stop_server(server))
        dagster_yaml = _dagster_yaml(pg, db, max_concurrent_runs)
        dagster_home = folder / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text(dagster_yaml)
        env = _host_env(server, pg, redis, s3, visibility_timeout)
        control = lab.add_host("control")
        hosts = [lab.add_host(f"w{i + 1}") for i in range(workers)]
        for host in [control, *hosts]:
            _prepare_host(host, dagster_yaml, celery_worker_config(visibility_timeout, backend=True))
        dep = Deployment(folder, lab, pg, redis, s3, bucket, server, env, control, hosts, dagster_home,
                         visibility_timeout, stops)
        for host in hosts:
            host.popen([str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                        "-y", "/home/celery.yaml", "-n", host.name, "--", "--concurrency", str(concurrency)],
                       env, host.folder / "worker.log", cwd=REPO)
        control.popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], env,
                      control.folder / "daemon.log", cwd=REPO)
        for host in hosts:
            wait_for(lambda h=host: _started(h, "worker.log", " ready."), f"the Celery worker of {host.name}", 300)
        yield dep
    finally:
        lab.close()  # every host's processes first: nothing holds the services while they stop
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()


def _stop_server(server: dict) -> None:
    with contextlib.suppress(ProcessLookupError, KeyError):
        os.kill(int(server["pid"]), signal.SIGTERM)


def _started(host: Host, log: str, marker: str) -> bool:
    """Whether the host's first process wrote ``marker`` to ``log``; raises if it has exited."""
    text = _text(host.folder / log)
    if marker in text:
        return True
    if host.procs and host.procs[0].poll() is not None:
        raise RuntimeError(f"{host.name}: {log} ended (exit {host.procs[0].returncode}):\n{text[-3000:]}")
    return False


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def wait_for(predicate: Callable[[], bool], what: str, limit_s: float = 600,
             detail: Callable[[], str] | None = None, poll_s: float = 0.2) -> None:
    """Wait for an event; the bound only stops a broken deployment from hanging."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {limit_s:.0f}s: {what}\n{detail() if detail else ''}")
        time.sleep(poll_s)


# ------------------------------------------------------------------------------------------------ backfills
def launch_backfill(instance: dg.DagsterInstance, asset: dg.AssetsDefinition, partitions: list[str],
                    run_config: dict) -> str:
    """A backfill of ``partitions`` of ``asset`` as the UI launches it (the daemon's backfill loop runs it)."""
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    # only keys, partitions and backfill policies matter here: the daemon runs the code location's own assets
    graph = dg.Definitions(assets=[asset], resources={"clearml": dg.ResourceDefinition.none_resource()}
                           ).resolve_asset_graph()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(), asset_graph=graph, partition_names=partitions,
        asset_selection=[asset.key], backfill_timestamp=time.time(), tags={},
        dynamic_partitions_store=instance, all_partitions=False, title=None, description=None,
        run_config=run_config)
    instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


def backfill_done(instance: dg.DagsterInstance, backfill_id: str) -> bool:
    from dagster._core.execution.backfill import BulkActionStatus

    backfill = instance.get_backfill(backfill_id)
    return backfill is not None and backfill.status not in (BulkActionStatus.REQUESTED,)


@dataclass
class StepExecution:
    run_id: str
    step_key: str
    worker: str
    storage_id: int


def step_executions(instance: dg.DagsterInstance, run_id: str) -> list[StepExecution]:
    """Every time a Celery worker started a step of the run (a step handed out twice appears twice)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    found = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or EXECUTING not in (event.message or ""):
            continue
        meta = event.event_specific_data.metadata if event.event_specific_data else {}
        worker = getattr(meta.get("Celery worker"), "value", meta.get("Celery worker"))
        found.append(StepExecution(run_id, event.step_key, str(worker), record.storage_id))
    return found


def step_finished(instance: dg.DagsterInstance, run_id: str, step_key: str) -> bool:
    """Whether the step wrote any result: success, failure or a materialization."""
    kinds = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
             dg.DagsterEventType.ASSET_MATERIALIZATION}
    for kind in kinds:
        records = instance.get_records_for_run(run_id, of_type=kind).records
        if any(r.event_log_entry.step_key == step_key for r in records):
            return True
    return False


def in_progress(instance: dg.DagsterInstance, host: Host) -> list[StepExecution]:
    """The steps of unfinished runs that ``host``'s worker started and that have written no result."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return [e for r in runs for e in step_executions(instance, r.run_id)
            if e.worker.split("@")[0] == host.name and not step_finished(instance, r.run_id, e.step_key)]


def host_queries_settled(dep: Deployment, host: Host) -> bool:
    """No statement of ``host`` still executing in PostgreSQL (what it sent before it froze has landed)."""
    with psycopg2.connect(dep.pg.url("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE client_addr = %s AND state = 'active'",
                    (host.address,))
        return cur.fetchone()[0] == 0


def kill_mid_step(dep: Deployment, instance: dg.DagsterInstance, run_ids: Callable[[], list[str]],
                  ready: Callable[[StepExecution], bool] = lambda _: True, limit_s: float = 900
                  ) -> tuple[StepExecution, list[StepExecution]]:
    """Kill the worker host running a step of one of ``run_ids()`` at a moment when the step has written no
    result and ``ready(step)`` holds, both checked while the host is frozen (so the kill lands exactly there).

    Returns:
        The chosen step execution, and every step the host was running when it was killed (of any run).
    """
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for run_id in run_ids():
            for execution in step_executions(instance, run_id):
                if step_finished(instance, run_id, execution.step_key):
                    continue
                host = dep.worker(execution.worker)
                if not host.pids() or not ready(execution):  # cheap look first; decided below while frozen
                    continue
                host.freeze()
                wait_for(lambda: host_queries_settled(dep, host), f"{host.name}'s statements settled", 60, poll_s=0.02)
                if not step_finished(instance, run_id, execution.step_key) and ready(execution):
                    running = in_progress(instance, host)
                    host.kill()
                    return execution, running
                host.thaw()
        time.sleep(0.1)
    raise AssertionError(f"no step was caught in progress within {limit_s:.0f}s")


# --------------------------------------------------------------------------------------------- what is checked
def step_problems(instance: dg.DagsterInstance, runs: list[dg.DagsterRun], running: list[StepExecution],
                  victim: str) -> list[str]:
    """Every step the killed host was running ran again on another host; no other step ran twice."""
    executions = sorted((e for r in runs for e in step_executions(instance, r.run_id)), key=lambda e: e.storage_id)
    counts: dict[tuple[str, str], list[str]] = {}
    for e in executions:
        counts.setdefault((e.run_id, e.step_key), []).append(e.worker)
    again = {key for key, workers in counts.items() if len(workers) > 1}
    problems = [] if again == {(e.run_id, e.step_key) for e in running} else \
        [f"steps run twice {sorted(again)} != the killed host's {[(e.run_id, e.step_key) for e in running]}"]
    for key in again:
        first, second = counts[key][:2]
        if not first.startswith(f"{victim}@") or second.startswith(f"{victim}@"):
            problems.append(f"{key} ran on {counts[key]}: not the killed host first, another host after")
    return problems


def archive_problems(dep: Deployment, instance: dg.DagsterInstance, archived: list[str]) -> list[str]:
    """Each task partition: exactly one materialization, its archive on the store re-reads against its manifest,
    and the asset check passed."""
    from clearml_assets.archives.assets import task_archive_key
    from clearml_assets.storage import ArchiveStore, check_remote_export

    key = task_archive_key(ACCOUNT)
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=archived),
                                              limit=len(archived) * 3 + 10).records
    counts: dict[str, int] = {}
    for record in records:
        counts[record.asset_materialization.partition] = counts.get(record.asset_materialization.partition, 0) + 1
    problems = [f"{task}: {counts.get(task, 0)} materializations" for task in archived if counts.get(task) != 1]
    store = ArchiveStore(dep.export_root, dep.s3.storage_options())
    for task in archived:
        passed, meta = check_remote_export(store, ACCOUNT, "tasks", task)
        if not passed:
            problems.append(f"{task}: the archive on the store fails its manifest: {meta}")
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(key, "archive_matches_manifest"), limit=len(archived) * 3 + 10)
    passed = {c.partition for c in checks if c.status.value == "SUCCEEDED"}
    problems += [f"{task}: no passed asset check" for task in archived if task not in passed]
    return problems


def sync_problems(instance: dg.DagsterInstance, seeder, synced: list[str], killed_source: str | None) -> list[str]:
    """Each synced task: one materialization, exactly one finished copy (the killed one resumed)."""
    from clearml_assets.restore.engine import INCOMPLETE_TAG, provenance_tag
    from clearml_assets.restore.sync import sync_asset_key

    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=sync_asset_key(ACCOUNT, MIRROR), asset_partitions=synced), limit=len(synced) * 3 + 10).records
    meta: dict[str, list] = {}
    for record in records:
        meta.setdefault(record.asset_materialization.partition, []).append(record.asset_materialization.metadata)
    problems = [f"sync {s}: {len(meta.get(s, []))} materializations" for s in synced if len(meta.get(s, [])) != 1]
    for source in synced:
        copies = seeder.call("tasks.get_all", system_tags=[provenance_tag(source)], search_hidden=True,
                             only_fields=["id", "system_tags", "status"])["tasks"]
        if len(copies) != 1 or INCOMPLETE_TAG in (copies[0].get("system_tags") or []) \
                or copies[0].get("status") != "completed":
            problems.append(f"sync {source}: copies {copies}")
        done = meta.get(source) or [{}]
        want = "resumed" if source == killed_source else "created"
        if getattr(done[0].get(want), "value", None) != 1:
            problems.append(f"sync {source}: not {want} ({ {k: getattr(v, 'value', v) for k, v in done[0].items()} })")
    return problems
