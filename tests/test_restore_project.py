"""A project archive restores every task, parents before children, each child pointing at its parent's copy;
restoring it again creates nothing."""

from __future__ import annotations

import pytest

from seeding import DemoSpec, RawSeeder, client_of
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import TaskRestorer

SPEC = DemoSpec(scalar_series=1, points_per_series=5, log_lines=2, artifacts=0, plots=0, debug_images=0)


@pytest.fixture
def source_and_target(tmp_path):
    """Two local servers: the source the seeder writes to, the target the archives are restored into."""
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        yield a, b


def adopt(seeder: RawSeeder, child: str, parent: str) -> None:
    """Make the running task ``child`` a child of ``parent`` and complete it."""
    seeder.call("tasks.edit", task=child, force=True, parent=parent)
    seeder.call("tasks.completed", task=child, force=True)


def test_project_archive_restores_every_task_with_parents_mapped(source_and_target, tmp_path):
    a, b = source_and_target
    seeder = RawSeeder.of(a)
    project = seeder.project("team/proj")
    # the child is created first so that a restore in archive order would meet it before its parent
    child = seeder.seed_task(project, "team/proj", "a child", SPEC, complete=False)
    parent = seeder.seed_task(project, "team/proj", "z parent", SPEC)
    adopt(seeder, child, parent)
    exported = ClearMLTaskExporter(client_of(a), "personal", tmp_path / "x").export_project("team/proj")
    target = client_of(b, "original")
    results = TaskRestorer(target).restore_path(exported.archive)
    copies = {r.source_task_id: r.task_id for r in results}
    assert [r.source_task_id for r in results] == [parent, child]
    assert target.tasks.get(copies[child]).raw["parent"] == copies[parent]
    project_id = target.tasks.get(copies[child]).raw["project"]
    assert target.session.call("projects.get_by_id", project=project_id)["project"]["name"] == "team/proj"
    again = TaskRestorer(target).restore_path(exported.archive)
    assert all(r.unchanged for r in again) and {r.task_id for r in again} == set(copies.values())
    assert len(target.session.call("tasks.get_all", only_fields=["id"])["tasks"]) == 2


def test_tasks_of_a_project_are_all_attempted_and_children_of_a_failed_parent_wait(source_and_target, tmp_path):
    from clearml_assets.restore.engine import RestoreError

    a, b = source_and_target
    seeder = RawSeeder.of(a)
    project = seeder.project("fails")
    parent = seeder.seed_task(project, "fails", "the parent", SPEC)
    child = seeder.seed_task(project, "fails", "the child", SPEC, complete=False)
    adopt(seeder, child, parent)
    other = seeder.seed_task(project, "fails", "another", SPEC)
    exported = ClearMLTaskExporter(client_of(a), "personal", tmp_path / "x").export_project("fails")
    target = client_of(b, "original")
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
    names = {t["name"] for t in target.session.call("tasks.get_all", only_fields=["name"])["tasks"]}
    assert names == {"the parent", "another"}  # the child waits for its parent's copy
    results = TaskRestorer(target).restore_path(exported.archive)
    copies = {r.source_task_id: r for r in results}
    assert copies[parent].resumed and copies[other].unchanged and copies[child].created
    assert target.tasks.get(copies[child].task_id).raw["parent"] == copies[parent].task_id
