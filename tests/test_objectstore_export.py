"""Task and project archives with ``export_root="s3://..."`` (SeaweedFS): the exporter works in a local
staging folder, :class:`RemoteExports` uploads verified and skips through the remote manifest, also from a
fresh machine (empty staging) as in a new run container."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seeding import DemoSpec, RawSeeder, client_of
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.packing import verify_archive
from clearml_assets.storage import RemoteExports

SMALL = DemoSpec(scalar_series=3, points_per_series=40, log_lines=30, artifacts=2, artifact_bytes=4096,
                 plots=2, debug_images=2)


class Machines:
    """"Run containers": each its own empty staging folder, all the same bucket and one download count.

    Args:
        server: The ClearML server the exports read.
        bucket: The S3 bucket they publish to.
        tmp: Where the staging folders go.
    """

    def __init__(self, server, bucket, tmp: Path):
        self.client = client_of(server)
        self.bucket = bucket
        self.tmp = tmp
        self.downloads: list[str] = []

    def new(self, name: str) -> tuple[RemoteExports, ClearMLTaskExporter]:
        """A fresh machine staging in ``tmp/name``: its remote exports and its counting exporter."""
        remote = RemoteExports(f"{self.bucket.url}/exports", self.bucket.server.storage_options(),
                               staging_root=self.tmp / name)

        def counting_download(url, dest):
            self.downloads.append(url)
            return self.client.files.download(url, dest)

        return remote, ClearMLTaskExporter(self.client, "personal", remote.staging, download=counting_download)


@pytest.fixture
def machines(clearml_server, s3_bucket, tmp_path) -> Machines:
    """Machines on the test's server and bucket, staging below ``tmp_path``."""
    return Machines(clearml_server, s3_bucket, tmp_path)


def seed_small_task(server, project: str) -> tuple[RawSeeder, str]:
    """A seeder and the id of one completed ``SMALL`` task in ``project``."""
    seeder = RawSeeder.of(server)
    return seeder, seeder.seed_task(seeder.project(project), project, f"{project}-task", SMALL)


def test_task_archive_to_s3_skips_from_a_fresh_machine_and_reexports_on_change(clearml_server, s3_bucket,
                                                                               machines):
    seeder, task_id = seed_small_task(clearml_server, "s3")
    remote, exporter = machines.new("a")
    first = remote.export_task(exporter, task_id)
    assert not first.skipped and len(machines.downloads) == 4
    passed, meta = remote.check("personal", "tasks", task_id)
    assert passed and meta["problems"] == [] and meta["archive_sha256"] == first.manifest["archive"]["sha256"]
    rel = first.folder.relative_to(remote.staging).as_posix()
    assert f"exports/{rel}/manifest.json" in s3_bucket.keys()

    fresh, exporter2 = machines.new("b")
    second = fresh.export_task(exporter2, task_id)
    assert second.skipped and len(machines.downloads) == 4  # nothing fetched from ClearML again
    assert second.manifest == first.manifest and verify_archive(second.archive, second.manifest) == []

    seeder.add_events([{"type": "log", "task": task_id, "timestamp": 4_000_000_000_000, "msg": "late line"}])
    third = fresh.export_task(exporter2, task_id)
    assert not third.skipped
    remote_manifest = fresh.manifest_of(third.folder)
    assert remote_manifest["archive"]["sha256"] == third.manifest["archive"]["sha256"] \
        != first.manifest["archive"]["sha256"]
    assert fresh.check("personal", "tasks", task_id)[0]


