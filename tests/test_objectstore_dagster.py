"""The archive assets and their check with ``export_root="s3://..."`` through Dagster (SeaweedFS on
loopback, credentials from the standard AWS environment): the task archive lands on the store, the check
re-reads it there, and a run on a fresh machine (empty staging folder) skips it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from clearml_assets.archives.assets import build_clearml_task_archive_asset
from clearml_assets.archives.checks import build_clearml_archive_checks
from clearml_assets.translator import account_slug
from seeding import DemoSpec, RawSeeder


def test_task_archive_asset_to_s3_and_its_check(clearml_server, s3_bucket, tmp_path: Path, monkeypatch):
    from clearml_assets.resource import ClearMLResource

    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("dg"), "dg", "dg task", DemoSpec(4, 25, 20, 2, 4096, 1, 1))
    account = ClearMLResource.for_local_server(info).default_account
    for name, value in s3_bucket.server.env().items():
        monkeypatch.setenv(name, value)
    asset = build_clearml_task_archive_asset(account)
    checks = build_clearml_archive_checks(account)
    root = f"{s3_bucket.url}/exports"
    run_config = {"ops": {asset.key.to_python_identifier(): {"config": {"export_root": root}}}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(f"clearml_tasks_{account_slug(account)}", [task_id])
        metas = []
        for home in ("machine-a", "machine-b"):  # two run containers: nothing shared but the bucket
            resource = ClearMLResource.for_local_server(info, home=str(tmp_path / home))  # staging in its home
            result = dg.materialize([asset, *checks], instance=instance, partition_key=task_id,
                                    resources={"clearml": resource}, run_config=run_config)
            assert any((tmp_path / home / "staging").rglob("manifest.json"))
            assert result.success
            [check] = result.get_asset_check_evaluations()
            assert check.passed, check.metadata
            [materialization] = result.asset_materializations_for_node(asset.node_def.name)
            metas.append(materialization.metadata)
    assert [m["skipped_unchanged"].value for m in metas] == [False, True]
    url = metas[0]["archive_url"].value
    assert url.startswith(f"{root}/") and url.endswith(".zip")
    assert url.removeprefix(f"{s3_bucket.url}/") in s3_bucket.keys()
    assert metas[1]["archive_sha256"].value == metas[0]["archive_sha256"].value
