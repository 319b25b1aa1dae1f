"""The real SDK's writes read back exactly through every read path of the local server.

One SDK process writes 10,000+ scalar points, 5,000 log lines, debug images, plots, an artifact and a
model; the tests read all of it back by paging the raw endpoints and with a second SDK process.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_sdk_script, sdk_env  # noqa: E402
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import LocalServer  # noqa: E402

N_SCALARS = 10_000
N_VAL = 2_000
N_LOG = 5_000
IMAGE_ITERS = 5

WRITER = r"""
import hashlib, json, math, os, pathlib
import numpy as np
from clearml import OutputModel, Task

N_SCALARS, N_VAL, N_LOG, IMAGE_ITERS = {n_scalars}, {n_val}, {n_log}, {image_iters}
task = Task.init(project_name="roundtrip", task_name="bulk", output_uri=True)
log = task.get_logger()
for i in range(N_SCALARS):
    log.report_scalar("loss", "train", value=math.sin(i * 0.001) * 3.7 + i / 7, iteration=i)
for i in range(N_VAL):
    log.report_scalar("loss", "val", value=1 / (i + 3), iteration=i * 5)
for i in range(N_LOG):
    # alternating levels: the SDK merges same-level lines of one second into one event
    log.report_text(f"line {{i:05d}} \u00e4\u00df\u2713 " + "x" * (i % 40), print_console=False,
                    level=30 if i % 2 else 20)
for it in range(IMAGE_ITERS):
    for variant in ("a", "b"):
        img = np.full((4, 4, 3), it * 10 + (variant == "b"), dtype=np.uint8)
        log.report_image("img", variant, iteration=it, image=img)
    log.report_plotly("curve", "p", iteration=it, figure={{"data": [{{"x": [it], "y": [it * 2]}}]}})
art = os.urandom(200_000)
pathlib.Path("blob.bin").write_bytes(art)
task.upload_artifact("blob", "blob.bin")
weights = os.urandom(300_000)
pathlib.Path("weights.pt").write_bytes(weights)
om = OutputModel(task=task, name="bulk-model", framework="PyTorch")
om.update_weights("weights.pt")
task.flush(wait_for_uploads=True)
task.close()
print("RESULT " + json.dumps({{"task": task.id, "model": om.id,
                              "art_sha": hashlib.sha256(art).hexdigest(),
                              "weights_sha": hashlib.sha256(weights).hexdigest()}}))
"""

READER = r"""
import hashlib, json, math, pathlib
from clearml import Model, Task
from clearml.backend_api.session.client import APIClient

task_id = "{task}"
t = Task.get_task(task_id=task_id)
out = {{"status": t.get_status()}}
allsc = t.get_all_reported_scalars()
train = allsc["loss"]["train"]
out["train_ok"] = (list(train["x"]) == list(range({n_scalars})) and
                   list(train["y"]) == [math.sin(i * 0.001) * 3.7 + i / 7 for i in range({n_scalars})])
out["val_len"] = len(allsc["loss"]["val"]["y"])
out["art_sha"] = hashlib.sha256(pathlib.Path(t.artifacts["blob"].get_local_copy()).read_bytes()).hexdigest()
model = t.models["output"][-1]
out["model_name"] = model.name
out["weights_sha"] = hashlib.sha256(pathlib.Path(model.get_local_copy()).read_bytes()).hexdigest()
out["model_by_id"] = Model(model_id=model.id).name
out["debug_samples"] = len(t.get_debug_samples("img", "a"))
out["plots"] = len(t.get_reported_plots(max_iterations=100))
console = [ln for rep in t.get_reported_console_output(number_of_reports=6000) for ln in rep.split("\n")]
out["console_lines"] = sorted(ln for ln in console if ln.startswith("line "))
exported = t.export_task()
out["exported"] = [exported["name"], exported["project_name"], exported["status"]]
out["last_iteration"] = t.get_last_iteration()
out["apiclient_models"] = [m.name for m in APIClient().models.get_all(task=[task_id])]
print("RESULT " + json.dumps(out))
"""

DATASETS = r"""
import hashlib, json, os, pathlib, random
from clearml import Dataset

