"""The real SDK's flows against the local server, each written in one process and read back in another.

Flow 1: ``Task.init`` -> connect -> every report kind -> artifacts -> models -> close, then a fresh process
reads it through ``Task.get_tasks``/``get_task``/artifacts/models/``export_task``/``APIClient``, and the raw
documents carry the fields and timestamps the real server keeps. Flow 3: a two-version dataset whose child
uploads only the delta. Company isolation as the SDK sees it.
"""

from __future__ import annotations

import json
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_sdk_script, sdk_env  # noqa: E402
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import LocalServer  # noqa: E402
from clearml_assets.local_server.auth import Credential  # noqa: E402


def result_of(proc) -> dict:
    return json.loads([x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1][len("RESULT "):])


FLOW1_WRITE = r"""
import hashlib, json, os, pathlib
import numpy as np, pandas as pd
from clearml import OutputModel, Task
task = Task.init(project_name="flows/one", task_name="flow1-train", output_uri=True)
params = task.connect({"lr": 0.01, "epochs": 3, "nested": {"depth": 2}})
log = task.get_logger()
for i in range(20):
    log.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
log.report_text("flow one text")
log.report_image("img", "sample", iteration=1, image=np.zeros((6, 6, 3), dtype=np.uint8))
log.report_plotly("curve", "p", iteration=1, figure={"data": [{"x": [1, 2], "y": [2, 4]}]})
log.report_table("tbl", "t", iteration=1, table_plot=pd.DataFrame({"a": [1, 2], "b": [3, 4]}))
log.report_single_value("accuracy", 0.875)
task.upload_artifact("config", {"alpha": 1, "beta": [1, 2]})
blob = os.urandom(40_000)
pathlib.Path("data.bin").write_bytes(blob)
task.upload_artifact("data", "data.bin")
first = os.urandom(10_000)
pathlib.Path("first.pt").write_bytes(first)
task.update_output_model(model_path="first.pt", name="first-model", iteration=7)
weights = os.urandom(25_000)
pathlib.Path("best.pt").write_bytes(weights)
om = OutputModel(task=task, name="best-model", framework="PyTorch")
om.update_weights("best.pt")
task.flush(wait_for_uploads=True)
task.close()
print("RESULT " + json.dumps({"task": task.id, "model": om.id, "blob": hashlib.sha256(blob).hexdigest(),
                              "weights": hashlib.sha256(weights).hexdigest(),
                              "first": hashlib.sha256(first).hexdigest()}))
"""

