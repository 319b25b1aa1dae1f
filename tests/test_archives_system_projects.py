"""Pipeline runs, reports and model events through archive and restore, on both releases the local server presents.

A source server (the newest release) holds a pipeline run (a controller and two steps in ``work/.pipelines/train
flow``), a report (in ``work/.reports``) and a task whose output model has events at iterations 3 and 7. Each is
archived and restored into a target at clearml-server 2.3.0 and at 1.9.2: the copies are what the originals were
(hidden system projects with their system tags, task types, the report's text and status, the steps' parent); model
events keep their iterations where the target keeps them (a 1.9.2 target stores them at iteration 0, and the restore
says so). The report embeds a plot of the trained task: the copy embeds the copy's, on the target's web app. The
completed-task sensor's poll finds the report (a hidden task) and the pipeline run of a watched project. The
exporter and the sensor also run against a 1.9.2 source.
"""

from __future__ import annotations

import json
import pytest

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.automation.cursor import ClearMLTaskCursor
from clearml_assets.automation.polling import poll_finished_tasks, resolve_project_ids
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import restore_archive

from seeding import RawSeeder, client_of
from server_api import RawApi

REPORT = "# Week one\n\nThe detector converged: mAP50 0.91."


def widget(web_host: str, task_id: str) -> str:
    """A plot the web app embeds in a report: an iframe of its widgets page naming the task."""
    return (f'\n<iframe src="{web_host}/widgets/?type=scalar&objectType=task&objects={task_id}'
            '&metrics=mAP&variants=val"></iframe>\n')


def seed(server: LocalServer) -> dict[str, str]:
    """A pipeline run, a published report and a model with events at two iterations, through the REST API."""
    seeder = RawSeeder.of(server)
    work = seeder.project("work")
    seeder.call("projects.create", name="work/.pipelines", description="", system_tags=["hidden"])
    flow = seeder.call("projects.create", name="work/.pipelines/train flow", description="",
                       system_tags=["hidden", "pipeline"])["id"]
    controller = seeder.call("tasks.create", name="train flow", type="controller", project=flow,
                             system_tags=["pipeline"])["id"]
    steps = [seeder.call("tasks.create", name=f"step {i}", type="training", project=flow, parent=controller)["id"]
             for i in range(2)]
    for task in (*steps, controller):
        seeder.call("tasks.started", task=task)
        seeder.add_events([{"type": "training_stats_scalar", "task": task, "iter": 0, "metric": "loss",
                            "variant": "train", "value": 0.5, "timestamp": 1_700_000_000_000}])
        seeder.call("tasks.completed", task=task)
    trained = seeder.call("tasks.create", name="trained", type="training", project=work)["id"]
    seeder.call("tasks.started", task=trained)
    model = seeder.call("models.create", name="detector", uri="file:///nowhere/best.pt", labels={}, ready=False,
                        project=work, task=trained)["id"]
    seeder.call("tasks.add_or_update_model", task=trained, name="detector", model=model, type="output")
    seeder.add_events([{"type": "training_stats_scalar", "model_event": True, "task": model, "iter": i,
                        "metric": "mAP", "variant": "val", "value": i / 10, "timestamp": 1_700_000_000_000 + i}
                       for i in (3, 7)])
    seeder.call("tasks.completed", task=trained)
    report = seeder.call("reports.create", name="weekly report", project=work, tags=["weekly"])
    seeder.call("reports.update", task=report["id"], report=REPORT + widget(server.info.web_host, trained))
    seeder.call("reports.publish", task=report["id"], message="done")
    return {"work": work, "flow": flow, "controller": controller, "steps": ",".join(steps),
            "report": report["id"], "reports": report["project_id"], "trained": trained, "model": model}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    server = LocalServer(tmp_path_factory.mktemp("source") / "server", api_port=0, files_port=0, web_port=0).start()
    try:
        yield server, seed(server)
    finally:
        server.stop()