def digest(folder):
    return {{str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(pathlib.Path(folder).rglob("*")) if p.is_file()}}

rnd = random.Random(7)
root = pathlib.Path("data"); (root / "sub").mkdir(parents=True)
for i in range(20):
    (root / ("sub" if i % 3 else "") / f"f{{i:02d}}.bin").write_bytes(rnd.randbytes(rnd.randint(10, 60_000)))
parent_digest = digest(root)
parent = Dataset.create(dataset_name="twover", dataset_project="rt_ds", dataset_version="1.0.0")
parent.add_files(str(root)); parent.upload(); parent.finalize(); parent.publish()

(root / "f00.bin").write_bytes(b"modified parent file")
(root / "sub" / "f01.bin").write_bytes(rnd.randbytes(5000))
(root / "sub" / "added.bin").write_bytes(rnd.randbytes(7000))
(root / "sub" / "f02.bin").unlink()
child_digest = digest(root)
child = Dataset.create(dataset_name="twover", dataset_project="rt_ds", dataset_version="2.0.0",
                       parent_datasets=[parent.id])
child.sync_folder(str(root)); child.upload(); child.finalize()

got_parent = Dataset.get(dataset_name="twover", dataset_project="rt_ds", dataset_version="1.0.0")
got_child = Dataset.get(dataset_name="twover", dataset_project="rt_ds")
print("RESULT " + json.dumps({{
    "parent": parent.id, "child": child.id, "got_parent": got_parent.id, "got_child": got_child.id,
    "graph": got_child.get_dependency_graph(),
    "parent_digest": parent_digest, "child_digest": child_digest,
    "parent_copy": digest(got_parent.get_local_copy()), "child_copy": digest(got_child.get_local_copy()),
    "listed": sorted((d["version"], d["id"]) for d in Dataset.list_datasets(dataset_project="rt_ds")),
}}))
"""


def expected_train(i: int) -> float:
    return math.sin(i * 0.001) * 3.7 + i / 7


def result_of(proc) -> dict:
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LocalServer(tmp_path_factory.mktemp("sdk_server"), api_port=0, files_port=0)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def env(server, tmp_path_factory):
    return sdk_env(server.info, tmp_path_factory.mktemp("sdk_home"))


@pytest.fixture(scope="module")
def written(server, env, tmp_path_factory) -> dict:
    code = WRITER.format(n_scalars=N_SCALARS, n_val=N_VAL, n_log=N_LOG, image_iters=IMAGE_ITERS)
    return result_of(run_sdk_script(code, env, timeout=150, cwd=tmp_path_factory.mktemp("writer")))


@pytest.fixture(scope="module")
def api(server) -> RawApi:
    return RawApi(server.info)


def test_sdk_reads_back_everything(written, env, tmp_path):
    code = READER.format(task=written["task"], n_scalars=N_SCALARS)
    out = result_of(run_sdk_script(code, env, timeout=90, cwd=tmp_path))
    assert out["status"] == "completed"
    assert out["train_ok"]
    assert out["val_len"] == N_VAL
    assert out["art_sha"] == written["art_sha"]
    assert out["weights_sha"] == written["weights_sha"]
    assert out["model_name"] == out["model_by_id"] == "bulk-model"
    assert out["apiclient_models"] == ["bulk-model"]
    assert out["debug_samples"] >= 1
    assert out["plots"] == IMAGE_ITERS
    assert out["console_lines"] == sorted(expected_lines())
    assert out["exported"] == ["bulk", "roundtrip", "completed"]
    assert out["last_iteration"] == N_SCALARS - 1


def test_scalar_metrics_iter_raw_pages_every_point(written, api):
    series: dict[str, list] = {}
    scroll, calls, total = None, 0, None
    while True:
        body = {"task": written["task"], "metric": {"metric": "loss"}, "batch_size": 1500, "count_total": True}
        if scroll:
            body = {"task": written["task"], "metric": {"metric": "loss"}, "scroll_id": scroll}
        data = api.call("events.scalar_metrics_iter_raw", **body)
        total = data["total"] if total is None else total
        calls += 1
        if not data["returned"]:
            break
        for variant, xy in data["variants"].items():
            series.setdefault(variant, []).extend(zip(xy["iter"], xy["y"]))
        scroll = data["scroll_id"]
    assert total == N_SCALARS + N_VAL
    assert calls > (N_SCALARS + N_VAL) // 1500
    assert series["train"] == [(i, expected_train(i)) for i in range(N_SCALARS)]
    assert series["val"] == [(i * 5, 1 / (i + 3)) for i in range(N_VAL)]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_get_task_events_scrolls_every_scalar_once(written, api, order):
    got, scroll = [], None
    while True:
        body = {"task": written["task"], "event_type": "training_stats_scalar", "batch_size": 997,
                "order": order, "count_total": True, "metrics": [{"metric": "loss"}]}
        if scroll:
            body["scroll_id"] = scroll
        data = api.call("events.get_task_events", **body)
        if not data["events"]:
            break
        assert data["total"] == N_SCALARS + N_VAL
        got += data["events"]
        scroll = data["scroll_id"]
    keys = [(e["metric"], e["variant"], e["iter"]) for e in got]
    assert len(keys) == len(set(keys))
    iters = [e["iter"] for e in got]
    assert iters == sorted(iters, reverse=order == "desc")
    train = sorted((e["iter"], e["value"]) for e in got if e["variant"] == "train")
    assert train == [(i, expected_train(i)) for i in range(N_SCALARS)]
    assert sorted((e["iter"], e["value"]) for e in got if e["variant"] == "val") == \
        [(i * 5, 1 / (i + 3)) for i in range(N_VAL)]


def _our_lines(events: list[dict]) -> list[str]:
    return [line for e in events for line in e.get("msg", "").split("\n") if line.startswith("line ")]


def expected_lines() -> list[str]:
    return [f"line {i:05d} \u00e4\u00df\u2713 " + "x" * (i % 40) for i in range(N_LOG)]


@pytest.mark.parametrize("earlier", [True, False])
def test_get_task_log_pages_every_line_once(written, api, earlier):
    events, from_ts = [], None
    total = None
    while True:
        body = {"task": written["task"], "batch_size": 333, "navigate_earlier": earlier}
        if from_ts is not None:
            body["from_timestamp"] = from_ts
        data = api.call("events.get_task_log", **body)
        total = data["total"]
        if not data["events"]:
            break
        page = data["events"]
        events += page
        from_ts = page[-1]["timestamp"]
    if earlier:
        events.reverse()
    assert len(events) == total >= N_LOG
    # sorted: the SDK's own timestamps do not follow the report order
    assert sorted(_our_lines(events)) == sorted(expected_lines())
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)


def test_get_task_log_same_timestamp_across_page_boundary(server, api):
    task = api.call("tasks.create", name="same-ts", type="training")["id"]
    ts = 1_700_000_000_000
    events = [{"type": "log", "task": task, "timestamp": ts + (i // 250), "level": "info", "worker": "w",
               "msg": f"m{i:04d}"} for i in range(1000)]
    assert api.add_batch(events)["added"] == 1000
    for earlier in (True, False):
        got, from_ts = [], None
        while True:
            body = {"task": task, "batch_size": 100, "navigate_earlier": earlier}
            if from_ts is not None:
                body["from_timestamp"] = from_ts
            page = api.call("events.get_task_log", **body)["events"]
            if not page:
                break
            assert len(page) >= 250  # a page never splits a timestamp
            got += page
            from_ts = page[-1]["timestamp"]
        msgs = sorted(e["msg"] for e in got)
        assert msgs == [f"m{i:04d}" for i in range(1000)]


def test_download_task_log_has_every_line(written, server, api):
    resp = api.session.get(f"{server.info.api_host}/v2.23/events.download_task_log",
                           json={"task": written["task"]}, timeout=60)
    assert resp.status_code == 200
    lines = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
    assert sorted(_our_lines(lines)) == sorted(expected_lines())
    assert [x["asctime"] for x in lines] == sorted(x["asctime"] for x in lines)
    text = api.session.post(f"{server.info.api_host}/v2.23/events.download_task_log",
                            json={"task": written["task"], "line_type": "text", "line_format": "{msg}"},
                            timeout=60).text
    assert sorted(x for x in text.split("\n") if x.startswith("line ")) == sorted(expected_lines())


def test_debug_images_over_all_iterations(written, api):
    seen, scroll = [], None
    while True:
        body = {"metrics": [{"task": written["task"], "metric": "img"}], "iters": 2}
        if scroll:
            body["scroll_id"] = scroll
        data = api.call("events.debug_images", **body)
        its = data["metrics"][0]["iterations"]
        if not its:
            break
        seen += its
        scroll = data["scroll_id"]
    assert [it["iter"] for it in seen] == list(range(IMAGE_ITERS))[::-1]
    for it in seen:
        assert sorted(e["variant"] for e in it["events"]) == ["a", "b"]
        for ev in it["events"]:
            resp = api.file(ev["url"])
            assert resp.status_code == 200
            assert int(resp.headers["Content-Length"]) == len(resp.content) > 0


def test_get_task_plots_all_iterations(written, api):
    latest = api.call("events.get_task_plots", task=written["task"], iters=1)["plots"]
    assert [p["iter"] for p in latest if p["metric"] == "curve"] == [IMAGE_ITERS - 1]
    every = api.call("events.get_task_plots", task=written["task"], iters=IMAGE_ITERS)["plots"]
    curves = sorted((p["iter"], json.loads(p["plot_str"])["data"][0]["y"]) for p in every if p["metric"] == "curve")
    assert curves == [(it, [it * 2]) for it in range(IMAGE_ITERS)]


def test_models_get_all_and_file_bytes(written, api):
    models = api.call("models.get_all", task=[written["task"]], only_fields=["id", "name", "uri", "ready"])["models"]
    assert [m["name"] for m in models] == ["bulk-model"]
    resp = api.file(models[0]["uri"])
    assert resp.status_code == 200 and int(resp.headers["Content-Length"]) == 300_000
    assert hashlib.sha256(resp.content).hexdigest() == written["weights_sha"]
    task = api.call("tasks.get_by_id", task=written["task"])["task"]
    blob = next(a for a in task["execution"]["artifacts"] if a["key"] == "blob")
    resp = api.file(blob["uri"])
    assert int(resp.headers["Content-Length"]) == blob["content_size"] == 200_000
    assert hashlib.sha256(resp.content).hexdigest() == written["art_sha"]


def test_two_version_dataset_child_stores_only_the_delta(server, env, api, tmp_path):
    out = result_of(run_sdk_script(DATASETS.format(), env, timeout=120, cwd=tmp_path))
    assert out["got_parent"] == out["parent"] and out["got_child"] == out["child"]
    assert out["graph"] == {out["parent"]: [], out["child"]: [out["parent"]]}
    assert [v for v, _ in out["listed"]] == ["1.0.0", "2.0.0"]
    assert out["parent_copy"] == out["parent_digest"] and len(out["parent_copy"]) == 20
    assert out["child_copy"] == out["child_digest"] and "sub/f02.bin" not in out["child_copy"]

    def zipped(task_id: str) -> set[str]:
        task = api.call("tasks.get_by_id", task=task_id)["task"]
        names = set()
        for art in task["execution"]["artifacts"]:
            if art["key"].startswith("data"):
                resp = api.file(art["uri"])
                assert resp.status_code == 200
                names |= set(zipfile.ZipFile(io.BytesIO(resp.content)).namelist())
        return names

    assert zipped(out["parent"]) == set(out["parent_digest"])
    assert zipped(out["child"]) == {"f00.bin", "sub/f01.bin", "sub/added.bin"}
