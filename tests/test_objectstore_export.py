"""Task and project archives with ``export_root="s3://..."`` (SeaweedFS): the exporter works in a local
staging folder, :class:`RemoteExports` uploads verified and skips through the remote manifest, also from a
fresh machine (empty staging) as in a new run container."""

from __future__ import annotations

import json
from pathlib import Path

from seeding import DemoSpec, RawSeeder
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.packing import verify_archive
from clearml_assets.client import ClearMLClient
from clearml_assets.objectstore import RemoteExports

SMALL = DemoSpec(scalar_series=3, points_per_series=40, log_lines=30, artifacts=2, artifact_bytes=4096,
                 plots=2, debug_images=2)


def _client(server) -> ClearMLClient:
    info = server.info
    return ClearMLClient(info.api_host, info.access_key, info.secret_key, account="personal",
                         files_host=info.files_host, web_host=info.web_host)


def _seeder(server) -> RawSeeder:
    info = server.info
    return RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)


def _machine(bucket, client, staging: Path, downloads: list[str]):
    """One "run container": its own empty staging folder, the same bucket."""
    remote = RemoteExports(f"{bucket.url}/exports", bucket.server.storage_options(), staging_root=staging)

    def counting_download(url, dest):
        downloads.append(url)
        return client.download(url, dest)

    return remote, ClearMLTaskExporter(client, "personal", remote.staging, download=counting_download)


def test_task_archive_to_s3_skips_from_a_fresh_machine_and_reexports_on_change(clearml_server, s3_bucket,
                                                                               tmp_path):
    seeder = _seeder(clearml_server)
    task_id = seeder.seed_task(seeder.project("s3"), "s3", "s3-task", SMALL)
    client = _client(clearml_server)
    downloads: list[str] = []
    remote, exporter = _machine(s3_bucket, client, tmp_path / "a", downloads)
    first = remote.export_task(exporter, task_id)
    assert not first.skipped and len(downloads) == 4
    passed, meta = remote.check("personal", "tasks", task_id)
    assert passed and meta["problems"] == [] and meta["archive_sha256"] == first.manifest["archive"]["sha256"]
    rel = first.folder.relative_to(remote.staging).as_posix()
    assert f"exports/{rel}/manifest.json" in s3_bucket.keys()

    fresh, exporter2 = _machine(s3_bucket, client, tmp_path / "b", downloads)
    second = fresh.export_task(exporter2, task_id)
    assert second.skipped and len(downloads) == 4  # nothing fetched from ClearML again
    assert second.manifest == first.manifest and verify_archive(second.archive, second.manifest) == []

    seeder.add_events([{"type": "log", "task": task_id, "timestamp": 4_000_000_000_000, "msg": "late line"}])
    third = fresh.export_task(exporter2, task_id)
    assert not third.skipped
    remote_manifest = fresh.manifest_of(third.folder)
    assert remote_manifest["archive"]["sha256"] == third.manifest["archive"]["sha256"] \
        != first.manifest["archive"]["sha256"]
    assert fresh.check("personal", "tasks", task_id)[0]


def test_project_archive_to_s3_reuses_task_exports_from_the_store(clearml_server, s3_bucket, tmp_path):
    seeder = _seeder(clearml_server)
    ids = seeder.seed_project("p3", 3, DemoSpec(2, 10, 10, 1, 1000, 1, 0), workers=2)
    client = _client(clearml_server)
    downloads: list[str] = []
    remote, exporter = _machine(s3_bucket, client, tmp_path / "a", downloads)
    result = remote.export_project(exporter, "p3")
    assert sorted(r.task_id for r in result.tasks) == sorted(ids) and not result.skipped
    assert remote.check("personal", "projects", result.project_id)[0]
    assert all(remote.check("personal", "tasks", i)[0] for i in ids)
    fetched = len(downloads)

    fresh, exporter2 = _machine(s3_bucket, client, tmp_path / "b", downloads)
    published = []
    publish = fresh.store.publish
    fresh.store.publish = lambda *a, **k: published.append(a[1]) or publish(*a, **k)
    again = fresh.export_project(exporter2, "p3")
    assert again.skipped and all(r.skipped for r in again.tasks) and len(downloads) == fetched
    assert again.manifest["archive"]["sha256"] == result.manifest["archive"]["sha256"]
    assert published == []  # nothing uploaded again
    project_json = json.loads((again.folder / "project.json").read_text())
    assert sorted(t["task_id"] for t in project_json["tasks"]) == sorted(ids)



def test_a_damaged_remote_copy_is_exported_again_and_replaced(clearml_server, s3_bucket, tmp_path):
    seeder = _seeder(clearml_server)
    task_id = seeder.seed_task(seeder.project("dmg"), "dmg", "dmg-task", SMALL)
    client = _client(clearml_server)
    downloads: list[str] = []
    remote, exporter = _machine(s3_bucket, client, tmp_path / "a", downloads)
    first = remote.export_task(exporter, task_id)
    rel = first.folder.relative_to(remote.staging).as_posix()
    s3_bucket.filesystem().pipe(f"{s3_bucket.name}/exports/{rel}/task.json", b"{}")
    assert not remote.check("personal", "tasks", task_id)[0]
    fresh, exporter2 = _machine(s3_bucket, client, tmp_path / "b", downloads)
    again = fresh.export_task(exporter2, task_id)
    assert not again.skipped and len(downloads) == 8  # fetched from ClearML again, not from the bad copy
    passed, meta = fresh.check("personal", "tasks", task_id)
    assert passed, meta["problems"]
