"""Dagster on PostgreSQL: the README's ``dagster.yaml`` with ``dagster-postgres`` storage, used by the CLI path
(``clearml-assets add-partitions`` then ``dagster asset materialize``) against a real PostgreSQL server.

The other instance-touching tests (sensor ticks, schedules) run on both SQLite and PostgreSQL through the
``dagster_instance`` fixture; this file proves the whole command-line path, with several processes sharing
one database, and that the records really live in PostgreSQL.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from clearml_assets.local_server.ensure import ensure_local_server

from conftest import stop_embedded_server
from server_api import RawApi

BIN = Path(sys.executable).parent
TASK_ARCHIVE = "local/clearml_task_archive"


@pytest.fixture
def pg_cli(tmp_path, postgres_server):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    dagster_home.mkdir()
    db = postgres_server.create_database("dagster_cli")
    (dagster_home / "dagster.yaml").write_text(postgres_server.dagster_yaml(db))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update({"CLEARML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                "CLEARML_ASSETS_ARCHIVE_CRON": "off", "DAGSTER_PG_PASSWORD": postgres_server.password})
    info = ensure_local_server(home)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    try:
        yield run, info, dagster_home, db
    finally:
        stop_embedded_server(home)


@pytest.mark.slow
def test_cli_partition_and_materialization_live_in_postgres(pg_cli, postgres_server, monkeypatch):
    run, info, dagster_home, db = pg_cli
    api = RawApi(info)
    task_id = api.call("tasks.create", name="pg task", type="training")["id"]
    api.call("tasks.started", task=task_id)
    api.add_batch([{"type": "training_stats_scalar", "task": task_id, "metric": "loss", "variant": "train",
                    "iter": i, "value": 1.0 / (i + 1), "timestamp": 1_700_000_000_000 + i} for i in range(4)])
    api.call("tasks.completed", task=task_id)

    proc = run(str(BIN / "clearml-assets"), "add-partitions", task_id)
    assert proc.returncode == 0, proc.stderr[-3000:]
    command = next(line.strip() for line in proc.stdout.splitlines() if "asset materialize" in line)
    argv = shlex.split(command)  # printed with Dagster's CLI by full path (DAGSTER_HOME is set): run verbatim
    assert argv[:3] == [str(BIN / "dagster"), "asset", "materialize"], command
    proc = run(*argv)
    assert proc.returncode == 0, proc.stderr[-4000:]

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres_server.password)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_dynamic_partitions("clearml_tasks_local") == [task_id]
        record = instance.fetch_materializations(dg.AssetKey(["local", "clearml_task_archive"]), limit=1).records[0]
        meta = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
    assert record.asset_materialization.partition == task_id and meta["scalar_points"] == 4

    # The records are in PostgreSQL itself, not in a SQLite file beside dagster.yaml.
    assert not list(dagster_home.rglob("*.db"))
    with psycopg2.connect(postgres_server.url(db)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        runs = cur.fetchone()[0]
        cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s", ("clearml_tasks_local",))
        partitions = cur.fetchall()
    assert runs == 1 and partitions == [(task_id,)]
