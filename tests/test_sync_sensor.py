"""Sync end to end: the sensor polls the source account (a local server), adds each newly completed task
as a partition and requests its run; the run archives, verifies and restores the task into the target
account (a second local server with its own key pair). Ticks repeat nothing, lose nothing, and a run
repeated for the same task creates nothing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from seeding import DemoSpec, RawSeeder
from clearml_assets.local_server import LocalServer
from clearml_assets.resource import ClearMLAccount, ClearMLResource
from clearml_assets.restore.engine import INCOMPLETE_TAG, provenance_tag
from clearml_assets.restore.sync import (build_clearml_sync_asset, build_clearml_sync_sensor,
                                         build_sync_definitions, parse_sync_pairs, sync_partitions)
from clearml_assets.errors import ClearMLConfigError

SPEC = DemoSpec(scalar_series=2, points_per_series=20, log_lines=10, artifacts=1, artifact_bytes=512, plots=1,
                debug_images=1)


def account_of(server: LocalServer) -> ClearMLAccount:
    info = server.info
    return ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=info.files_host,
                          credentials_file=str(Path(info.data_dir) / "credentials.json"))


@pytest.fixture
def pair(tmp_path):
    with LocalServer(tmp_path / "personal", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "original", api_port=0, files_port=0) as b:
        resource = ClearMLResource(accounts={"personal": account_of(a), "original": account_of(b)},
                                   default_account="personal", home=str(tmp_path / "home"))
        info = a.info
        yield {"seeder": RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key),
               "resource": resource, "root": tmp_path}


def tick(sensor, instance, resource, cursor):
    defs = dg.Definitions(assets=[build_clearml_sync_asset("personal", "original")], sensors=[sensor],
                          resources={"clearml": resource})
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"clearml": resource},
                                      definitions=defs)
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def materialize(instance, resource, root: Path, task_id: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([build_clearml_sync_asset("personal", "original")], partition_key=task_id,
                          instance=instance, resources={"clearml": resource},
                          run_config={"ops": {"original__clearml_synced_from_personal": {
                              "config": {"export_root": str(root / "exports")}}}})


def test_sensor_copies_each_newly_completed_task_end_to_end(pair):
    seeder, resource, root = pair["seeder"], pair["resource"], pair["root"]
    project = seeder.project("sync/src")
    first = seeder.seed_task(project, "sync/src", "first task", SPEC)
    sensor = build_clearml_sync_sensor("personal", "original")
    target = resource.client("original")
    with dg.instance_for_test() as instance:
        result = tick(sensor, instance, resource, None)
        assert [r.partition_key for r in result.run_requests] == [first]
        assert instance.get_dynamic_partitions(sync_partitions("personal", "original").name) == [first]
        run = materialize(instance, resource, root, first)
        assert run.success
        (copy,) = target.tasks.find_by_system_tag(provenance_tag(first))
        assert INCOMPLETE_TAG not in copy["system_tags"] and copy["status"] == "completed"
        meta = run.asset_materializations_for_node("original__clearml_synced_from_personal")[0].metadata
        assert meta["target_task_id"].value == copy["id"]

        again = tick(sensor, instance, resource, result.cursor)
        assert not again.run_requests  # nothing repeated
        second = seeder.seed_task(project, "sync/src", "second task", SPEC)
        later = tick(sensor, instance, resource, again.cursor)
        assert [r.partition_key for r in later.run_requests] == [second]  # nothing lost
        assert materialize(instance, resource, root, second).success

        # a repeated run (retry, re-execution) of the first task creates nothing in the target
        before = target.session.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"]
        assert materialize(instance, resource, root, first).success
        assert target.session.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"] == before
        assert len(before) == 2

        # the source task is published later: a new status change, a new run, and the copy follows
        seeder.call("tasks.publish", task=first, force=True)
        published = tick(sensor, instance, resource, later.cursor)
        assert [r.partition_key for r in published.run_requests] == [first]
        assert materialize(instance, resource, root, first).success
        assert target.tasks.get(copy["id"]).raw["status"] == "published"
        assert target.session.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"] == before


def test_a_copy_restored_from_the_target_is_not_copied_back(pair):
    seeder, resource, root = pair["seeder"], pair["resource"], pair["root"]
    project = seeder.project("sync/back")
    task_id = seeder.seed_task(project, "sync/back", "came from original", SPEC, complete=False)
    seeder.call("tasks.edit", task=task_id, force=True, runtime={"restore_source_account": "original"})
    seeder.call("tasks.completed", task=task_id, force=True)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(sync_partitions("personal", "original").name, [task_id])
        run = materialize(instance, resource, root, task_id)
        assert run.success
        assert resource.client("original").tasks.find_by_system_tag(provenance_tag(task_id)) == []


def test_sync_pairs_from_the_environment():
    assert parse_sync_pairs("personal->original, a->b") == [("personal", "original"), ("a", "b")]
    with pytest.raises(ClearMLConfigError, match="source->target"):
        parse_sync_pairs("personal=>original")
    with pytest.raises(ClearMLConfigError, match="not configured"):
        build_sync_definitions(environ={"CLEARML_ASSETS_SYNC": "personal->nobody"}, accounts=["personal"])
    defs = build_sync_definitions(environ={"CLEARML_ASSETS_SYNC": "personal->original"},
                                  accounts=["personal", "original"])
    assert [s.name for s in defs.sensors] == ["clearml_sync_sensor_personal_to_original"]


def test_a_tick_against_a_source_that_is_down_fails_naming_it_and_keeps_the_cursor(tmp_path):
    from clearml_assets.errors import ClearMLConnectionError
    from clearml_assets.local_server.runner import free_port

    down = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    resource = ClearMLResource(accounts={"personal": ClearMLAccount(api_host=down, access_key="k", secret_key="s"),
                                         "original": ClearMLAccount(api_host=down, access_key="k", secret_key="s")},
                               default_account="personal", home=str(tmp_path / "home"), check_timeout_seconds=2)
    sensor = build_clearml_sync_sensor("personal", "original")
    cursor = '{"v":1,"time":"2026-01-01T00:00:00.000000+00:00","recent":{}}'
    with dg.instance_for_test() as instance:
        with pytest.raises(ClearMLConnectionError, match="clearml_sync_sensor_personal_to_original.*cursor did not move"):
            tick(sensor, instance, resource, cursor)
        assert instance.get_dynamic_partitions(sync_partitions("personal", "original").name) == []