FLOW1_READ = r"""
import hashlib, json, pathlib
from clearml import Task
from clearml.backend_api.session.client import APIClient
out = {}
done = Task.get_tasks(project_name="flows/one", task_filter={"status": ["completed"]})
out["completed"] = [t.id for t in done]
out["running"] = [t.id for t in Task.get_tasks(project_name="flows/one", task_filter={"status": ["in_progress"]})]
t = Task.get_task(project_name="flows/one", task_name="flow1-train")
out["id"] = t.id
out["status"] = t.get_status()
out["params"] = t.get_parameters()
out["config"] = t.artifacts["config"].get()
out["data"] = hashlib.sha256(pathlib.Path(t.artifacts["data"].get_local_copy()).read_bytes()).hexdigest()
models = t.models["output"]
out["models"] = [m.name for m in models]
best = [m for m in models if m.name == "best-model"][0]
out["best"] = hashlib.sha256(pathlib.Path(best.get_local_copy()).read_bytes()).hexdigest()
out["best_framework"] = best.framework
first = [m for m in models if m.name == "flow1-train - first-model"][0]  # the SDK prefixes the task name
out["first"] = hashlib.sha256(pathlib.Path(first.get_local_copy()).read_bytes()).hexdigest()
out["scalars"] = t.get_reported_scalars()["loss"]["train"]["x"]
out["single"] = t.get_reported_single_values()
out["plots"] = sorted(p["metric"] for p in t.get_reported_plots())
out["console"] = "\n".join(t.get_reported_console_output(number_of_reports=20))
exported = t.export_task()
out["export"] = {k: str(getattr(exported.get(k), "value", exported.get(k))) for k in ("name", "status", "type")}
out["export_hyper"] = sorted(exported["hyperparams"]["General"])
rows = APIClient().tasks.get_all(project=[t.project], only_fields=["id", "name", "status"])
out["apiclient"] = [[r.id, r.name, str(getattr(r.status, "value", r.status))] for r in rows]
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_flow1_written_then_read_in_another_process(clearml_server, sdk_runner):
    wrote = result_of(sdk_runner(FLOW1_WRITE, timeout=120))
    out = result_of(sdk_runner(FLOW1_READ, timeout=90))
    tid = wrote["task"]
    assert out["completed"] == [tid] and out["running"] == [] and out["id"] == tid
    assert out["status"] == "completed"
    assert out["params"] == {"General/lr": "0.01", "General/epochs": "3", "General/nested/depth": "2"}
    assert out["config"] == {"alpha": 1, "beta": [1, 2]}
    assert out["data"] == wrote["blob"]
    assert sorted(out["models"]) == ["best-model", "flow1-train - first-model"]
    assert out["best"] == wrote["weights"] and out["first"] == wrote["first"]
    assert out["best_framework"] == "PyTorch"
    assert out["scalars"] == list(range(20))
    assert out["single"] == {"accuracy": 0.875}
    assert {"curve", "tbl"} <= set(out["plots"])
    assert "flow one text" in out["console"]
    assert out["export"] == {"name": "flow1-train", "status": "completed", "type": "training"}
    assert out["export_hyper"] == ["epochs", "lr", "nested/depth"]
    assert out["apiclient"] == [[tid, "flow1-train", "completed"]]

    # the documents as the real server keeps them
    api = RawApi(clearml_server.info)
    task = api.call("tasks.get_by_id", task=tid)["task"]
    times = {k: datetime.fromisoformat(task[k]) for k in ("created", "started", "completed", "status_changed",
                                                         "last_update", "last_change")}
    assert all(v.utcoffset().total_seconds() == 0 for v in times.values())
    assert times["created"] <= times["started"] <= times["completed"] <= times["status_changed"]
    assert times["status_changed"] <= times["last_update"]
    assert task["status_reason"] == "completed" and task["system_tags"] == ["development"]
    assert task["output"]["destination"] == clearml_server.info.files_host
    assert task["last_iteration"] >= 19 and task["last_metrics"]
    arts = {a["key"]: a for a in task["execution"]["artifacts"]}
    assert set(arts) == {"config", "data"} and {a["mode"] for a in arts.values()} == {"output"}
    assert arts["data"]["content_size"] == 40_000
    outputs = task["models"]["output"]
    assert sorted(m["name"] for m in outputs) == ["best", "first-model"]  # names in the task: SDK-chosen
    best = api.call("models.get_by_id", model=wrote["model"])["model"]
    assert best["task"] == tid and best["project"] == task["project"] and best["framework"] == "PyTorch"
    assert best["uri"].startswith(clearml_server.info.files_host) and "uploading_file" not in best["uri"]
    listed = api.call("models.get_all", task=[tid], order_by=["created"], only_fields=["id", "name"])["models"]
    assert {m["id"] for m in listed} == {m["model"] for m in outputs}
    project = api.call("projects.get_by_id", project=task["project"])["project"]
    assert project["name"] == "flows/one"
    parent = api.call("projects.get_all", name="^flows$", only_fields=["id"])["projects"]
    assert [p["id"] for p in parent] == [project["parent"]]  # "flows" was created for "flows/one"


FLOW3_WRITE = r"""
import json, pathlib
from clearml import Dataset
root = pathlib.Path("src"); root.mkdir()
for i in range(6):
    (root / f"part{i}.csv").write_text(f"id,value\n{i},{i * i}\n" * (50 + i))
(root / "sub").mkdir()
(root / "sub" / "keep.txt").write_text("unchanged nested file\n")
v1 = Dataset.create(dataset_name="flowds", dataset_project="flows/data", dataset_version="1.0.0")
v1.add_files(str(root)); v1.upload(); v1.finalize(); v1.publish()
(root / "part2.csv").write_text("id,value\n2,changed\n")
(root / "part5.csv").unlink()
(root / "extra.csv").write_text("id,value\n9,81\n")
v2 = Dataset.create(dataset_name="flowds", dataset_project="flows/data", dataset_version="2.0.0",
                    parent_datasets=[v1.id])
v2.sync_folder(str(root)); v2.upload(); v2.finalize()
print("RESULT " + json.dumps({"v1": v1.id, "v2": v2.id}))
"""

FLOW3_READ = r"""
import hashlib, json, pathlib
from clearml import Dataset
def digest(folder):
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
out = {}
out["source"] = digest("src")
latest = Dataset.get(dataset_name="flowds", dataset_project="flows/data")
out["latest"] = latest.id
out["v1"] = Dataset.get(dataset_name="flowds", dataset_project="flows/data", dataset_version="1.0.0").id
v2 = Dataset.get(dataset_name="flowds", dataset_project="flows/data", dataset_version="2.0.0")
out["v2"] = v2.id
out["added"], out["modified"], out["removed"] = (v2.list_added_files(), v2.list_modified_files(),
                                                 v2.list_removed_files())