def test_project_archive_to_s3_reuses_task_exports_from_the_store(clearml_server, machines):
    ids = RawSeeder.of(clearml_server).seed_project("p3", 3, DemoSpec(2, 10, 10, 1, 1000, 1, 0), workers=2)
    remote, exporter = machines.new("a")
    result = remote.export_project(exporter, "p3")
    assert sorted(r.task_id for r in result.tasks) == sorted(ids) and not result.skipped
    assert remote.check("personal", "projects", result.project_id)[0]
    assert all(remote.check("personal", "tasks", i)[0] for i in ids)
    fetched = len(machines.downloads)

    fresh, exporter2 = machines.new("b")
    published = []
    publish = fresh.store.publish
    fresh.store.publish = lambda *a, **k: published.append(a[1]) or publish(*a, **k)
    again = fresh.export_project(exporter2, "p3")
    assert again.skipped and all(r.skipped for r in again.tasks) and len(machines.downloads) == fetched
    assert again.manifest["archive"]["sha256"] == result.manifest["archive"]["sha256"]
    assert published == []  # nothing uploaded again
    project_json = json.loads((again.folder / "project.json").read_text())
    assert sorted(t["task_id"] for t in project_json["tasks"]) == sorted(ids)



def test_a_damaged_remote_copy_is_exported_again_and_replaced(clearml_server, s3_bucket, machines):
    _, task_id = seed_small_task(clearml_server, "dmg")
    remote, exporter = machines.new("a")
    first = remote.export_task(exporter, task_id)
    rel = first.folder.relative_to(remote.staging).as_posix()
    s3_bucket.filesystem().pipe(f"{s3_bucket.name}/exports/{rel}/task.json", b"{}")
    assert not remote.check("personal", "tasks", task_id)[0]
    fresh, exporter2 = machines.new("b")
    again = fresh.export_task(exporter2, task_id)
    assert not again.skipped and len(machines.downloads) == 8  # fetched from ClearML again, not from the bad copy
    passed, meta = fresh.check("personal", "tasks", task_id)
    assert passed, meta["problems"]


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def test_a_damaged_remote_copy_is_replaced_from_the_same_staging_folder(clearml_server, s3_bucket, machines):
    """The machine that published an export still has it in staging: the next run re-reads the store's copy
    (not just its manifest) and uploads what does not match, without fetching anything from ClearML again."""
    _, task_id = seed_small_task(clearml_server, "same")
    remote, exporter = machines.new("a")
    first = remote.export_task(exporter, task_id)
    fetched = len(machines.downloads)
    fs, base = s3_bucket.filesystem(), f"{s3_bucket.name}/exports"
    rel = first.folder.relative_to(remote.staging).as_posix()
    archive = f"{base}/{first.archive.relative_to(remote.staging).as_posix()}"
    index = f"{base}/personal/index/tasks/{task_id}.json"
    published = []
    publish = remote.store.publish
    remote.store.publish = lambda *a, **k: published.append(a[1]) or publish(*a, **k)
    damages = {  # what is done to the store's copy -> whether the archive check sees it
        "a listed file rewritten": (lambda: fs.pipe(f"{base}/{rel}/task.json", b"{}"), True),
        "the archive rewritten, same size": (lambda: fs.pipe(archive, _flip_last_byte(fs.cat(archive))), True),
        "an unlisted file added": (lambda: fs.pipe(f"{base}/{rel}/planted.txt", b"x"), True),
        "the index entry removed": (lambda: fs.rm(index), True),
        "the archive's sidecar rewritten": (lambda: fs.pipe(f"{archive}.sha256", b"0" * 64), False),
    }
    for what, (damage, seen_by_check) in damages.items():
        damage()
        assert remote.check("personal", "tasks", task_id)[0] is not seen_by_check, what
        again = remote.export_task(exporter, task_id)
        assert again.skipped, what  # the staging copy is current: built from staging, not from ClearML
        passed, meta = remote.check("personal", "tasks", task_id)
        assert passed, (what, meta)
        assert fs.cat(f"{archive}.sha256") == Path(f"{first.archive}.sha256").read_bytes(), what
        assert published == [first.folder], what
        published.clear()
    assert len(machines.downloads) == fetched
    remote.export_task(exporter, task_id)
    assert published == []  # an intact copy is re-read, not uploaded again
