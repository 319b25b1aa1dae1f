"""What was written survives a restart, and two SDK processes writing at once lose nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_sdk_script, sdk_env  # noqa: E402
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import LocalServer  # noqa: E402

WRITE = r"""
import hashlib, json, os, pathlib
from clearml import Dataset, OutputModel, Task
task = Task.init(project_name="persist", task_name="before-restart", output_uri=True)
log = task.get_logger()
for i in range(2000):
    log.report_scalar("m", "v", value=i * 0.25 - 3, iteration=i)
for i in range(300):
    log.report_text(f"persist line {i}", print_console=False, level=30 if i % 2 else 20)
log.report_plotly("plot", "p", iteration=3, figure={"data": [{"x": [1], "y": [2]}]})
blob = os.urandom(50_000)
pathlib.Path("blob.bin").write_bytes(blob)
task.upload_artifact("blob", "blob.bin")
pathlib.Path("w.pt").write_bytes(os.urandom(20_000))
OutputModel(task=task, name="persist-model").update_weights("w.pt")
task.flush(wait_for_uploads=True)
task.close()
root = pathlib.Path("ds"); root.mkdir()
for i in range(4):
    (root / f"{i}.txt").write_text(f"content {i}\n" * (i + 1))
ds = Dataset.create(dataset_name="pds", dataset_project="persist_ds")
ds.add_files(str(root)); ds.upload(); ds.finalize()
print("RESULT " + json.dumps({"task": task.id, "dataset": ds.id, "blob": hashlib.sha256(blob).hexdigest()}))
"""

READ = r"""
import hashlib, json, pathlib
from clearml import Dataset, Task
t = Task.get_task(task_id="{task}")
sc = t.get_all_reported_scalars()["m"]["v"]
copy = pathlib.Path(Dataset.get(dataset_id="{dataset}").get_local_copy())
print("RESULT " + json.dumps({{
    "status": t.get_status(),
    "scalars_ok": list(sc["y"]) == [i * 0.25 - 3 for i in range(2000)],
    "blob": hashlib.sha256(pathlib.Path(t.artifacts["blob"].get_local_copy()).read_bytes()).hexdigest(),
    "model": pathlib.Path(t.models["output"][-1].get_local_copy()).stat().st_size,
    "ds": sorted((p.name, p.read_text()) for p in copy.iterdir()),
}}))
"""


def result_of(stdout: str) -> dict:
    return json.loads([x for x in stdout.splitlines() if x.startswith("RESULT ")][-1][7:])


def snapshot(api: RawApi) -> dict:
    """Everything an exporter reads: documents, every event, every file's bytes."""
    tasks = api.call("tasks.get_all", search_hidden=True, order_by=["id"])["tasks"]
    snap = {"tasks": tasks, "projects": api.call("projects.get_all", search_hidden=True, order_by=["id"])["projects"],
            "models": api.call("models.get_all", order_by=["id"])["models"], "events": {}, "files": {}}
    for task in tasks:
        # per event type, as on the real server a mixed page reaching log events (no iter) answers 500
        events = []
        for event_type in ("training_stats_scalar", "training_stats_vector", "training_debug_image", "plot"):
            scroll = None
            while True:
                body = {"task": task["id"], "event_type": event_type, "batch_size": 1000,
                        **({"scroll_id": scroll} if scroll else {})}
                data = api.call("events.get_task_events", **body)
                if not data["events"]:
                    break
                events += data["events"]
                scroll = data["scroll_id"]
        events += api.call("events.get_task_log", task=task["id"], batch_size=10000)["events"]
        snap["events"][task["id"]] = events
        for art in task.get("execution", {}).get("artifacts", []):
            if art.get("uri", "").startswith(api.info.files_host):
                snap["files"][art["uri"]] = hashlib.sha256(api.file(art["uri"]).content).hexdigest()
    for model in snap["models"]:
        snap["files"][model["uri"]] = hashlib.sha256(api.file(model["uri"]).content).hexdigest()
    return snap


@pytest.mark.slow
def test_restart_keeps_documents_events_and_files(tmp_path):
    data_dir = tmp_path / "server"
    first = LocalServer(data_dir, api_port=0, files_port=0).start()
    env = sdk_env(first.info, tmp_path / "home")
    try:
        written = result_of(run_sdk_script(WRITE, env, timeout=120, cwd=tmp_path).stdout)
        api = RawApi(first.info)
        before = snapshot(api)
    finally:
        first.stop()
    assert len(before["events"][written["task"]]) >= 2000 + 300 // 2
    assert len(before["files"]) >= 3

    second = LocalServer(data_dir, api_port=first.api_port, files_port=first.files_port).start()
    try:
        after = snapshot(api)  # the token issued before the restart is still valid
        assert after == before
        assert RawApi(second.info).call("tasks.get_by_id", task=written["task"])["task"]["status"] == "completed"
        out = result_of(run_sdk_script(READ.format(**written), env, timeout=90, cwd=tmp_path).stdout)
    finally:
        second.stop()
    assert out["status"] == "completed" and out["scalars_ok"]
    assert out["blob"] == written["blob"] and out["model"] == 20_000
    assert out["ds"] == [[f"{i}.txt", f"content {i}\n" * (i + 1)] for i in range(4)]


CONCURRENT = r"""
import json, os, pathlib, sys
from clearml import Task
who = sys.argv[1]
task = Task.init(project_name="concurrent", task_name=f"writer-{who}", output_uri=True)
log = task.get_logger()
for i in range(3000):
    log.report_scalar("s", who, value=i + 0.5, iteration=i)
for i in range(400):
    log.report_text(f"{who} line {i}", print_console=False, level=30 if i % 2 else 20)
pathlib.Path(f"{who}.bin").write_bytes(who.encode() * 10_000)
task.upload_artifact("data", f"{who}.bin")
task.flush(wait_for_uploads=True)
task.close()
print("RESULT " + json.dumps({"task": task.id}))
"""


def test_two_sdk_processes_write_at_once(clearml_server, tmp_path):
    env = sdk_env(clearml_server.info, tmp_path / "home")
    procs = {}
    for who in ("a", "b"):
        cwd = tmp_path / who
        cwd.mkdir()
        procs[who] = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CONCURRENT), who], env=env, cwd=cwd,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = {}
    for who, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-3000:]
        outs[who] = result_of(stdout)["task"]
    api = RawApi(clearml_server.info)
    projects = api.call("projects.get_all", name="^concurrent$")["projects"]
    assert len(projects) == 1
    for who, task_id in outs.items():
        task = api.call("tasks.get_by_id", task=task_id)["task"]
        assert task["status"] == "completed" and task["project"] == projects[0]["id"]
        raw = api.call("events.scalar_metrics_iter_raw", task=task_id, metric={"metric": "s"}, batch_size=10_000)
        assert raw["variants"][who]["y"] == [i + 0.5 for i in range(3000)]
        log = api.call("events.get_task_log", task=task_id, batch_size=5000)["events"]
        lines = sorted(ln for e in log for ln in e["msg"].split("\n") if ln.startswith(f"{who} line"))
        assert lines == sorted(f"{who} line {i}" for i in range(400))
        art = next(a for a in task["execution"]["artifacts"] if a["key"] == "data")
        assert api.file(art["uri"]).content == who.encode() * 10_000