@pytest.fixture(params=["2.3.0", "1.9.2"])
def target(request, tmp_path):
    server = LocalServer(tmp_path / "target", api_port=0, files_port=0, web_port=0,
                         server_version=request.param).start()
    try:
        yield request.param, server
    finally:
        server.stop()


def _project(api: RawApi, name: str) -> dict:
    (row,) = api.call("projects.get_all", name=f"^{name}$", search_hidden=True,
                      only_fields=["id", "name", "system_tags"])["projects"]
    return row


def test_a_pipeline_run_comes_back_as_a_pipeline_run(source, target, tmp_path):
    server, ids = source
    release, dest = target
    with ClearMLTaskExporter(client_of(server), "source", tmp_path / "exports") as exporter:
        result = exporter.export_project(ids["flow"])
    assert result.manifest["status"] == "ok" and result.manifest["tasks"] == 3
    task_json = json.loads((result.tasks[0].folder / "task.json").read_text())
    assert task_json["project"]["chain"] == [
        {"name": "work", "system_tags": []}, {"name": "work/.pipelines", "system_tags": ["hidden"]},
        {"name": "work/.pipelines/train flow", "system_tags": ["hidden", "pipeline"]}]
    assert task_json["server"] == {"version": "2.3.0", "api_version": "2.34"}
    restore_archive(client_of(dest), result.archive)
    api = RawApi(dest.info)
    assert set(_project(api, r"work/\.pipelines")["system_tags"]) == {"hidden"}
    flow = _project(api, r"work/\.pipelines/train flow")
    assert set(flow["system_tags"]) == {"hidden", "pipeline"}
    assert _project(api, "work")["system_tags"] == []
    tasks = api.call("tasks.get_all", project=[flow["id"]], only_fields=["name", "type", "status", "system_tags",
                                                                         "parent"])["tasks"]
    (controller,) = [t for t in tasks if t["type"] == "controller"]
    assert "pipeline" in controller["system_tags"] and controller["status"] == "completed"
    steps = [t for t in tasks if t["type"] != "controller"]
    assert sorted(t["name"] for t in steps) == ["step 0", "step 1"]
    assert all(t["parent"] == controller["id"] for t in steps)
    # the web app's Pipelines page finds it (API 2.24 children_type on the newest release)
    if release == "2.3.0":
        found = api.session.post(f"{api.info.api_host}/v999.0/projects.get_all_ex",
                                 json={"children_type": "pipeline", "search_hidden": True,
                                       "shallow_search": True}, timeout=60)
        assert [p["name"] for p in found.json()["data"]["projects"]] == ["work"]


def test_a_report_comes_back_as_a_report(source, target, tmp_path):
    server, ids = source
    release, dest = target
    with ClearMLTaskExporter(client_of(server), "source", tmp_path / "exports") as exporter:
        result = exporter.export_project(ids["work"])  # a project's archive holds its reports and pipelines
    archived = {r.task_name for r in result.tasks}
    assert {"weekly report", "train flow", "step 0", "step 1", "trained"} <= archived
    restore_archive(client_of(dest), result.archive)
    api = RawApi(dest.info)
    reports = _project(api, r"work/\.reports")
    assert set(reports["system_tags"]) == {"hidden", "reports"}
    (report,) = api.call("tasks.get_all", project=[reports["id"]], search_hidden=True,
                         only_fields=["name", "type", "status", "system_tags", "report", "tags"])["tasks"]
    assert (report["name"], report["type"], report["status"]) == ("weekly report", "report", "published")
    assert {"hidden", "reports"} <= set(report["system_tags"]) and report["tags"] == ["weekly"]
    (trained,) = api.call("tasks.get_all", name="^trained$", only_fields=["id"])["tasks"]
    assert report["report"] == REPORT + widget(dest.info.web_host, trained["id"])  # shows the restored task
    listed = api.call("reports.get_all_ex", project=[_project(api, "work")["id"]], only_fields=["name"])["tasks"]
    assert [r["name"] for r in listed] == ["weekly report"]


