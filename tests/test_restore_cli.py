"""``clearml-assets restore ARCHIVE --account NAME``: the last line is JSON with the new task id; a second run
changes nothing; an archive that does not match its manifest restores nothing and says why."""

from __future__ import annotations

import json
import shutil

import pytest

from seeding import DemoSpec, RawSeeder
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.client import ClearMLClient
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.cli import restore_main

SPEC = DemoSpec(scalar_series=2, points_per_series=10, log_lines=5, artifacts=1, artifact_bytes=256, plots=1,
                debug_images=1)


@pytest.fixture
def exported_and_target(tmp_path, monkeypatch):
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        ia, ib = a.info, b.info
        seeder = RawSeeder(ia.api_host, ia.files_host, ia.access_key, ia.secret_key)
        task_id = seeder.seed_task(seeder.project("cli"), "cli", "cli task", SPEC, complete=False)
        # one log event holding several lines, as the SDK sends a burst of console output
        seeder.add_events([{"type": "log", "task": task_id, "timestamp": 4_000_000_000_000, "level": "info",
                            "worker": "demo", "msg": "first line\nsecond line\nthird line"}])
        seeder.call("tasks.completed", task=task_id, force=True)
        source = ClearMLClient(ia.api_host, ia.access_key, ia.secret_key, files_host=ia.files_host)
        exported = ClearMLTaskExporter(source, "personal", tmp_path / "exports").export_task(task_id)
        for name, value in {"CLEARML_KEY_ORIGINAL": ib.access_key, "CLEARML_SECRET_ORIGINAL": ib.secret_key,
                            "CLEARML_API_HOST_ORIGINAL": ib.api_host, "CLEARML_FILES_HOST_ORIGINAL": ib.files_host,
                            "CLEARML_WEB_HOST_ORIGINAL": ib.web_host,
                            "CLEARML_ASSETS_HOME": str(tmp_path / "home")}.items():
            monkeypatch.setenv(name, value)
        target = ClearMLClient(ib.api_host, ib.access_key, ib.secret_key, files_host=ib.files_host)
        yield exported, target


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_restore_command_prints_the_new_task_id_and_a_second_run_changes_nothing(exported_and_target, capsys):
    exported, target = exported_and_target
    assert restore_main([str(exported.archive), "--account", "original", "--project", "restored/here"]) == 0
    first = _last_json(capsys.readouterr().out)
    task = target.tasks.get(first["task_id"]).raw
    assert task["name"] == "cli task" and task["status"] == "completed"
    project = target.session.call("projects.get_by_id", project=task["project"])["project"]
    assert project["name"] == "restored/here"
    assert restore_main([str(exported.archive), "--account", "original", "--project", "restored/here"]) == 0
    second = _last_json(capsys.readouterr().out)
    assert second["task_id"] == first["task_id"] and second["tasks"][0]["unchanged"]
    assert len(target.session.call("tasks.get_all", only_fields=["id"])["tasks"]) == 1


def test_an_archive_not_matching_its_manifest_restores_nothing(exported_and_target, capsys, tmp_path):
    exported, target = exported_and_target
    damaged = tmp_path / "damaged"
    shutil.copytree(exported.folder, damaged)
    with open(damaged / "console.log", "ab") as handle:
        handle.write(b"tampered\n")
    assert restore_main([str(damaged), "--account", "original"]) == 1
    err = capsys.readouterr().err
    assert "does not match its manifest" in err and "console.log" in err
    assert target.session.call("tasks.get_all", only_fields=["id"])["tasks"] == []
    assert restore_main([str(tmp_path / "nothing.zip"), "--account", "original"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_an_archive_marked_incomplete_restores_nothing(exported_and_target, capsys, tmp_path):
    from clearml_assets.archives.manifest import read_manifest, write_manifest

    exported, target = exported_and_target
    partial = tmp_path / "partial"
    shutil.copytree(exported.folder, partial)
    manifest = read_manifest(partial)
    manifest.update(status="incomplete", issues=[{"section": "scalars", "error": "received 5 points, server counted 9"}])
    write_manifest(partial, manifest)
    assert restore_main([str(partial), "--account", "original"]) == 1
    assert "marked incomplete" in capsys.readouterr().err
    assert target.session.call("tasks.get_all", only_fields=["id"])["tasks"] == []


def test_restore_summary_counts_lines_and_files_land_under_the_target_project(exported_and_target, capsys):
    exported, target = exported_and_target
    assert restore_main([str(exported.archive), "--account", "original", "--project", "team/restored here"]) == 0
    captured = capsys.readouterr()
    task_id = _last_json(captured.out)["task_id"]
    summary = next(line for line in captured.err.splitlines() if line.startswith("task "))
    counts = json.loads(summary.split("; ", 1)[1])
    # lines as the archive (and the ClearML console) counts them, not events: 5 lines + 1 event of 3 lines
    assert counts["log_lines"] == exported.manifest["counts"]["log_lines"] == SPEC.log_lines + 3
    assert counts["log_events"] == SPEC.log_lines + 1
    # the re-uploaded files are stored under the project the copy went to, not the source project
    task = target.tasks.get(task_id).raw
    uris = [a["uri"] for a in task["execution"]["artifacts"] if a.get("uri")]
    assert uris and all("/team/restored_here/" in uri and "/cli/" not in uri for uri in uris), uris
