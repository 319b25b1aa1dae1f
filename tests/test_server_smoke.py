"""Fast smoke test of the local server with the real SDK (flows 1 and 3): run it after touching the server.

``pytest -q tests/test_server_smoke.py`` takes about 10 s.
"""

from __future__ import annotations

import hashlib
import json
import struct

FLOWS_1_AND_3 = r"""
import hashlib, json, os, pathlib
import numpy as np, pandas as pd
from clearml import Dataset, OutputModel, Task
from clearml.backend_api.session.client import APIClient

out = {}
task = Task.init(project_name="smoke", task_name="flow1", output_uri=True)
task.connect({"lr": 0.1, "nested": {"a": 1}})
log = task.get_logger()
for i in range(50):
    log.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
log.report_text("smoke text line")
log.report_single_value("acc", 0.9)
log.report_image("img", "sample", iteration=0, image=np.zeros((8, 8, 3), dtype=np.uint8))
log.report_plotly("plot", "p", iteration=0, figure={"data": [{"x": [1, 2], "y": [3, 4]}]})
log.report_table("tbl", "t", iteration=0, table_plot=pd.DataFrame({"a": [1, 2]}))
task.upload_artifact("stats", {"a": 1})
payload = os.urandom(5000)
pathlib.Path("artifact.bin").write_bytes(payload)
task.upload_artifact("afile", "artifact.bin")
weights = os.urandom(3000)
pathlib.Path("w.pt").write_bytes(weights)
om = OutputModel(task=task, name="smoke-model", framework="PyTorch")
om.update_weights("w.pt")
task.flush(wait_for_uploads=True)
task.close()

t = Task.get_task(task_id=task.id)
out["status"] = t.get_status()
out["params"] = t.get_parameters()
out["stats"] = t.artifacts["stats"].get()
out["afile_ok"] = pathlib.Path(t.artifacts["afile"].get_local_copy()).read_bytes() == payload
scalars = t.get_reported_scalars()
out["loss_y"] = scalars["loss"]["train"]["y"]
out["single_values"] = t.get_reported_single_values()
out["console"] = "\n".join(t.get_reported_console_output(number_of_reports=50))
out["plots"] = sorted(p["metric"] for p in t.get_reported_plots())
models = t.models["output"]
out["model_names"] = [m.name for m in models]
out["model_ok"] = pathlib.Path(models[-1].get_local_copy()).read_bytes() == weights
out["completed"] = [x.id for x in Task.get_tasks(project_name="smoke", task_filter={"status": ["completed"]})]
out["task_id"] = task.id
out["export_name"] = t.export_task()["name"]
out["apiclient_ids"] = [x.id for x in APIClient().tasks.get_all(project=[t.project])]

root = pathlib.Path("dsdata"); root.mkdir()
for i in range(5):
    (root / f"f{i}.txt").write_text(f"file {i}\n" * 100)
ds = Dataset.create(dataset_name="ds1", dataset_project="smoke_ds", dataset_version="1.0.0")
ds.add_files(str(root)); ds.upload(); ds.finalize(); ds.publish()
(root / "f0.txt").write_text("changed\n"); (root / "new.txt").write_text("new\n")
ds2 = Dataset.create(dataset_name="ds1", dataset_project="smoke_ds", dataset_version="1.1.0", parent_datasets=[ds.id])
ds2.sync_folder(str(root)); ds2.upload(); ds2.finalize()
out["child_added"], out["child_modified"] = ds2.list_added_files(), ds2.list_modified_files()
latest = Dataset.get(dataset_name="ds1", dataset_project="smoke_ds")
out["latest_is_child"] = latest.id == ds2.id
out["graph"] = latest.get_dependency_graph()
out["ids"] = [ds.id, ds2.id]
out["v1_is_parent"] = Dataset.get(dataset_name="ds1", dataset_project="smoke_ds", dataset_version="1.0.0").id == ds.id
copy = pathlib.Path(latest.get_local_copy())
out["copy"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in copy.iterdir()}
out["source"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()}
out["versions"] = sorted(d["version"] for d in Dataset.list_datasets(dataset_project="smoke_ds"))
print("RESULT " + json.dumps(out))
"""


def _result(proc) -> dict:
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_sdk_flows_1_and_3_round_trip(sdk_runner):
    out = _result(sdk_runner(FLOWS_1_AND_3, timeout=90))
    assert out["status"] == "completed"
    assert out["params"] == {"General/lr": "0.1", "General/nested/a": "1"}
    assert out["stats"] == {"a": 1}
    assert out["afile_ok"] and out["model_ok"]
    # the real server averages Elasticsearch's 32-bit doc values in this histogram
    assert out["loss_y"] == [struct.unpack("f", struct.pack("f", 1.0 / (i + 1)))[0] for i in range(50)]
    assert "smoke text line" in out["console"]
    assert {"plot", "tbl"} <= set(out["plots"])
    assert out["model_names"] == ["smoke-model"]
    assert out["completed"] == [out["task_id"]]
    assert out["export_name"] == "flow1"
    assert out["apiclient_ids"] == [out["task_id"]]
    assert out["child_added"] == ["new.txt"] and out["child_modified"] == ["f0.txt"]
    assert out["latest_is_child"] and out["v1_is_parent"]
    parent, child = out["ids"]
    assert out["graph"] == {parent: [], child: [parent]}
    assert out["single_values"] == {"acc": 0.9}
    assert out["copy"] == out["source"] and len(out["copy"]) == 6
    assert out["copy"]["f0.txt"] == hashlib.sha256(b"changed\n").hexdigest()
    assert out["versions"] == ["1.0.0", "1.1.0"]
