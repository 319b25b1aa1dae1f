"""Archive assets through Dagster: the CLI path against a persistent DAGSTER_HOME, metadata, the check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dagster as dg

from clearml_assets.archives.assets import task_archive_key
from seeding import DemoSpec, RawSeeder
from clearml_assets.translator import account_slug

MODULE = """
import json, os
from pathlib import Path
from clearml_assets.archives.defs import build_archive_defs
from clearml_assets.local_server import LocalServerInfo
from clearml_assets.resource import ClearMLResource

_info = json.loads(os.environ["ARCHIVE_TEST_SERVER"])
_info["data_dir"] = Path(_info["data_dir"])
clearml = ClearMLResource.for_local_server(LocalServerInfo(**_info))  # home: $CLEARML_ASSETS_HOME
defs = build_archive_defs([clearml.default_account], resources={"clearml": clearml})
"""


@pytest.mark.slow
def test_cli_materializes_a_task_partition_and_the_check_passes(clearml_server, tmp_path: Path):
    from clearml_assets.resource import ClearMLResource

    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("cli"), "cli", "cli task", DemoSpec(4, 25, 20, 2, 4096, 1, 1))
    account = ClearMLResource.for_local_server(info, home=str(tmp_path / "res")).default_account
    slug = account_slug(account)
    (tmp_path / "archdefs.py").write_text(MODULE)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
           "CLEARML_ASSETS_HOME": str(tmp_path / "home"),
           "ARCHIVE_TEST_SERVER": json.dumps({**info.__dict__, "data_dir": str(info.data_dir)})}
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(f"clearml_tasks_{slug}", [task_id])
    finally:
        del os.environ["DAGSTER_HOME"]
    cmd = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "archdefs",
           "--select", f"{slug}/clearml_task_archive", "--partition", task_id]
    for attempt in range(2):
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-4000:]
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            records = instance.fetch_materializations(task_archive_key(account), limit=10).records
            metas = [r.asset_materialization.metadata for r in records]
            checks = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(task_archive_key(account), "archive_matches_manifest"), limit=10)
    finally:
        del os.environ["DAGSTER_HOME"]
    assert len(metas) == 2 and {r.asset_materialization.partition for r in records} == {task_id}
    skipped = sorted(m["skipped_unchanged"].value for m in metas)
    assert skipped == [False, True]
    meta = metas[0]
    archive = Path(meta["archive_path"].value)
    assert archive.is_file() and (tmp_path / "home" / "exports").resolve() in archive.parents
    manifest = json.loads((archive.parent / archive.name.removesuffix(".zip") / "manifest.json").read_text())
    assert meta["archive_sha256"].value == manifest["archive"]["sha256"]
    assert meta["scalar_points"].value == 100 and meta["log_lines"].value == 20
    assert checks and all(c.status.value == "SUCCEEDED" for c in checks)


def test_range_backfill_and_run_config_export_root_pass_the_check(clearml_server, tmp_path: Path):
    from clearml_assets.archives.assets import build_clearml_task_archive_asset, clearml_task_partitions
    from clearml_assets.archives.checks import build_clearml_archive_checks
    from clearml_assets.resource import ClearMLResource

    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    project = seeder.project("range")
    ids = sorted(seeder.seed_task(project, "range", f"range task {i}", DemoSpec(1, 5, 3, 0, 0, 0, 0))
                 for i in range(3))
    resource = ClearMLResource.for_local_server(info, home=str(tmp_path / "res"))
    account = resource.default_account
    asset = build_clearml_task_archive_asset(account)
    checks = build_clearml_archive_checks(account)  # built without a root: the run's config decides
    export_root = tmp_path / "chosen root"
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(clearml_task_partitions(account).name, ids)
        result = dg.materialize(
            [asset, *checks], instance=instance, resources={"clearml": resource},
            run_config={"ops": {task_archive_key(account).to_python_identifier():
                                {"config": {"export_root": str(export_root)}}}},
            tags={"dagster/asset_partition_range_start": ids[0], "dagster/asset_partition_range_end": ids[-1]})
        # what the UI lists: every partition planned for the check in this run is resolved (none left
        # "planned", which the UI shows as skipped), and no record without a partition
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(task_archive_key(account), "archive_matches_manifest"), limit=20)
    assert result.success
    assert sorted((r.partition, r.status.value) for r in history) == [(i, "SUCCEEDED") for i in ids]
    evaluations = result.get_asset_check_evaluations()  # one per partition of the range, each passed
    assert sorted(e.partition for e in evaluations) == ids
    assert all(e.passed for e in evaluations), [e.metadata for e in evaluations]
    assert all(e.target_materialization_data for e in evaluations)
    for e in evaluations:
        assert export_root.resolve() in Path(e.metadata["archive_path"].value).resolve().parents
    assert len(list((export_root / account_slug(account) / "index" / "tasks").glob("*.json"))) == 3