def test_the_sensor_finds_a_watched_projects_reports_and_pipeline_runs(source):
    server, ids = source
    client = client_of(server)
    watched = resolve_project_ids(client, ["work"])
    assert {ids["work"], ids["flow"], ids["reports"]} <= set(watched)
    found = {t.id for t in poll_finished_tasks(client, ClearMLTaskCursor(), project_ids=watched).tasks}
    assert {ids["report"], ids["controller"], *ids["steps"].split(","), ids["trained"]} <= found
    hidden = RawSeeder.of(server).call("tasks.create", name="hidden helper", type="training", project=ids["work"],
                                       system_tags=["hidden"])["id"]
    RawSeeder.of(server).call("tasks.completed", task=hidden, force=True)
    assert hidden not in {t.id for t in poll_finished_tasks(client, ClearMLTaskCursor(), project_ids=watched).tasks}


def test_model_events_keep_their_iterations_where_the_target_keeps_them(source, target, tmp_path):
    server, ids = source
    release, dest = target
    with ClearMLTaskExporter(client_of(server), "source", tmp_path / "exports") as exporter:
        result = exporter.export_task(ids["trained"])
    assert result.manifest["status"] == "ok", result.manifest["issues"]
    (restored,) = restore_archive(client_of(dest), result.archive)
    api = RawApi(dest.info)
    (model,) = api.call("models.get_all", task=[restored.task_id], only_fields=["id"])["models"]
    hist = api.call("events.scalar_metrics_iter_histogram", task=model["id"], model_events=True)
    if release == "2.3.0":
        assert hist["mAP"]["val"]["x"] == [3, 7] and not any("iteration 0" in n for n in restored.notes)
    else:
        assert hist["mAP"]["val"]["x"] == [0] and hist["mAP"]["val"]["y"] == [pytest.approx(0.7)]  # the last wins
        assert any("1.9.2" in n and "iteration 0" in n for n in restored.notes), restored.notes


def test_the_exporter_and_the_sensor_read_a_1_9_2_server(tmp_path):
    server = LocalServer(tmp_path / "old", api_port=0, files_port=0, web_port=0, server_version="1.9.2").start()
    try:
        ids = seed(server)
        client = client_of(server)
        watched = resolve_project_ids(client, ["work"])  # 1.9.2's list operators: not hidden, or a report
        found = {t.id for t in poll_finished_tasks(client, ClearMLTaskCursor(), project_ids=watched).tasks}
        assert {ids["report"], ids["controller"], *ids["steps"].split(","), ids["trained"]} <= found
        with ClearMLTaskExporter(client_of(server), "old", tmp_path / "exports") as exporter:
            project = exporter.export_project(ids["work"])
            trained = exporter.export_task(ids["trained"])
        assert project.manifest["status"] == "ok" and "weekly report" in {r.task_name for r in project.tasks}
        task_json = json.loads((trained.folder / "task.json").read_text())
        assert task_json["server"] == {"version": "1.9.2", "api_version": "2.23"}
        (events,) = list(trained.folder.rglob("events.jsonl"))  # the output model's events
        assert [json.loads(line)["iter"] for line in events.read_text().splitlines()] == [0]  # 1.9.2 keeps one
    finally:
        server.stop()


def test_a_pipeline_run_restored_into_another_project_stays_a_pipeline_run_there(source, tmp_path):
    server, ids = source
    with ClearMLTaskExporter(client_of(server), "source", tmp_path / "exports") as exporter:
        result = exporter.export_project(ids["flow"])
    dest = LocalServer(tmp_path / "target", api_port=0, files_port=0, web_port=0).start()
    try:
        restored = restore_archive(client_of(dest), result.archive, project="archive/2024")
        assert {r.project for r in restored} == {"archive/2024/.pipelines/train flow"}
        api = RawApi(dest.info)
        assert set(_project(api, r"archive/2024/\.pipelines/train flow")["system_tags"]) == {"hidden", "pipeline"}
        assert set(_project(api, r"archive/2024/\.pipelines")["system_tags"]) == {"hidden"}
        assert _project(api, "archive/2024")["system_tags"] == []
    finally:
        dest.stop()
