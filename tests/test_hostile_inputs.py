"""Hostile input, one table: names, artifact URIs, archive members and oversized values, end to end.

Each row puts one hostile value where ClearML users can put it (project, task, artifact, metric and
debug-image names; an artifact's URI; a member of an archive to unpack; a huge log line, metric name or
frame query) on a local server, archives the task with the real exporter and checks that every path
stays inside the export root, the original is kept, nothing foreign is fetched, and nothing crashes.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from clearml_assets.archives import ClearMLTaskExporter, extract_archive, original_name
from seeding import DemoSpec, RawSeeder
from clearml_assets.client import ClearMLClient, redact_url_credentials
from clearml_assets.datasets.frame_query import FrameQueryError, select_frames
from clearml_assets.errors import ArchiveError

NAMES = ["../../etc/passwd", "/etc/passwd", "a/b\\c/..", "nul\x00byte", "ctl\x01\x1b[31m\nnext line",
         "x" * 300, "é" * 300, "e\u0301" * 100, "😀/../😀", "CON", "trailing dots...", "  spaced  ",
         "\u202eRTL override", "C:\\Windows\\system32", "%2e%2e%2f", "ok\u200bzero-width"]
FOREIGN_URIS = ["file:///etc/passwd", "http://{other}/x.bin", "http://user:pass@{other}/x.bin",
                "{files}/a/../../../etc/passwd", "ftp://{other}/x.bin"]
MEMBERS = ["../escaped.txt", "/abs/escaped.txt", "a/../../escaped.txt", "symlink",
           "linked/escaped.txt",  # through a link already in the target folder
           "bomb"]  # 64 MiB of zeros in a small archive, over the size allowed
PAIRS = ["Model|model", "\u00e9|e\u0301", "CON|con", "a.|a", "x|x "]  # case, NFC/NFD, device, trailing dot/space
OVERSIZED = ["10 MB log line", "100k-char metric name", "huge frame query", "deeply nested frame query",
             "1 MB task name", "20,000 artifacts"]
TABLE = ([("name", v) for v in NAMES] + [("foreign uri", v) for v in FOREIGN_URIS]
         + [("archive member", v) for v in MEMBERS]
         + [("name pair", v) for v in PAIRS] + [("oversized", v) for v in OVERSIZED])


class _Listener:
    """A loopback port that counts connections: a foreign URI on it must never be fetched."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture
def world(clearml_server, tmp_path: Path):
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="hostile",
                           files_host=info.files_host, web_host=info.web_host)
    root = tmp_path / "exports"
    return seeder, ClearMLTaskExporter(client, "hostile", root), root, info


def _assert_inside(root: Path) -> None:
    real = root.resolve()
    outside = [p for p in root.rglob("*") if real not in p.resolve().parents]
    assert not outside, f"paths outside the export root: {outside[:3]}"


