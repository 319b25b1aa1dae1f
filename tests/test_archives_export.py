"""Archives against the local server: full fidelity (SDK-reported task), incremental skip, atomicity,
hostile names, 404 / foreign URIs, a task deleted mid-export, project paging and reuse."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from seeding import DemoSpec, RawSeeder, client_of
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.manifest import read_manifest, verify_folder
from clearml_assets.archives.packing import extract_archive, verify_archive
from clearml_assets.client import ClearMLClient, ClearMLSession
from clearml_assets.errors import ArchiveError


SMALL = DemoSpec(scalar_series=3, points_per_series=40, log_lines=30, artifacts=2, artifact_bytes=2048,
                 plots=2, debug_images=2)


def _no_partials(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if ".partial." in p.name]


def test_full_fidelity_of_an_sdk_reported_task(clearml_server, sdk_report, tmp_path: Path):
    facts = sdk_report("""
        import os
        import numpy as np
        from clearml import Task, OutputModel
        task = Task.init(project_name="arch/full", task_name="full fidelity", reuse_last_task_id=False,
                         output_uri=True)
        logger = task.get_logger()
        for i in range(5000):
            logger.report_scalar("val", "metrics/mAP50(B)", value=i / 5000, iteration=i)
            logger.report_scalar("val", "metrics/recall(B)", value=1 - i / 5000, iteration=i)
        for i in range(5000):
            logger.report_text(f"MARK {i:05d}", print_console=False)
        logger.report_scatter2d("curve", "pr", iteration=0, scatter=np.array([[0, 1], [1, 0.5]]))
        logger.report_image("samples", "batch", iteration=1, image=np.zeros((8, 8, 3), dtype=np.uint8))
        with open("blob.bin", "wb") as f:
            f.write(os.urandom(300_000))
        task.upload_artifact("blob", artifact_object="blob.bin", wait_on_upload=True)
        task.upload_artifact("stats", artifact_object={"a": 1}, wait_on_upload=True)
        with open("w.pt", "wb") as f:
            f.write(os.urandom(50_000))
        model = OutputModel(task=task, name="best")
        model.update_weights("w.pt", auto_delete_file=False)
    """, "blob.bin", "w.pt", timeout=300)
    client = client_of(clearml_server)
    root = tmp_path / "exports"
    result = ClearMLTaskExporter(client, "personal", root, max_workers=4).export_task(facts["id"])
    manifest = result.manifest
    counts, server = manifest["counts"], manifest["server_counts"]
    assert counts["scalar_points"] == server["scalar_points"] == 10_000
    table = pq.read_table(result.folder / "scalars" / "scalars.parquet")
    assert table.num_rows == 10_000
    assert table.column("timestamp").null_count == 0  # every point keeps its wall-clock time
    assert sum(1 for _ in open(result.folder / "scalars" / "scalars.jsonl")) == 10_000
    marks = [ln for ln in (result.folder / "console.log").read_text().splitlines() if ln.startswith("MARK ")]
    assert marks == [f"MARK {i:05d}" for i in range(5000)]
    assert counts["log_events"] == server["log_events"]
    text = (result.folder / "console.txt").read_text().splitlines()
    assert counts["log_lines"] == len(text) >= 5000  # lines as shown, not events (the SDK batches lines)
    structured = [json.loads(ln) for ln in open(result.folder / "log.jsonl")]
    assert len(structured) == counts["log_events"] and all(r["timestamp"] and r["level"] for r in structured)
    assert counts["plots"] == server["plots"] >= 1
    assert counts["debug_image_files"] == server["debug_image_events"] >= 1
    hashes = {e["sha256"] for e in manifest["files"].values()}
    assert facts["blob"] in hashes and facts["w"] in hashes
    assert counts["artifact_files"] == 2 and counts["model_files"] == 1
    assert manifest["picked_metrics"]["mAP50"]["last"] == pytest.approx(4999 / 5000)
    assert manifest["status"] == "ok", manifest["issues"]
    task_json = json.loads((result.folder / "task.json").read_text())
    assert task_json["task"]["id"] == facts["id"] and task_json["project"]["name"] == "arch/full"
    assert verify_archive(result.archive, manifest) == []
    assert verify_folder(result.folder, manifest) == []
    assert result.folder.parent == root.resolve() / "personal" / "tasks" / "arch" / "full"  # nested
    assert not _no_partials(root)


def test_incremental_skip_then_reexport_on_change(clearml_server, tmp_path: Path):
    seeder = RawSeeder.of(clearml_server)
    project = seeder.project("inc")
    task_id = seeder.seed_task(project, "inc", "inc-task", SMALL)
    calls = []

    def counting_download(url, dest):
        calls.append(url)
        return client.files.download(url, dest)

    client = client_of(clearml_server)
    exporter = ClearMLTaskExporter(client, "personal", tmp_path / "x", download=counting_download)
    first = exporter.export_task(task_id)
    assert not first.skipped and len(calls) == 2 + 2  # artifacts + debug images
    stamp = first.archive.stat().st_mtime_ns
    second = exporter.export_task(task_id)
    assert second.skipped and len(calls) == 4 and first.archive.stat().st_mtime_ns == stamp
    assert second.manifest["archive"]["sha256"] == first.manifest["archive"]["sha256"]
    seeder.add_events([{"type": "log", "task": task_id, "timestamp": 4_000_000_000_000, "msg": "late line"}])
    third = exporter.export_task(task_id)
    assert not third.skipped and third.counts["log_lines"] == SMALL.log_lines + 1
    assert (third.folder / "console.log").read_text().endswith("late line\n")
    assert verify_archive(third.archive, third.manifest) == []


def test_failure_mid_export_publishes_nothing(clearml_server, tmp_path: Path):
    seeder = RawSeeder.of(clearml_server)
    project = seeder.project("atomic")
    task_id = seeder.seed_task(project, "atomic", "atomic-task", SMALL)
    client = client_of(clearml_server)
    root = tmp_path / "x"

    def failing(url, dest):
        dest.write_bytes(b"half")
        raise RuntimeError("connection dropped mid-download")

    with pytest.raises(ArchiveError, match="rolled back"):
        ClearMLTaskExporter(client, "personal", root, download=failing).export_task(task_id)
    assert not list(root.rglob("manifest.json")) and not list(root.rglob("*.zip")) and not _no_partials(root)
    good = ClearMLTaskExporter(client, "personal", root).export_task(task_id)
    with pytest.raises(ArchiveError):
        ClearMLTaskExporter(client, "personal", root, download=failing).export_task(task_id, force=True)
    assert read_manifest(good.folder)["archive"]["sha256"] == good.manifest["archive"]["sha256"]
    assert verify_archive(good.archive, good.manifest) == [] and not _no_partials(root)


def test_hostile_names_missing_and_foreign_uris(clearml_server, tmp_path: Path):
    seeder = RawSeeder.of(clearml_server)
    project_name = "../../escape/\x01ctl/" + "p" * 300
    task_name = "/etc/passwd\\..\\..\n\u202e" + "é" * 150
    project = seeder.project(project_name)
    task_id = seeder.seed_task(project, "safe", task_name, DemoSpec(3, 5, 5, 1, 1000, 0, 0), complete=False)
    artifacts = [
        {"key": "../../../../tmp/evil", "type": "custom", "mode": "output",
         "uri": f"{clearml_server.info.files_host}/never/uploaded.bin"},
        {"key": "passwd", "type": "custom", "mode": "output", "uri": "file:///etc/passwd"},
        {"key": "other", "type": "custom", "mode": "output", "uri": "http://198.51.100.7:8081/x.bin"},
        {"key": "sneaky", "type": "custom", "mode": "output",
         "uri": f"{clearml_server.info.files_host}/a/../../../etc/passwd"},
    ]
    seeder.call("tasks.add_or_update_artifacts", task=task_id, artifacts=artifacts, force=True)
    root = tmp_path / "x"
    result = ClearMLTaskExporter(client_of(clearml_server), "personal", root).export_task(task_id)
    assert root.resolve() in result.folder.parents and root.resolve() in result.archive.parents
    for path in root.rglob("*"):
        assert root.resolve() in path.resolve().parents
    statuses = {i.get("uri"): i.get("status") for i in result.issues if i.get("uri")}
    assert statuses[artifacts[0]["uri"]] == "missing"
    index = json.loads((result.folder / "artifacts" / "index.json").read_text())
    external = {a["download"]["uri"]: a["download"] for a in index if a["download"]["status"] == "external"}
    # not fetchable from here: external references with a reason, not failures
    assert set(external) == {"file:///etc/passwd", "http://198.51.100.7:8081/x.bin", artifacts[3]["uri"]}
    assert all(r["reason"] for r in external.values()) and not set(external) & set(statuses)
    assert result.counts["external_references"] == 3
    assert result.counts["artifact_files"] == 1 and result.counts["scalar_points"] == 15
    assert result.manifest["status"] == "with_issues"  # the 404: the server itself lacks it
    task_json = json.loads((result.folder / "task.json").read_text())
    assert task_json["names"]["task"] == task_name and task_json["names"]["project"] == project_name
    target = tmp_path / "unpacked"
    extract_archive(result.archive, target)
    assert all(target.resolve() in p.resolve().parents for p in target.rglob("*"))


class _DeletingSession(ClearMLSession):
    """The real session, but the task is deleted on the server right after its log is read; the scalars
    (read concurrently with the log) are asked for only after that."""

    def __init__(self, server, task_id):
        info = server.info
        super().__init__(info.api_host, info.access_key, info.secret_key, account="personal",
                         files_host=info.files_host, web_host=info.web_host)
        self._task_id, self._deleted = task_id, threading.Event()

    def call(self, endpoint, _deadline=None, _idempotent=None, **fields):
        if endpoint == "events.get_scalar_metrics_and_variants":
            assert self._deleted.wait(30)
        result = super().call(endpoint, _deadline, _idempotent, **fields)
        if endpoint == "events.get_task_log" and not self._deleted.is_set():
            super().call("tasks.delete", task=self._task_id, force=True)
            self._deleted.set()
        return result


def test_task_deleted_mid_export_is_recorded(clearml_server, tmp_path: Path):
    seeder = RawSeeder.of(clearml_server)
    task_id = seeder.seed_task(seeder.project("del"), "del", "doomed", SMALL)
    client = ClearMLClient.of(_DeletingSession(clearml_server, task_id))
    result = ClearMLTaskExporter(client, "personal", tmp_path / "x").export_task(task_id)
    assert result.manifest["task_deleted"] is True and result.manifest["status"] == "with_issues"
    assert result.counts["log_lines"] == SMALL.log_lines
    assert any(i["section"] == "scalars" for i in result.issues)
    assert verify_archive(result.archive, result.manifest) == []
    with pytest.raises(ArchiveError, match="not found"):
        ClearMLTaskExporter(client_of(clearml_server), "personal", tmp_path / "y").export_task(task_id)


def test_project_archive_pages_all_tasks_and_reuses(clearml_server, tmp_path: Path):
    seeder = RawSeeder.of(clearml_server)
    ids = seeder.seed_project("proj/sub", 5, DemoSpec(2, 10, 10, 1, 1000, 1, 0), workers=2)
    running = seeder.seed_task(seeder.project("proj/sub"), "proj/sub", "running", SMALL, complete=False)
    client = client_of(clearml_server)
    exporter = ClearMLTaskExporter(client, "personal", tmp_path / "x", page_size=2)
    result = exporter.export_project(seeder.project("proj/sub"))
    assert sorted(r.task_id for r in result.tasks) == sorted(ids) and running not in {r.task_id for r in result.tasks}
    project_json = json.loads((result.folder / "project.json").read_text())
    assert len(project_json["tasks"]) == 5
    assert verify_archive(result.archive, result.manifest) == []
    assert result.folder == (tmp_path / "x").resolve() / "personal" / "projects" / "proj" / "sub" / "%project"
    again = ClearMLTaskExporter(client, "personal", tmp_path / "x", page_size=2).export_project("proj/sub")
    assert again.skipped and all(r.skipped for r in again.tasks)
    assert again.manifest["archive"]["sha256"] == result.manifest["archive"]["sha256"]
    # the project holds each task's archive as published (a hard link), listed with its sha256
    first = result.tasks[0]
    assert os.path.samefile(first.archive, result.folder / "tasks" / first.archive.name)
    assert result.manifest["files"][f"tasks/{first.archive.name}"]["sha256"] == first.manifest["archive"]["sha256"]
    assert sorted(result.manifest["files"]) == sorted(["project.json", "metrics.csv"] + [
        f"tasks/{r.archive.name}" for r in result.tasks])


def test_project_archive_has_no_500_task_cap(clearml_server, tmp_path: Path):
    seeder = RawSeeder.of(clearml_server)
    project = seeder.project("big")
    ids = []
    for i in range(501):
        task_id = seeder.call("tasks.create", name=f"t{i:03d}", type="training", project=project)["id"]
        seeder.call("tasks.completed", task=task_id, force=True)
        ids.append(task_id)
    seeder.call("tasks.create", name="draft", type="training", project=project)
    client = client_of(clearml_server)
    result = ClearMLTaskExporter(client, "personal", tmp_path / "x", max_workers=4).export_project(project)
    assert sorted(r.task_id for r in result.tasks) == sorted(ids)
    assert result.manifest["tasks"] == 501 and len(list((result.folder / "tasks").iterdir())) == 501
    assert len((result.folder / "metrics.csv").read_text().splitlines()) == 502
    assert verify_archive(result.archive, result.manifest) == []


def test_odd_log_text_is_kept_and_flagged(clearml_server, tmp_path: Path):
    # NaN/inf scalars never reach the server (the SDK reports them as 0, the server refuses them); the
    # exporter's NaN handling is covered in test_archives_units.py
    seeder = RawSeeder.of(clearml_server)
    task_id = seeder.seed_task(seeder.project("odd"), "odd", "odd", DemoSpec(1, 3, 2, 0, 0, 0, 0))
    seeder.add_events([
        {"type": "log", "task": task_id, "timestamp": 4_000_000_000_000, "msg": "bytes \udcff\udcfe here"},
        {"type": "log", "task": task_id, "timestamp": 4_000_000_000_001, "msg": "ctl \x00\x1b[31m red"},
    ])
    result = ClearMLTaskExporter(client_of(clearml_server), "personal", tmp_path / "x").export_task(task_id)
    log = (result.folder / "console.log").read_bytes().decode("utf-8")
    assert "bytes \\udcff\\udcfe here\n" in log and "ctl \x00\x1b[31m red\n" in log
    assert result.counts["log_lines"] == result.manifest["server_counts"]["log_events"] == 4
    assert any("not valid UTF-8" in i.get("warning", "") for i in result.issues)
    assert result.manifest["status"] == "ok" and result.counts["scalar_points"] == 3
    assert verify_archive(result.archive, result.manifest) == []
