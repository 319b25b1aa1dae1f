"""A project archive restores every task, parents before children, each child pointing at its parent's copy;
restoring it again creates nothing."""

from __future__ import annotations

import pytest

from seeding import DemoSpec, RawSeeder
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.client import ClearMLClient
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import TaskRestorer

SPEC = DemoSpec(scalar_series=1, points_per_series=5, log_lines=2, artifacts=0, plots=0, debug_images=0)


def _client(server: LocalServer, account: str) -> ClearMLClient:
    info = server.info
    return ClearMLClient(info.api_host, info.access_key, info.secret_key, account=account, files_host=info.files_host)


def test_project_archive_restores_every_task_with_parents_mapped(tmp_path):
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        info = a.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        project = seeder.project("team/proj")
        # the child is created first so that a restore in archive order would meet it before its parent
        child = seeder.seed_task(project, "team/proj", "a child", SPEC, complete=False)
        parent = seeder.seed_task(project, "team/proj", "z parent", SPEC)
        seeder.call("tasks.edit", task=child, force=True, parent=parent)
        seeder.call("tasks.completed", task=child, force=True)
        exported = ClearMLTaskExporter(_client(a, "personal"), "personal", tmp_path / "x").export_project("team/proj")
        target = _client(b, "original")
        results = TaskRestorer(target).restore_path(exported.archive)
        copies = {r.source_task_id: r.task_id for r in results}
        assert [r.source_task_id for r in results] == [parent, child]
        assert target.get_task_by_id(copies[child])["parent"] == copies[parent]
        project_id = target.get_task_by_id(copies[child])["project"]
        assert target.call("projects.get_by_id", project=project_id)["project"]["name"] == "team/proj"
        again = TaskRestorer(target).restore_path(exported.archive)
        assert all(r.unchanged for r in again) and {r.task_id for r in again} == set(copies.values())
        assert len(target.call("tasks.get_all", only_fields=["id"])["tasks"]) == 2


def test_tasks_of_a_project_are_all_attempted_and_children_of_a_failed_parent_wait(tmp_path):
    from clearml_assets.restore.engine import RestoreError

    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        info = a.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        project = seeder.project("fails")
        parent = seeder.seed_task(project, "fails", "the parent", SPEC)
        child = seeder.seed_task(project, "fails", "the child", SPEC, complete=False)
        seeder.call("tasks.edit", task=child, force=True, parent=parent)
        seeder.call("tasks.completed", task=child, force=True)
        other = seeder.seed_task(project, "fails", "another", SPEC)
        exported = ClearMLTaskExporter(_client(a, "personal"), "personal", tmp_path / "x").export_project("fails")
        target = _client(b, "original")
        restorer = TaskRestorer(target, fail_after=lambda step: None)
        original = restorer._fill

        def failing_fill(archive, *args):
            if archive.source_task_id == parent:
                raise RuntimeError("simulated failure of the parent")
            return original(archive, *args)

        restorer._fill = failing_fill
        with pytest.raises(RestoreError, match="2 of 3 tasks") as raised:
            restorer.restore_path(exported.archive)
        assert other in raised.value.metadata["restored"].value
        names = {t["name"] for t in target.call("tasks.get_all", only_fields=["name"])["tasks"]}
        assert names == {"the parent", "another"}  # the child waits for its parent's copy
        results = TaskRestorer(target).restore_path(exported.archive)
        copies = {r.source_task_id: r for r in results}
        assert copies[parent].resumed and copies[other].unchanged and copies[child].created
        assert target.get_task_by_id(copies[child].task_id)["parent"] == copies[parent].task_id
