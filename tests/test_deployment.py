"""A multi-process deployment, as in docs/deployment.md: Dagster on PostgreSQL with the queued run coordinator,
``dagster-daemon`` launching every run in its own process, and one shared local ClearML server.

Several runs are queued at once from separate CLI processes (archives of different task partitions and a
training job); the daemon runs them concurrently (at most two at a time). Every run succeeds, every archive
holds every scalar point of its task, and nothing a run needs lives on another run's disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.local_server.ensure import ensure_local_server

from conftest import stop_embedded_server
from server_api import RawApi

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
POINTS = 300

DAGSTER_YAML_EXTRA = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
"""


def _task_with_scalars(api: RawApi, name: str) -> str:
    task_id = api.call("tasks.create", name=name, type="training")["id"]
    api.call("tasks.started", task=task_id)
    api.add_batch([{"type": "training_stats_scalar", "task": task_id, "metric": "loss", "variant": "train",
                    "iter": i, "value": 1.0 / (i + 1), "timestamp": 1_700_000_000_000 + i} for i in range(POINTS)])
    api.call("tasks.completed", task=task_id)
    return task_id


@pytest.fixture
def deployment(tmp_path, postgres_server):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    dagster_home.mkdir()
    db = postgres_server.create_database("dagster_deploy")
    (dagster_home / "dagster.yaml").write_text(postgres_server.dagster_yaml(db) + DAGSTER_YAML_EXTRA)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update({"CLEARML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                "CLEARML_ASSETS_ARCHIVE_CRON": "off", "DAGSTER_PG_PASSWORD": postgres_server.password})
    info = ensure_local_server(home)
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], env=env,
                              cwd=REPO, stdout=open(tmp_path / "daemon.log", "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)

    try:
        yield run, info, dagster_home, env
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        stop_embedded_server(home)


def _launch(run, job: str, tags: dict | None = None, config: dict | None = None) -> None:
    args = [str(BIN / "dagster"), "job", "launch", "-w", str(REPO / "workspace.yaml"), "-j", job]
    if tags:
        args += ["--tags", json.dumps(tags)]
    if config:
        args += ["--config-json", json.dumps(config)]
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_daemon_runs_queued_archives_and_training_concurrently(deployment, postgres_server, monkeypatch):
    run, info, dagster_home, env = deployment
    api = RawApi(info)
    task_ids = [_task_with_scalars(api, f"deployed task {i}") for i in range(3)]
    proc = run(str(BIN / "clearml-assets"), "add-partitions", *task_ids)
    assert proc.returncode == 0, proc.stderr[-3000:]

    for task_id in task_ids:
        _launch(run, "clearml_archive_job_local", tags={"dagster/partition": task_id})
    tiny = {"ops": {"datasets__shapes_raw": {"config": {"demo_images": 24, "demo_image_size": 64}},
                    "training__shapes_yolo": {"config": {"epochs": 1, "imgsz": 64, "batch": 8, "close_mosaic": 0}}}}
    _launch(run, "clearml_training_job", config=tiny)

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres_server.password)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = _wait_for_runs(instance, expected=4)
        failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
        assert not failed, [(r.job_name, r.status, _failure(instance, r.run_id)) for r in failed]
        # Each run went through the queue and the daemon's launcher, at most two at a time.
        assert all(_event_time(instance, r.run_id, "RUN_ENQUEUED") for r in runs)
        assert all(_event_time(instance, r.run_id, "RUN_STARTING") for r in runs)
        assert _max_overlap(runs, instance) <= 2
        pids = {r.run_id: _event_pid(instance, r.run_id) for r in runs}
        assert len(set(pids.values())) == len(runs) and os.getpid() not in pids.values()
        for task_id in task_ids:
            record = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["local", "clearml_task_archive"]),
                                      asset_partitions=[task_id]), limit=1).records[0]
            meta = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
            assert meta["scalar_points"] == POINTS, (task_id, meta["scalar_points"])
        model = instance.fetch_materializations(dg.AssetKey(["training", "shapes_yolo"]), limit=1).records
        assert model and model[0].asset_materialization.metadata["clearml_account"].value == "local"
    # The runs all used the one shared server: no second server was started under the home.
    assert len(list((Path(env["CLEARML_ASSETS_HOME"]) / "server").glob("server.json"))) == 1


def _wait_for_runs(instance: dg.DagsterInstance, expected: int, limit_s: float = 1500) -> list[dg.DagsterRun]:
    """All runs once they are finished; the bound only stops a broken deployment from hanging the suite."""
    deadline = time.monotonic() + limit_s
    while True:
        runs = instance.get_runs()
        if len(runs) >= expected and all(r.is_finished for r in runs):
            return runs
        assert time.monotonic() < deadline, [(r.job_name, r.status) for r in runs]
        time.sleep(1)


def _event_time(instance: dg.DagsterInstance, run_id: str, event: str) -> float | None:
    records = instance.get_records_for_run(run_id, of_type=getattr(dg.DagsterEventType, event)).records
    return records[0].event_log_entry.timestamp if records else None


def _event_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START).records
    return records[0].event_log_entry.dagster_event.pid


def _max_overlap(runs: list[dg.DagsterRun], instance: dg.DagsterInstance) -> int:
    spans = [(_event_time(instance, r.run_id, "RUN_START"), _event_time(instance, r.run_id, "RUN_SUCCESS"))
             for r in runs]
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    current = best = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def _failure(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return records[0].event_log_entry.message if records else ""
