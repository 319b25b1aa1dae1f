"""Issue 24: the bytes of an export are read, hashed and compressed once.

A task folder is hashed while it is packed (no second read of every file before packing); a project archive
holds each task's archive file as it was published (a stored member: no file of a task is packed or compressed
again) and restore reads it, as it reads project archives made in the earlier layout (every task's files).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from clearml_assets.archives import manifest as manifest_module
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.manifest import hash_folder, read_manifest, verify_folder, write_manifest
from clearml_assets.archives.packing import extract_archive, pack_folder, verify_archive, write_archive
from clearml_assets.errors import ArchiveError
from clearml_assets.restore.reader import open_archive
from seeding import DemoSpec, RawSeeder, client_of

SPEC = DemoSpec(scalar_series=2, points_per_series=30, log_lines=40, artifacts=2, artifact_bytes=5000, plots=1,
                debug_images=1)


def test_a_task_folder_is_hashed_while_it_is_packed(clearml_server, tmp_path, monkeypatch):
    """No file of the folder is hashed on its own (sha256_file is never called), yet the manifest lists every
    file with the size and sha256 of the bytes the archive holds."""
    seeder = RawSeeder.of(clearml_server)
    task_id = seeder.seed_task(seeder.project("once"), "once", "hashed once", SPEC)

    def no_second_read(path):
        raise AssertionError(f"{path} was read again to be hashed")

    monkeypatch.setattr(manifest_module, "sha256_file", no_second_read)
    result = ClearMLTaskExporter(client_of(clearml_server), "personal", tmp_path / "x").export_task(task_id)
    monkeypatch.undo()
    assert result.manifest["status"] == "ok"
    assert result.manifest["files"] == hash_folder(result.folder)
    assert verify_archive(result.archive, result.manifest) == []
    assert result.manifest["counts"]["files"] == len(result.manifest["files"])


def test_packing_refuses_a_known_file_that_changed(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"downloaded bytes")
    (folder / "b.txt").write_text("written here")
    known = {"a.bin": {"size": 16, "sha256": "0" * 64}}  # what the download hashed, not what the file holds
    with pytest.raises(ArchiveError, match="a.bin changed while it was being archived"):
        pack_folder(folder, tmp_path / "f.zip", known, lambda files: None)
    finished: dict = {}

    def finish(files: dict) -> None:
        finished.update(files)
        write_manifest(folder, {"kind": "task", "complete": True, "files": files})

    info = pack_folder(folder, tmp_path / "f2.zip", {}, finish)
    assert finished == hash_folder(folder) and info["entries"] == 3
    assert verify_archive(tmp_path / "f2.zip", {"files": finished, "archive": info}) == []


def test_a_project_archive_stores_the_task_archives_as_published(clearml_server, tmp_path):
    seeder = RawSeeder.of(clearml_server)
    project = seeder.project("layout")
    ids = [seeder.seed_task(project, "layout", f"task {i}", SPEC) for i in range(3)]
    result = ClearMLTaskExporter(client_of(clearml_server), "personal", tmp_path / "x").export_project(project)
    assert sorted(r.task_id for r in result.tasks) == sorted(ids)
    with zipfile.ZipFile(result.archive) as zf:
        members = {i.filename.split("/", 1)[1]: i for i in zf.infolist()}
        assert set(members) == {"project.json", "metrics.csv", "manifest.json"} | {
            f"tasks/{r.archive.name}" for r in result.tasks}
        for task in result.tasks:
            member = members[f"tasks/{task.archive.name}"]
            assert member.compress_type == zipfile.ZIP_STORED  # not compressed again
            assert zf.read(member) == task.archive.read_bytes()  # byte for byte the published task archive
    rows = json.loads((result.folder / "project.json").read_text())["tasks"]
    assert sorted(r["archive"] for r in rows) == sorted(f"tasks/{r.archive.name}" for r in result.tasks)
    assert verify_archive(result.archive, result.manifest) == []
    with open_archive(result.archive, workdir=tmp_path) as tasks:
        assert sorted(t.source_task_id for t in tasks) == sorted(ids)
    with open_archive(result.folder, workdir=tmp_path) as tasks:  # the published folder itself
        assert sorted(t.source_task_id for t in tasks) == sorted(ids)
    assert not list(result.folder.parent.glob(".partial.*"))  # no staging or row file left beside it


def test_restore_reads_a_project_archive_of_the_earlier_layout(clearml_server, tmp_path):
    """Project archives made before (``tasks/<task folder>/`` holding every file of the task) stay readable."""
    seeder = RawSeeder.of(clearml_server)
    project = seeder.project("earlier")
    ids = [seeder.seed_task(project, "earlier", f"old {i}", SPEC) for i in range(2)]
    result = ClearMLTaskExporter(client_of(clearml_server), "personal", tmp_path / "x").export_project(project)
    old = tmp_path / "old" / "%project"
    (old / "tasks").mkdir(parents=True)
    shutil.copy(result.folder / "project.json", old)
    for task in result.tasks:
        shutil.copytree(task.folder, old / "tasks" / task.folder.name)
    manifest = {k: v for k, v in read_manifest(result.folder).items() if k not in ("archive", "layout")}
    manifest["files"] = hash_folder(old)
    write_manifest(old, manifest)
    assert verify_folder(old, manifest) == []
    archive = tmp_path / "old" / "%project.zip"
    manifest["archive"] = write_archive(old, archive, manifest["files"])
    with open_archive(archive, workdir=tmp_path) as tasks:
        assert sorted(t.source_task_id for t in tasks) == sorted(ids)
    unpacked = tmp_path / "unpacked"
    extract_archive(archive, unpacked)
    assert (unpacked / "%project" / "tasks" / result.tasks[0].folder.name / "task.json").is_file()


def test_a_tampered_task_archive_inside_a_project_is_refused(clearml_server, tmp_path):
    seeder = RawSeeder.of(clearml_server)
    project = seeder.project("tampered")
    seeder.seed_task(project, "tampered", "victim task", SPEC)
    result = ClearMLTaskExporter(client_of(clearml_server), "personal", tmp_path / "x").export_project(project)
    copy = tmp_path / "copy" / "%project"
    shutil.copytree(result.folder, copy)
    member = copy / "tasks" / result.tasks[0].archive.name
    data = bytearray(member.read_bytes())
    data[len(data) // 2] ^= 0xFF
    member.unlink()  # a hard link: write a new file, not into the published task archive
    member.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="does not match its manifest"):
        with open_archive(copy, workdir=tmp_path):
            pass
    assert verify_archive(result.tasks[0].archive, read_manifest(result.tasks[0].folder)) == []