out["copy"] = digest(v2.get_local_copy())
out["v1_copy"] = digest(Dataset.get(dataset_id=out["v1"]).get_local_copy())
out["list"] = sorted((d["name"], d["version"]) for d in Dataset.list_datasets(dataset_project="flows/data"))
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_flow3_child_dataset_stores_only_the_delta(clearml_server, sdk_runner, tmp_path):
    wrote = result_of(sdk_runner(FLOW3_WRITE, timeout=120))
    out = result_of(sdk_runner(FLOW3_READ, timeout=90))
    assert out["latest"] == wrote["v2"] and out["v2"] == wrote["v2"] and out["v1"] == wrote["v1"]
    assert out["added"] == ["extra.csv"] and out["modified"] == ["part2.csv"] and out["removed"] == ["part5.csv"]
    assert out["copy"] == out["source"]  # parent files + delta, byte-exact
    assert "part5.csv" in out["v1_copy"] and len(out["v1_copy"]) == 7
    assert out["list"] == [["flowds", "1.0.0"], ["flowds", "2.0.0"]]

    # the child's uploaded archive holds only what changed
    api = RawApi(clearml_server.info)
    task = api.call("tasks.get_by_id", task=wrote["v2"])["task"]
    zips = [a["uri"] for a in task["execution"]["artifacts"] if a["uri"].endswith(".zip")]
    assert len(zips) == 1
    archive = tmp_path / "child.zip"
    archive.write_bytes(api.file(zips[0]).content)
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["extra.csv", "part2.csv"]
        assert zf.read("part2.csv") == b"id,value\n2,changed\n"
    assert "dataset" in task["system_tags"] and task["status"] == "completed"
    parent = api.call("tasks.get_by_id", task=wrote["v1"])["task"]
    assert parent["status"] == "published"
    hidden = api.call("projects.get_all", name=r"^flows/data/\.datasets/flowds$")["projects"]
    assert hidden == []  # dataset projects are hidden from plain listings
    found = api.call("projects.get_all", name=r"^flows/data/\.datasets/flowds$", search_hidden=True)["projects"]
    assert len(found) == 1 and "hidden" in found[0]["system_tags"]


ISOLATION_READ = r"""
import json
from clearml import Task
from clearml.backend_api.session.client import APIClient
out = {{}}
try:
    Task.get_task(task_id="{task}")
    out["get_task"] = "found"
except Exception as exc:
    out["get_task"] = type(exc).__name__ + ": " + str(exc)[:200]
out["get_tasks"] = [t.id for t in Task.get_tasks(project_name="private")]
out["apiclient"] = [t.id for t in APIClient().tasks.get_all(search_hidden=True)]
print("RESULT " + json.dumps(out))
"""


def test_sdk_of_another_company_sees_nothing(tmp_path):
    a = Credential("FLOWSA" + "A" * 14, "flows-secret-a-" + "x" * 25, "company-a", "alice")
    b = Credential("FLOWSB" + "B" * 14, "flows-secret-b-" + "y" * 25, "company-b", "bob")
    with LocalServer(tmp_path / "srv", api_port=0, files_port=0, credentials=[a, b]) as server:
        env_a = sdk_env(server.info, tmp_path / "home_a")
        wrote = result_of(run_sdk_script(r"""
import json
from clearml import Task
t = Task.init(project_name="private", task_name="a-only")
t.close()
print("RESULT " + json.dumps({"task": t.id}))
""", env_a, timeout=90, cwd=tmp_path))
        env_b = sdk_env(server.info, tmp_path / "home_b")
        env_b.update(CLEARML_API_ACCESS_KEY=b.access_key, CLEARML_API_SECRET_KEY=b.secret_key)
        out = result_of(run_sdk_script(ISOLATION_READ.format(task=wrote["task"]), env_b, timeout=90, cwd=tmp_path))
        assert out["get_task"].startswith("ValueError") and "could not be found" in out["get_task"]
        assert out["get_tasks"] == [] and out["apiclient"] == []
        api_a = RawApi(server.info, a.access_key, a.secret_key)
        assert [t["id"] for t in api_a.call("tasks.get_all")["tasks"]] == [wrote["task"]]
