"""The README's CLI path, verbatim: ``dagster asset materialize -m clearml_assets.definitions`` with a
persistent ``DAGSTER_HOME`` and the ``local`` account (embedded server in a tmp ``CLEARML_ASSETS_HOME``),
for one task partition (missing first, then added with ``clearml-assets add-partitions``) and for the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from clearml_assets.local_server.ensure import ensure_local_server

from conftest import run_sdk_script, sdk_env, stop_embedded_server

BIN = Path(sys.executable).parent
TASK_ARCHIVE = "local/clearml_task_archive"
VIEW_KEY = dg.AssetKey(["datasets", "shapes_training_view"])
MODEL_KEY = dg.AssetKey(["training", "shapes_yolo"])


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    home, dagster_home = tmp / "home", tmp / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update({"CLEARML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                "CLEARML_ASSETS_ARCHIVE_CRON": "off"})
    # What the `local` account does on first use; the CLI runs below find this server and reuse it.
    info = ensure_local_server(home, api_port=0, files_port=0, web_port=0)
    try:
        def run(*args: str, timeout: float = 300, path: str | None = None, **extra: str
                ) -> subprocess.CompletedProcess:
            run_env = {**env, **extra, **({"PATH": path} if path else {})}
            return subprocess.run(list(args), env=run_env, cwd=tmp, capture_output=True, text=True, timeout=timeout)

        def instance() -> dg.DagsterInstance:
            return dg.DagsterInstance.from_config(str(dagster_home))

        yield SimpleNamespace(tmp=tmp, home=home, info=info, run=run, instance=instance,
                              sdk_env=sdk_env(info, tmp / "sdkhome"))
    finally:
        stop_embedded_server(home)


def materialize(*args: str) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "clearml_assets.definitions", *args]


def latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    records = instance.fetch_materializations(key, limit=1).records
    assert records, f"no materialization of {key.to_user_string()}"
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}


@pytest.mark.slow
def test_task_partition_missing_then_added_then_materialized(cli):
    out = run_sdk_script("""
        from clearml import Task
        task = Task.init(project_name="cli_project", task_name="cli task", auto_connect_frameworks=False,
                         auto_resource_monitoring=False, auto_connect_streams=False)
        for i in range(5):
            task.get_logger().report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
        task.get_logger().report_text("hello from the CLI test")
        print("ID", task.id, task.project)
        task.close()
    """, cli.sdk_env, timeout=120, cwd=cli.tmp)
    task_id, project_id = out.stdout.split("ID ", 1)[1].split()[:2]

    # Not a partition yet: Dagster refuses before any run starts.
    proc = cli.run(*materialize("--select", TASK_ARCHIVE, "--partition", task_id))
    assert proc.returncode != 0
    assert f"partition key `{task_id}`" in proc.stderr

    # An id the account does not have: a clear error, nothing added.
    proc = cli.run(str(BIN / "clearml-assets"), "add-partitions", "nosuchtask0000", task_id)
    assert proc.returncode == 1
    assert "ClearML account 'local' has no task with id 'nosuchtask0000'" in proc.stderr
    assert "nothing was added" in proc.stderr
    with cli.instance() as instance:
        assert instance.get_dynamic_partitions("clearml_tasks_local") == []

    proc = cli.run(str(BIN / "clearml-assets"), "add-partitions", task_id)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "added 1 task partition(s) of account 'local'" in proc.stdout
    assert f"  {task_id}  cli task" in proc.stdout.splitlines()  # the task's name beside its id
    command = next(line.strip() for line in proc.stdout.splitlines() if "asset materialize" in line)
    # Dagster's CLI by its full path (DAGSTER_HOME is set in this shell, so it is not repeated)
    assert command == f"{BIN / 'dagster'} asset materialize -m clearml_assets.definitions --select {TASK_ARCHIVE} " \
                      f"--partition {task_id}"
    # ... and the partition carries the task's name before any archive run
    with cli.instance() as instance:
        observed = instance.fetch_observations(dg.AssetKey(["local", "clearml_task_archive"]), limit=1).records
    assert observed[0].partition_key == task_id
    assert observed[0].asset_observation.metadata["task_name"].value == "cli task"

    # The printed command, as printed, from a shell without the venv on its PATH.
    proc = cli.run("sh", "-c", command, path="/usr/bin:/bin")
    assert proc.returncode == 0, proc.stderr[-4000:]
    with cli.instance() as instance:
        assert instance.get_dynamic_partitions("clearml_tasks_local") == [task_id]
        record = instance.fetch_materializations(dg.AssetKey(["local", "clearml_task_archive"]), limit=1).records[0]
        meta = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
    assert record.asset_materialization.partition == task_id
    assert meta["scalar_points"] == 5 and meta["log_lines"] >= 1
    archive = Path(meta["archive_path"])
    assert archive.is_file() and (cli.home / "exports").resolve() in archive.resolve().parents
    assert task_id in meta["task_link"] and meta["task_name"] == "cli task"

    # Adding it again is harmless and says so.
    proc = cli.run(str(BIN / "clearml-assets"), "add-partitions", task_id)
    assert proc.returncode == 0 and "added 0 task partition(s)" in proc.stdout and "1 already there" in proc.stdout

    # Project ids go to the project archive (a task id is not a project id).
    proc = cli.run(str(BIN / "clearml-assets"), "add-partitions", "--projects", task_id)
    assert proc.returncode == 1 and f"has no project with id '{task_id}'" in proc.stderr
    proc = cli.run(str(BIN / "clearml-assets"), "add-partitions", "--projects", project_id)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"--select local/clearml_project_archive --partition {project_id}" in proc.stdout
    with cli.instance() as instance:
        assert instance.get_dynamic_partitions("clearml_projects_local") == [project_id]


@pytest.mark.slow
def test_add_partitions_without_dagster_home_uses_the_homes_instance_and_prints_a_working_command(cli):
    out = run_sdk_script("""
        from clearml import Task
        task = Task.init(project_name="cli_project", task_name="no dagster home", auto_connect_frameworks=False,
                         auto_resource_monitoring=False, auto_connect_streams=False)
        print("ID", task.id)
        task.close()
    """, cli.sdk_env, timeout=120, cwd=cli.tmp)
    task_id = out.stdout.split("ID ", 1)[1].split()[0]
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "CLEARML_ASSETS_HOME")}
    home_dagster = cli.home / "dagster_home"
    proc = subprocess.run([str(BIN / "clearml-assets"), "add-partitions", "--home", str(cli.home), task_id], env=env,
                          cwd=cli.tmp, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"to the Dagster instance in {home_dagster.resolve()}" in proc.stdout
    assert (home_dagster / "dagster.yaml").is_file()  # created as `clearml-assets ui` and the demo do
    command = next(line.strip() for line in proc.stdout.splitlines() if "asset materialize" in line)
    assert command.startswith(f"DAGSTER_HOME={home_dagster.resolve()} CLEARML_ASSETS_HOME={cli.home.resolve()} "
                              f"{BIN / 'dagster'} asset materialize")
    # verbatim, in a shell that has neither variable nor the venv on its PATH
    proc = subprocess.run(["sh", "-c", command], env={**env, "PATH": "/usr/bin:/bin"}, cwd=cli.tmp,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with dg.DagsterInstance.from_config(str(home_dagster)) as instance:
        assert instance.get_dynamic_partitions("clearml_tasks_local") == [task_id]
        record = instance.fetch_materializations(dg.AssetKey(["local", "clearml_task_archive"]), limit=1).records[0]
    assert record.asset_materialization.partition == task_id


def test_run_config_under_an_asset_key_fails_naming_the_op(cli):
    # Dagster accepts (and ignores) an `ops` entry named after the asset; the asset refuses it before any work.
    config = {"ops": {"training/shapes_yolo": {"config": {"epochs": 1}}}}
    proc = cli.run(*materialize("--select", "training/shapes_yolo", "--config-json", json.dumps(config)))
    assert proc.returncode != 0
    assert "Run config key ops.'training/shapes_yolo' names an asset" in proc.stderr
    assert '{"ops": {"training__shapes_yolo": {"config": {...}}}}' in proc.stderr
    typo = {"ops": {"trainig__shapes_yolo": {"config": {"epochs": 1}}}}
    proc = cli.run(*materialize("--select", "training/shapes_yolo", "--config-json", json.dumps(typo)))
    assert proc.returncode != 0 and "did you mean 'training__shapes_yolo'" in proc.stderr


def test_materialize_reads_run_config_files_itself_and_names_a_yaml_error(cli):
    bad = cli.tmp / "bad.yaml"
    bad.write_text("ops:\n  training__shapes_yolo:\n    config: {epochs: 1\n")
    proc = cli.run(str(BIN / "clearml-assets"), "materialize", "--select", "training/shapes_yolo", "-c", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: Run config file '{bad}', line 4, column 1: expected ',' or '}}'" in proc.stderr
    proc = cli.run(str(BIN / "clearml-assets"), "materialize", "--select", "training/shapes_yolo",
                   "--config-json", '{"ops": ')
    assert proc.returncode == 2 and "--config-json is not valid JSON" in proc.stderr and "column 9" in proc.stderr
    # a valid file reaches the run (which then says what to materialize first: nothing was trained yet)
    good = cli.tmp / "good.yaml"
    good.write_text("ops:\n  training__shapes_yolo:\n    config: {epochs: 1}\n")
    proc = cli.run(str(BIN / "clearml-assets"), "materialize", "--select", "training/shapes_yolo", "-c", str(good))
    assert proc.returncode != 0 and "No dataset version to train on" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_model_through_the_cli_trains_on_the_recorded_training_view(cli):
    # Before any dataset version: the model asset says what to materialize first.
    proc = cli.run(*materialize("--select", "training/shapes_yolo"))
    assert proc.returncode != 0
    assert "No dataset version to train on: materialize datasets/shapes_training_view first" in proc.stderr

    data = {"ops": {"datasets__shapes_raw": {"config": {"demo_images": 30, "demo_image_size": 64}}}}
    proc = cli.run(*materialize("--select", "group:datasets",
                                "--config-json", json.dumps(data)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    with cli.instance() as instance:
        view = latest_metadata(instance, VIEW_KEY)

    # A second CLI process: the persistent DAGSTER_HOME tells the model which version to train on.
    tiny = {"ops": {"training__shapes_yolo": {"config": {"epochs": 1, "imgsz": 64, "batch": 8, "close_mosaic": 0}}}}
    proc = cli.run(*materialize("--select", "training/shapes_yolo", "--config-json", json.dumps(tiny)), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with cli.instance() as instance:
        model = latest_metadata(instance, MODEL_KEY)
    assert model["dataset_id"] == view["dataset_id"] and model["epochs"] == 1
    assert model["clearml_account"] == "local" and model["champion_decision"] == "promoted"
    out = run_sdk_script(f"""
        from clearml import Model, Task
        print("STATUS", Task.get_task(task_id={model["task_id"]!r}).get_status())
        print("TAGS", ",".join(Model(model_id={model["model_id"]!r}).tags))
    """, cli.sdk_env, timeout=120, cwd=cli.tmp)
    assert "STATUS completed" in out.stdout and "champion" in out.stdout.split("TAGS ", 1)[1]
