"""Schedules and jobs: project archive refresh per account, optional retraining, named jobs.

Schedules are evaluated with ``build_schedule_context`` on a real instance against the local server;
projects are created with raw REST ``projects.create``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_api import RawApi  # noqa: E402

from clearml_assets.archives.assets import clearml_project_partitions, project_archive_key, task_archive_key  # noqa: E402,E501
from clearml_assets.archives.defs import build_archive_defs  # noqa: E402
from clearml_assets.automation import (build_automation_defs, build_clearml_project_archive_schedule,  # noqa: E402
                                       build_clearml_retraining_schedule)
from clearml_assets.datasets.defs import build_dataset_defs  # noqa: E402
from clearml_assets.resource import ClearMLAccount, ClearMLResource  # noqa: E402
from clearml_assets.training.defs import build_training_defs  # noqa: E402

ACCOUNT = "acme"
PARTS = clearml_project_partitions(ACCOUNT).name
WHEN = datetime(2024, 6, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def resource(clearml_server, tmp_path) -> ClearMLResource:
    return ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / "home"), account=ACCOUNT)


@pytest.fixture
def instance(dagster_instance):
    """Every sensor/schedule test runs on SQLite and on PostgreSQL storage (conftest's dagster_instance)."""
    return dagster_instance


def evaluate(schedule, instance, resource, when=WHEN):
    defs = dg.Definitions.merge(build_archive_defs([ACCOUNT]),
                                dg.Definitions(schedules=[schedule], resources={"clearml": resource}))
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                   resources={"clearml": resource},
                                   repository_def=defs.get_repository_def()) as context:
        return schedule.evaluate_tick(context)


def test_project_archive_schedule_discovers_and_requests_every_project(clearml_server, resource, instance):
    api = RawApi(clearml_server.info)
    ids = [api.call("projects.create", name=n, description="")["id"] for n in ("alpha", "beta")]
    instance.add_dynamic_partitions(PARTS, ["known-by-sensor"])
    schedule = build_clearml_project_archive_schedule(ACCOUNT)
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED and schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == "clearml_project_archive_job_acme"

    data = evaluate(schedule, instance, resource)
    expected = sorted([*ids, "known-by-sensor"])
    assert sorted(r.partition_key for r in data.run_requests) == expected
    assert sorted(instance.get_dynamic_partitions(PARTS)) == expected
    assert {r.run_key for r in data.run_requests} == {f"{p}:{WHEN.isoformat()}" for p in expected}
    next_night = evaluate(schedule, instance, resource, datetime(2024, 6, 2, 2, 0, tzinfo=timezone.utc))
    assert not {r.run_key for r in data.run_requests} & {r.run_key for r in next_night.run_requests}


def test_project_archive_schedule_with_named_projects(clearml_server, resource, instance):
    api = RawApi(clearml_server.info)
    alpha = api.call("projects.create", name="alpha", description="")["id"]
    sub = api.call("projects.create", name="alpha/sub", description="")["id"]
    api.call("projects.create", name="beta", description="")
    schedule = build_clearml_project_archive_schedule(ACCOUNT, projects=["alpha"], cron_schedule="30 1 * * 1")
    assert schedule.cron_schedule == "30 1 * * 1"
    data = evaluate(schedule, instance, resource)
    assert sorted(r.partition_key for r in data.run_requests) == sorted([alpha, sub])

    none = evaluate(build_clearml_project_archive_schedule(ACCOUNT, projects=["missing"]), instance, resource)
    assert none.run_requests == [] and "no project to archive" in none.skip_message


def test_project_archive_schedule_fails_clearly_when_server_is_down(instance):
    down = ClearMLResource(accounts={ACCOUNT: ClearMLAccount(api_host="http://127.0.0.1:9", access_key="k",
                                                             secret_key="s")}, default_account=ACCOUNT)
    with pytest.raises(Exception) as info:
        evaluate(build_clearml_project_archive_schedule(ACCOUNT), instance, down)
    exc, messages = info.value, []
    while exc is not None:
        messages.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    text = " | ".join(messages)
    assert "clearml_project_archive_schedule_acme (ClearML account 'acme' at http://127.0.0.1:9)" in text
    assert "cannot reach" in text


def test_retraining_schedule_targets_the_model_group(instance):  # a live instance for Dagster's defs state
    schedule = build_clearml_retraining_schedule(cron_schedule="0 4 * * *")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED and schedule.cron_schedule == "0 4 * * *"
    defs = dg.Definitions.merge(build_dataset_defs(), build_training_defs(),
                                dg.Definitions(schedules=[schedule], resources={"clearml": ClearMLResource()}))
    job = defs.resolve_job_def(schedule.job_name)
    model_keys = {dg.AssetKey(["training", "shapes_yolo"])}
    assert set(job.asset_layer.executable_asset_keys) == model_keys


def test_automation_defs_jobs_and_settings(instance):
    accounts = ["acme", "personal"]
    env = {"CLEARML_ASSETS_RETRAIN_CRON": "0 5 * * 6", "CLEARML_ASSETS_ARCHIVE_CRON": "15 3 * * *",
           "CLEARML_ASSETS_PROJECTS_ACME": "alpha, beta"}
    automation = build_automation_defs(accounts, environ=env)
    defs = dg.Definitions.merge(automation, build_archive_defs(accounts), build_dataset_defs(),
                                build_training_defs(), dg.Definitions(resources={"clearml": ClearMLResource()}))
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    names = {j.name for j in repo.get_all_jobs()}
    assert {"clearml_training_job", "clearml_archive_job_acme", "clearml_archive_job_personal",
            "clearml_project_archive_job_acme", "clearml_project_archive_job_personal"} <= names
    assert set(repo.get_job("clearml_archive_job_acme").asset_layer.executable_asset_keys) == {
        task_archive_key("acme")}
    assert set(repo.get_job("clearml_project_archive_job_personal").asset_layer.executable_asset_keys) == {
        project_archive_key("personal")}
    training = set(repo.get_job("clearml_training_job").asset_layer.executable_asset_keys)
    assert dg.AssetKey(["training", "shapes_yolo"]) in training
    assert dg.AssetKey(["datasets", "shapes_training_view"]) in training
    schedules = {s.name: s for s in repo.schedule_defs}
    assert schedules["clearml_project_archive_schedule_acme"].cron_schedule == "15 3 * * *"
    assert schedules["clearml_retraining_schedule"].cron_schedule == "0 5 * * 6"
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in schedules.values())
    sensors = {s.name: s for s in repo.sensor_defs}
    assert sensors["clearml_completed_tasks_sensor_acme"].default_status == dg.DefaultSensorStatus.STOPPED
    assert "'alpha', 'beta'" in sensors["clearml_completed_tasks_sensor_acme"].description
    assert "'alpha'" not in sensors["clearml_completed_tasks_sensor_personal"].description

    quiet = build_automation_defs(accounts, environ={"CLEARML_ASSETS_ARCHIVE_CRON": "off"})
    assert not list(quiet.schedules or [])