def _hostile_name(world, value: str) -> None:
    seeder, exporter, root, _ = world
    try:
        project_name = value
        project = seeder.project(value)
    except RuntimeError as exc:  # like the real server, no empty or blank path components in project names
        assert "Invalid project name" in str(exc)
        project_name = "hostile project"
        project = seeder.project(project_name)
    task_id = seeder.seed_task(project, project_name, value, DemoSpec(1, 3, 3, 0, 0, 0, 0), complete=False)
    data = b"artifact bytes"
    url = seeder.upload("/hostile/artifact.bin", data)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": value, "type": "custom", "mode": "output", "uri": url, "content_size": len(data)}])
    now = int(time.time() * 1000)
    image = seeder.upload("/hostile/image.png", b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    seeder.add_events([
        {"type": "training_stats_scalar", "task": task_id, "timestamp": now, "iter": 0, "metric": value,
         "variant": value, "value": 1.0},
        {"type": "training_debug_image", "task": task_id, "timestamp": now, "iter": 0, "metric": value,
         "variant": value, "key": value, "url": image}])
    sibling = seeder.seed_task(project, project_name, value + " 2", DemoSpec(1, 1, 1, 0, 0, 0, 0), complete=False)

    first, second = exporter.export_task(task_id), exporter.export_task(sibling)
    _assert_inside(root)
    assert first.folder != second.folder and first.archive != second.archive
    names = json.loads((first.folder / "task.json").read_text())["names"]
    assert names["task"] == value.strip() or names["task"] == value
    # the name as ClearML keeps it (the server drops empty path parts: '/etc/passwd' is project 'etc/passwd')
    kept = seeder.call("projects.get_by_id", project=project)["project"]["name"]
    assert kept in (project_name, project_name.strip(), "/".join(p for p in project_name.strip().split("/") if p))
    assert names["project"] == kept
    assert first.counts["scalar_points"] == 3 + 1 and first.counts["artifact_files"] == 1
    assert first.counts["debug_image_files"] == 1
    extracted = extract_archive(first.archive, root.parent / "unpacked")
    assert extracted and all((root.parent / "unpacked").resolve() in p.resolve().parents for p in extracted)


def _foreign_uri(world, value: str) -> None:
    seeder, exporter, root, info = world
    listener = _Listener()
    uri = value.format(other=listener.address, files=info.files_host)
    task_id = seeder.seed_task(seeder.project("foreign uris"), "foreign uris", "foreign uri task",
                               DemoSpec(1, 2, 2, 1, 100, 0, 0), complete=False)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": "foreign", "type": "custom", "mode": "output", "uri": uri}])
    result = exporter.export_task(task_id)
    _assert_inside(root)
    assert listener.connections == 0
    index = json.loads((result.folder / "artifacts" / "index.json").read_text())
    records = [a["download"] for a in index if a["download"]["uri"] == redact_url_credentials(uri)]
    # recorded as an external reference with its reason, never fetched, not a failure
    assert records and records[0]["status"] == "external" and records[0]["reason"]
    assert not [i for i in result.issues if i.get("uri") == redact_url_credentials(uri)]
    assert result.counts["artifact_files"] == 1 and result.counts["scalar_points"] == 2  # the rest is whole
    archived = json.dumps(result.manifest) + (result.folder / "task.json").read_text()
    assert "user:pass" not in archived  # a URL's credentials are masked, the rest of it kept


def _archive_member(world, value: str) -> None:
    _, _, root, _ = world
    root.mkdir(parents=True, exist_ok=True)
    for fmt in ("zip", "tar.gz"):
        path = root / f"crafted.{fmt}"
        if fmt == "zip":
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr("fine.txt", "fine")
                if value == "bomb":
                    zf.writestr(zipfile.ZipInfo("escaped.txt"), bytes(64 << 20), zipfile.ZIP_DEFLATED)
                elif value == "symlink":
                    info = zipfile.ZipInfo("link")
                    info.external_attr = (0o120777 << 16)
                    zf.writestr(info, "/etc/passwd")
                else:
                    zf.writestr(value, "escaped")
        else:
            with tarfile.open(path, "w:gz") as tf:
                for name, data in (("fine.txt", b"fine"),
                                   ("escaped.txt", bytes(64 << 20)) if value == "bomb" else (value, b"escaped")):
                    info = tarfile.TarInfo("link" if name == "symlink" else name)
                    if name == "symlink":
                        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                    else:
                        info.size = len(data)
                    tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
        target = root.parent / f"unpack_{fmt}"
        if value.startswith("linked/"):
            (root.parent / "outside").mkdir(exist_ok=True)
            target.mkdir()
            (target / "linked").symlink_to(root.parent / "outside", target_is_directory=True)
        with pytest.raises(ArchiveError, match="refus|outside|escap"):
            extract_archive(path, target, max_bytes=(16 << 20) if value == "bomb" else None)
        assert not list(root.parent.rglob("escaped.txt")) and not (target / "link").exists()
        assert not (target / "fine.txt").exists()  # every member is checked before anything is written


def _name_pair(world, value: str) -> None:
    """Two names that some file systems or users confuse stay two folders, each named reversibly."""
    seeder, exporter, root, _ = world
    pair = value.split("|")
    task_id = seeder.seed_task(seeder.project("name pairs"), "name pairs", "pair " + value,
                               DemoSpec(1, 1, 1, 0, 0, 0, 0), complete=False)
    artifacts, events, now = [], [], int(time.time() * 1000)
    for index, name in enumerate(pair):
        url = seeder.upload(f"/pairs/{index}/same.bin", name.encode())
        artifacts.append({"key": name, "type": "custom", "mode": "output", "uri": url,
                          "content_size": len(name.encode())})
        image = seeder.upload(f"/pairs/{index}/same.png", b"\x89PNG\r\n\x1a\n" + name.encode())
        events.append({"type": "training_debug_image", "task": task_id, "timestamp": now, "iter": 0,
                       "metric": name, "variant": "v", "url": image})
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=artifacts)
    seeder.add_events(events)
    result = exporter.export_task(task_id)
    _assert_inside(root)
    assert result.counts["artifact_files"] == 2 and result.counts["debug_image_files"] == 2
    for kind, prefix in (("artifacts", "output."), ("debug_images", "")):
        folders = sorted(p for p in (result.folder / kind).iterdir() if p.is_dir())
        assert len(folders) == 2, folders
        assert sorted(original_name(p.name[len(prefix):]) for p in folders) == sorted(pair)
        contents = {f.read_bytes() for folder in folders for f in folder.rglob("*") if f.is_file()}
        assert len(contents) == 2  # same file name inside, both kept
    assert {a["key"] for a in json.loads((result.folder / "task.json").read_text())["task"]["execution"]
            ["artifacts"]} == set(pair)


