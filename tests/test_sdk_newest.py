"""The real ClearML SDK (clearml 2.1.12) against the local server at clearml-server's newest release (2.3.0, API
2.34): its own Dataset, pipeline (``PipelineDecorator`` run locally) and reporting calls work, their tasks land
where the real server keeps them (hidden ``.datasets``/``.pipelines`` projects with their system tags and types),
and every one of them archives complete.

The SDK knows API versions up to 2.23: against a 2.34 server it keeps the server's version as its maximum and
sends its calls as 2.23, as it does with app.clear.ml; the script prints both so the test can check it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import restore_archive

from conftest import sdk_env
from seeding import client_of
from server_api import RawApi

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SCRIPT = r'''
import json
from pathlib import Path

from clearml import Dataset, PipelineDecorator, Task
from clearml.backend_api import Session


@PipelineDecorator.component(return_values=["numbers"], cache=False)
def make_numbers(count: int):
    return list(range(count))


@PipelineDecorator.component(return_values=["total"], cache=False)
def add_up(numbers):
    return sum(numbers)


@PipelineDecorator.pipeline(name="sum run", project="sdk newest", version="1.0.0")
def pipeline(count: int = 5):
    total = int(add_up(make_numbers(count)))  # waits for the step and reads its return artifact
    print(f"PIPELINE TOTAL {total}")


if __name__ == "__main__":
    folder = Path("data")
    folder.mkdir(exist_ok=True)
    for i in range(3):
        (folder / f"part{i}.txt").write_text(f"numbers {i}\n")
    dataset = Dataset.create(dataset_name="numbers", dataset_project="sdk newest")
    dataset.add_files(str(folder))
    dataset.upload()
    dataset.finalize()
    copy = Path(Dataset.get(dataset_id=dataset.id).get_local_copy())
    files = sorted(p.name for p in copy.rglob("*.txt"))

    task = Task.init(project_name="sdk newest", task_name="reporting", auto_connect_frameworks=False,
                     auto_resource_monitoring=False, auto_connect_streams=False)
    log = task.get_logger()
    for i in range(4):
        log.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
    log.report_single_value("accuracy", 0.91)
    log.report_table("scores", "table", iteration=0, table_plot=[["a", "b"], [1, 2]])
    log.report_text("reported at the newest API")
    task.flush(wait_for_uploads=True)
    reporting = task.id
    task.close()

    PipelineDecorator.run_locally()
    pipeline(count=4)
    print(json.dumps({"dataset": dataset.id, "dataset_files": files, "reporting": reporting,
                      "api_version": Session.api_version, "max_api_version": Session.max_api_version,
                      "server_version": Session.server_version}))
'''


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdk_newest")
    server = LocalServer(tmp / "server", api_port=0, files_port=0, web_port=0).start()
    try:
        script = tmp / "work" / "flow.py"  # a file: the pipeline's steps run their functions' source from it
        script.parent.mkdir()
        script.write_text(SCRIPT)
        proc = subprocess.run([sys.executable, str(script)], env=sdk_env(server.info, tmp / "home"),
                              cwd=script.parent, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"STDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
        facts = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
        assert "PIPELINE TOTAL 6" in proc.stdout
        yield server, RawApi(server.info), facts, tmp
    finally:
        server.stop()


def _project(api: RawApi, name: str) -> dict:
    found = api.call("projects.get_all", name=f"^{name}$", search_hidden=True, only_fields=["id", "name",
                                                                                            "system_tags"])
    assert len(found["projects"]) == 1, name
    return found["projects"][0]


def test_the_sdk_sees_the_newest_server_and_speaks_the_api_it_knows(ran):
    _, api, facts, _ = ran
    assert (facts["server_version"], facts["max_api_version"]) == ("2.3.0", "2.34")
    assert facts["api_version"] == "2.23"  # its newest services, as against app.clear.ml
    assert api.call("server.info")["api_version"] == "2.34"


def test_a_dataset_version_is_a_dataset_task_in_a_hidden_dataset_project(ran):
    _, api, facts, _ = ran
    assert facts["dataset_files"] == ["part0.txt", "part1.txt", "part2.txt"]
    task = api.call("tasks.get_by_id", task=facts["dataset"])["task"]
    assert task["type"] == "data_processing" and "dataset" in task["system_tags"]
    assert task["status"] in ("completed", "published")
    project = api.call("projects.get_by_id", project=task["project"])["project"]
    assert project["name"] == "sdk newest/.datasets/numbers"
    assert {"hidden", "dataset"} <= set(project["system_tags"])
    # the web app's datasets page: the dataset project is found by its children type
    listed = api.session.post(f"{api.info.api_host}/v999.0/projects.get_all_ex",
                              json={"children_type": "dataset", "shallow_search": True, "search_hidden": True,
                                    "include_stats": True}, timeout=60).json()["data"]["projects"]
    assert [p["name"] for p in listed] == ["sdk newest"] and listed[0]["stats"]["datasets"]["count"] == 1


def test_a_pipeline_run_is_a_controller_with_its_steps_in_a_hidden_pipeline_project(ran):
    _, api, _, _ = ran
    project = _project(api, r"sdk newest/\.pipelines/sum run")
    assert {"hidden", "pipeline"} <= set(project["system_tags"])
    tasks = api.call("tasks.get_all", project=[project["id"]], search_hidden=True,
                     only_fields=["name", "type", "status", "system_tags", "parent"])["tasks"]
    controller = [t for t in tasks if t["type"] == "controller"]
    assert len(controller) == 1 and "pipeline" in controller[0]["system_tags"]
    steps = {t["name"]: t for t in tasks if t["type"] != "controller"}
    assert set(steps) == {"make_numbers", "add_up"}
    assert all(t["status"] == "completed" and t["parent"] == controller[0]["id"] for t in steps.values())
    assert controller[0]["status"] == "completed"


def test_the_reporting_task_reads_back_at_the_newest_api(ran):
    _, api, facts, _ = ran
    hist = api.session.post(f"{api.info.api_host}/v999.0/events.scalar_metrics_iter_histogram",
                            json={"task": facts["reporting"]}, timeout=60).json()["data"]
    assert hist["loss"]["train"]["y"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    single = api.call("events.get_task_single_value_metrics", tasks=[facts["reporting"]])["tasks"][0]
    assert [(v["metric"], v["variant"], v["value"]) for v in single["values"]] == [("Summary", "accuracy", 0.91)]
    log = api.call("events.get_task_log", task=facts["reporting"], batch_size=100)["events"]
    assert any("reported at the newest API" in e.get("msg", "") for e in log)


def test_every_task_of_the_run_archives_complete(ran):
    server, api, facts, tmp = ran
    client = client_of(server)
    root = tmp / "exports"
    with ClearMLTaskExporter(client, "personal", root, max_workers=2) as exporter:
        pipeline = exporter.export_project(_project(api, r"sdk newest/\.pipelines/sum run")["id"])
        others = [exporter.export_task(facts[k]) for k in ("dataset", "reporting")]
    assert pipeline.manifest["status"] == "ok", pipeline.manifest["issues"]
    assert pipeline.manifest["tasks"] == 3
    for result in [*pipeline.tasks, *others]:
        assert result.manifest["status"] == "ok", (result.task_name, result.manifest["issues"])
    dataset = others[0].manifest
    assert dataset["counts"]["artifact_files"] >= 1  # the version's state and files
    reporting = others[1]  # every point, the table and the text the script reported
    assert reporting.counts["scalar_points"] == reporting.manifest["server_counts"]["scalar_points"] >= 4
    assert reporting.counts["plots"] >= 1
    assert "reported at the newest API" in (reporting.folder / "console.txt").read_text()
    steps = {r.task_name: r for r in pipeline.tasks}  # their return values: a list is a pickled artifact,
    assert steps["make_numbers"].counts["artifact_files"] == 1  # a number a parameter of the "return" section
    add_up = json.loads((steps["add_up"].folder / "task.json").read_text())["task"]
    assert add_up["hyperparams"]["return"]["total"]["value"] == "6"


RESTORED_SCRIPT = r'''
import json
from pathlib import Path

from clearml import Dataset

dataset = Dataset.get(dataset_project="sdk newest", dataset_name="numbers")
copy = Path(dataset.get_local_copy())
print(json.dumps({"id": dataset.id, "files": sorted(p.name for p in copy.rglob("*.txt")),
                  "texts": sorted(p.read_text() for p in copy.rglob("*.txt"))}))
'''


def test_the_dataset_and_the_pipeline_restore_into_a_1_9_2_server_as_what_they_are(ran):
    server, api, facts, tmp = ran
    root = tmp / "restore-exports"
    with ClearMLTaskExporter(client_of(server), "personal", root, max_workers=2) as exporter:
        pipeline = exporter.export_project(_project(api, r"sdk newest/\.pipelines/sum run")["id"])
        dataset = exporter.export_task(facts["dataset"])
    target = LocalServer(tmp / "old", api_port=0, files_port=0, web_port=0, server_version="1.9.2").start()
    try:
        client = client_of(target, "old")
        restore_archive(client, dataset.archive)
        restore_archive(client, pipeline.archive)
        old = RawApi(target.info)
        assert set(_project(old, r"sdk newest/\.datasets/numbers")["system_tags"]) == {"hidden", "dataset"}
        assert set(_project(old, r"sdk newest/\.pipelines/sum run")["system_tags"]) == {"hidden", "pipeline"}
        script = tmp / "restored.py"
        script.write_text(RESTORED_SCRIPT)
        proc = subprocess.run([sys.executable, str(script)], env=sdk_env(target.info, tmp / "home-old"),
                              cwd=tmp, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"STDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
        found = json.loads(proc.stdout.strip().splitlines()[-1])
        assert found["id"] != facts["dataset"] and found["files"] == facts["dataset_files"]
        assert found["texts"] == [f"numbers {i}\n" for i in range(3)]
    finally:
        target.stop()
