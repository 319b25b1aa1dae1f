"""clearml_assets' Dagster Components in a project made by ``create-dagster``, driven by ``dg`` as a user would.

In a temporary folder: ``create-dagster project`` (no ``uv sync``: the active venv, nothing downloaded), ``dg list
components`` finds the three components through the package's entry point, ``dg scaffold defs`` writes each
``defs.yaml`` (account filled in, commented example), two example lines are uncommented, ``dg check defs`` and
``dg list defs`` load them, every attribute has a description in the schema the UI's docs tab shows, and ``dg launch``
archives a task of the ``local`` account (embedded server in a temporary ``CLEARML_ASSETS_HOME``) with the
component's export root and archive format.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml

from clearml_assets.local_server.ensure import ensure_local_server

from conftest import stop_embedded_server
from seeding import DemoSpec, RawSeeder

BIN = Path(sys.executable).parent
COMPONENTS = {"ClearMLArchivesComponent": "local_archives", "ClearMLDatasetsComponent": "datasets",
              "ClearMLYoloModelComponent": "model"}
SPEC = DemoSpec(scalar_series=2, points_per_series=5, log_lines=4, artifacts=1, artifact_bytes=128, plots=0,
                debug_images=0)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dg")
    home, dagster_home = tmp / "home", tmp / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    root = tmp / "clearml_proj"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    # The project's own package is importable as after `pip install -e .` of it (nothing is downloaded).
    env.update({"CLEARML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))})
    info = ensure_local_server(home, api_port=0, files_port=0, web_port=0)
    timings: dict[str, float] = {}

    def run(*args: str, cwd: Path = root, timeout: float = 300) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        step = f"{Path(args[0]).name} {' '.join(args[1:3])}"
        timings[step] = timings.get(step, 0.0) + time.monotonic() - started
        return proc

    try:
        proc = run(str(BIN / "create-dagster"), "project", "--no-uv-sync", str(root), cwd=tmp)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield SimpleNamespace(root=root, defs=root / "src" / "clearml_proj" / "defs", home=home, info=info,
                              dagster_home=dagster_home, run=run, timings=timings)
    finally:
        stop_embedded_server(home)
        print("\ndg step seconds:", json.dumps({k: round(v, 1) for k, v in timings.items()}))


def dg_(project, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = project.run(str(BIN / "dg"), *args, timeout=timeout)
    assert proc.returncode == 0, f"dg {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def uncomment(path: Path, *attributes: str) -> None:
    lines = [line.replace("  # ", "  ", 1) if line.startswith(tuple(f"  # {a}:" for a in attributes)) else line
             for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_create_dagster_project_lists_scaffolds_checks_and_launches_the_components(project):
    listed = json.loads(dg_(project, "list", "components", "--json").stdout)
    keys = {item["key"] for item in (listed["items"] if isinstance(listed, dict) else listed)}
    assert {f"clearml_assets.{name}" for name in COMPONENTS} <= keys

    for name, folder in COMPONENTS.items():
        extra = ["--account", "local"] if name == "ClearMLArchivesComponent" else []
        dg_(project, "scaffold", "defs", f"clearml_assets.{name}", folder, *extra)
        text = (project.defs / folder / "defs.yaml").read_text()
        assert f"type: clearml_assets.{name}" in text and "  account: local\n" in text
        assert "\n  # " in text  # the commented example
    archives_yaml = project.defs / "local_archives" / "defs.yaml"
    uncomment(archives_yaml, "export_root", "archive_format")
    attributes = yaml.safe_load(archives_yaml.read_text())["attributes"]
    assert attributes["archive_format"] == "tar.gz" and "context.project_root" in attributes["export_root"]

    assert "All definitions loaded successfully" in dg_(project, "check", "defs").stdout
    defs = json.loads(dg_(project, "list", "defs", "--json").stdout)
    assets = {a["asset_key"] for a in defs["assets"]}
    assert {"local/clearml_task_archive", "local/clearml_project_archive", "local/clearml_restored_tasks",
            "datasets/shapes_raw", "datasets/shapes_curated", "datasets/shapes_training_view",
            "training/shapes_yolo"} <= assets
    assert {"clearml_training_job", "clearml_archive_job_local"} <= {j["name"] for j in defs["jobs"]}
    assert "clearml_completed_tasks_sensor_local" in {s["name"] for s in defs["sensors"]}
    assert "clearml_project_archive_schedule_local" in {s["name"] for s in defs["schedules"]}

    # The schema the UI's docs tab shows, as dg reads it: every attribute described (all three components:
    # tests/test_components.py, in process).
    schema = json.loads(dg_(project, "utils", "inspect-component", "clearml_assets.ClearMLArchivesComponent",
                            "--defs-yaml-json-schema").stdout)
    properties = schema["properties"]["attributes"]["properties"]
    assert {"account", "export_root", "archive_format", "projects", "project_archive_cron"} <= set(properties)
    assert not [field for field, spec in properties.items() if not spec.get("description")]

    # A task of the embedded server, added as a partition, archived by `dg launch` with the component's settings.
    info = project.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("dg_project"), "dg_project", "dg task", SPEC)
    proc = project.run(str(BIN / "clearml-assets"), "add-partitions", task_id)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dg_(project, "launch", "--assets", "local/clearml_task_archive", "--partition", task_id, timeout=600)
    with dg.DagsterInstance.from_config(str(project.dagster_home)) as instance:
        record = instance.fetch_materializations(dg.AssetKey(["local", "clearml_task_archive"]), limit=1).records[0]
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["local", "clearml_task_archive"]), "archive_matches_manifest"), limit=1)
    meta = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
    archive = Path(meta["archive_path"])
    assert record.asset_materialization.partition == task_id and meta["task_name"] == "dg task"
    assert archive.name.endswith(".tar.gz") and archive.is_file()
    assert (project.root / "clearml_exports").resolve() in archive.resolve().parents
    assert meta["scalar_points"] == 10 and checks and checks[0].status.value == "SUCCEEDED"