def _oversized(world, value: str) -> None:
    seeder, exporter, root, _ = world
    if "frame query" in value:
        frames = pd.DataFrame({"split": ["train", "val"], "frame_id": ["a", "b"]})
        query = ("split == 'train' or " * 200_000 + "True") if value.startswith("huge") \
            else "(" * 50_000 + "split == 'train'" + ")" * 50_000
        with pytest.raises(FrameQueryError):
            select_frames(frames, query)
        return
    task_name = "N" * 1_000_000 if value == "1 MB task name" else "oversized task"
    task_id = seeder.seed_task(seeder.project("oversized"), "oversized", task_name,
                               DemoSpec(1, 1, 1, 0, 0, 0, 0), complete=False)
    if value in ("1 MB task name", "20,000 artifacts"):
        _many_artifacts_or_long_name(world, task_id, task_name, value)
        return
    now = int(time.time() * 1000)
    if value == "10 MB log line":
        seeder.add_events([{"type": "log", "task": task_id, "timestamp": now + 10, "level": "info",
                            "worker": "w", "msg": "y" * (10 << 20)}])
    else:
        seeder.add_events([{"type": "training_stats_scalar", "task": task_id, "timestamp": now, "iter": 0,
                            "metric": "m" * 100_000, "variant": "v", "value": 2.0}])
    result = exporter.export_task(task_id)
    _assert_inside(root)
    assert all(len(p.name.encode()) <= 255 for p in root.rglob("*"))
    if value == "10 MB log line":
        assert result.counts["log_lines"] == 2
        assert (result.folder / "console.log").stat().st_size > 10 << 20
    else:
        assert result.counts["scalar_points"] == 2


def _many_artifacts_or_long_name(world, task_id: str, task_name: str, value: str) -> None:
    seeder, exporter, root, _ = world
    total, local = (20_000, 20) if value == "20,000 artifacts" else (0, 0)
    if total:
        url = seeder.upload("/many/a.bin", b"x")
        seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
            {"key": f"a{i}", "type": "custom", "mode": "output", "content_size": 1,
             "uri": url if i < local else f"http://elsewhere.invalid/{i}"} for i in range(total)])
    result = exporter.export_task(task_id)
    _assert_inside(root)
    assert all(len(p.name.encode()) <= 255 for p in root.rglob("*"))
    assert json.loads((result.folder / "task.json").read_text())["names"]["task"] == task_name
    assert result.counts["artifacts"] == total and result.counts["artifact_files"] == local
    assert result.counts["external_references"] == total - local
    assert result.counts["scalar_points"] == 1  # the rest of the task is whole


RUN = {"name": _hostile_name, "foreign uri": _foreign_uri, "archive member": _archive_member,
       "name pair": _name_pair,
       "oversized": _oversized}


@pytest.mark.parametrize("kind,value", TABLE, ids=[f"{k}: {v[:24]!r}" for k, v in TABLE])
def test_hostile_input(world, kind: str, value: str):
    RUN[kind](world, value)
