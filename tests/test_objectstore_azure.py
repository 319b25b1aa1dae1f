"""Archives on Azure Blob Storage (``export_root="az://container/prefix"``) against Azurite on loopback, the
credentials from the standard Azure environment (``AZURE_STORAGE_CONNECTION_STRING``): the same object-store path
as ``s3://`` (local staging, verified upload, manifest last, remote skip, the check re-reading the store, a
damaged store copy found and replaced)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from clearml_assets.archives.assets import build_clearml_task_archive_asset, clearml_task_partitions
from clearml_assets.archives.checks import build_clearml_archive_checks
from clearml_assets.storage import ArchiveStore, check_remote_export
from clearml_assets.resource import ClearMLResource
from seeding import DemoSpec, RawSeeder


def test_task_archive_asset_to_azure_its_check_and_a_tampered_member(clearml_server, azurite, az_container,
                                                                     tmp_path: Path, monkeypatch):
    task_id = RawSeeder.of(clearml_server).seed_project("az", 1, DemoSpec(3, 30, 25, 2, 4096, 1, 1), workers=1)[0]
    account = ClearMLResource.for_local_server(clearml_server.info).default_account
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    asset, checks = build_clearml_task_archive_asset(account), build_clearml_archive_checks(account)
    root = f"{az_container}/exports"
    run_config = {"ops": {asset.key.to_python_identifier(): {"config": {"export_root": root}}}}
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(clearml_task_partitions(account).name, [task_id])

        def run(machine: str) -> tuple[dict, dg.AssetCheckEvaluation]:
            # a machine of its own: its home (and staging folder under it); nothing shared but the store
            resource = ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / machine))
            result = dg.materialize([asset, *checks], instance=instance, partition_key=task_id,
                                    resources={"clearml": resource}, run_config=run_config)
            assert result.success
            assert any((tmp_path / machine / "staging").rglob("manifest.json"))  # built under the resource's home
            [materialization] = result.asset_materializations_for_node(asset.node_def.name)
            [check] = result.get_asset_check_evaluations()
            return materialization.metadata, check

        first, check = run("machine-a")
        assert check.passed, check.metadata
        assert first["skipped_unchanged"].value is False and first["scalar_points"].value == 90
        url = first["archive_url"].value
        assert url.startswith(f"{root}/") and url.endswith(".zip")
        fs = azurite.filesystem()
        stored = fs.find(az_container.removeprefix("az://"))
        assert url.removeprefix("az://") in stored and any(p.endswith("/manifest.json") for p in stored)

        second, check = run("machine-b")  # a fresh run container: the store's manifest says it is current
        assert second["skipped_unchanged"].value is True and check.passed
        assert second["archive_sha256"].value == first["archive_sha256"].value

        log = next(p for p in stored if p.endswith("/console.log"))
        original = fs.cat(log)
        fs.pipe(log, b"tampered\n")
        passed, meta = check_remote_export(ArchiveStore(root, {}), account, "tasks", task_id)
        assert not passed and any("console.log" in p for p in meta["problems"])

        third, check = run("machine-c")  # the damaged copy is not current: exported and uploaded again
        assert third["skipped_unchanged"].value is False and check.passed, check.metadata
        assert fs.cat(log) == original
