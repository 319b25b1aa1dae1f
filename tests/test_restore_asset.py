"""The restore asset: run config names the archive; the copy appears in the target account with the
metadata naming it, and a second materialization reports it unchanged."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from seeding import DemoSpec, RawSeeder
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.client import ClearMLClient
from clearml_assets.local_server import LocalServer
from clearml_assets.resource import ClearMLResource
from clearml_assets.restore.assets import build_clearml_restore_asset

SPEC = DemoSpec(scalar_series=1, points_per_series=5, log_lines=3, artifacts=0, plots=0, debug_images=0)


def test_restore_asset_materializes_the_copy_once(tmp_path: Path):
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        ia = a.info
        seeder = RawSeeder(ia.api_host, ia.files_host, ia.access_key, ia.secret_key)
        task_id = seeder.seed_task(seeder.project("asset"), "asset", "asset task", SPEC)
        source = ClearMLClient(ia.api_host, ia.access_key, ia.secret_key, files_host=ia.files_host)
        archive = ClearMLTaskExporter(source, "personal", tmp_path / "x").export_task(task_id).archive
        resource = ClearMLResource.for_local_server(b.info, home=str(tmp_path / "home"), account="original")
        asset = build_clearml_restore_asset("original")
        config = {"ops": {"original__clearml_restored_tasks": {"config": {"archive": str(archive)}}}}
        metas = []
        for _ in range(2):
            result = dg.materialize([asset], resources={"clearml": resource}, run_config=config)
            assert result.success
            metas.append(result.asset_materializations_for_node("original__clearml_restored_tasks")[0].metadata)
        assert metas[0]["created"].value == 1 and metas[1]["unchanged"].value == 1
        copy_id = metas[0]["task_ids"].value[task_id]
        assert metas[1]["task_ids"].value[task_id] == copy_id
        assert resource.client("original").tasks.get(copy_id).raw["name"] == "asset task"
