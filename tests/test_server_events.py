"""``events.*`` of the local server: the real SDK's reports read back exactly by paging the raw endpoints.

One SDK process reports 10,000+ scalar points (three series and a single value), 5,000 console lines,
debug images and plots; the tests page them back through every read endpoint and compare with what was
written. Edge cases (shared timestamps across pages, both directions, empty/unknown tasks, NaN/inf)
use raw HTTP as the SDK sends it.
"""

from __future__ import annotations

import io
import json
import math
import struct
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_sdk_script, sdk_env  # noqa: E402
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import LocalServer  # noqa: E402

N_TRAIN, N_VAL, N_LR, N_LOG, IMG_ITERS, PLOT_ITERS = 6_000, 2_500, 1_600, 5_000, 4, 3

WRITER = r"""
import json, math
import numpy as np
from clearml import Task

task = Task.init(project_name="events", task_name="bulk")
log = task.get_logger()
for i in range({n_train}):
    log.report_scalar("loss", "train", value=math.cos(i / 97) + i / 1000, iteration=i)
for i in range({n_val}):
    log.report_scalar("loss", "val", value=1 / (i + 2), iteration=i * 3)
for i in range({n_lr}):
    log.report_scalar("lr", "lr", value=0.1 * 0.999 ** i, iteration=i)
log.report_single_value("best_acc", 0.8125)
for i in range({n_log}):
    log.report_text(f"row {{i:05d}} \u00e9\u2603 " + "z" * (i % 31), print_console=False, level=20 if i % 2 else 30)
for it in range({img_iters}):
    for variant in ("left", "right"):
        log.report_image("sample", variant, iteration=it,
                         image=np.full((6, 5, 3), it * 20 + (variant == "right"), dtype=np.uint8))
for it in range({plot_iters}):
    log.report_plotly("curve", "c", iteration=it, figure={{"data": [{{"x": [it, it + 1], "y": [it * 3, 1]}}]}})
task.flush(wait_for_uploads=True)
task.close()
print("RESULT " + json.dumps({{"task": task.id}}))
"""

READER = r"""
import json
from clearml import Task
t = Task.get_task(task_id="{task}")
hist = t.get_reported_scalars()
tail = t.get_reported_console_output(number_of_reports=1)
print("RESULT " + json.dumps({{"train_x": hist["loss"]["train"]["x"], "train_y": hist["loss"]["train"]["y"],
                              "metrics": sorted(hist), "tail": tail}}))
"""


def expected_series() -> dict[tuple[str, str], list[tuple[int, float]]]:
    return {("loss", "train"): [(i, math.cos(i / 97) + i / 1000) for i in range(N_TRAIN)],
            ("loss", "val"): [(i * 3, 1 / (i + 2)) for i in range(N_VAL)],
            ("lr", "lr"): [(i, 0.1 * 0.999 ** i) for i in range(N_LR)]}


def expected_lines() -> list[str]:
    return [f"row {i:05d} \u00e9\u2603 " + "z" * (i % 31) for i in range(N_LOG)]


def result_of(proc) -> dict:
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LocalServer(tmp_path_factory.mktemp("events_server"), api_port=0, files_port=0)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def env(server, tmp_path_factory):
    return sdk_env(server.info, tmp_path_factory.mktemp("events_home"))


@pytest.fixture(scope="module")
def api(server) -> RawApi:
    return RawApi(server.info)


@pytest.fixture(scope="module")
def task_id(env, tmp_path_factory) -> str:
    code = WRITER.format(n_train=N_TRAIN, n_val=N_VAL, n_lr=N_LR, n_log=N_LOG, img_iters=IMG_ITERS,
                         plot_iters=PLOT_ITERS)
    return result_of(run_sdk_script(code, env, timeout=150, cwd=tmp_path_factory.mktemp("writer")))["task"]


def _new_task(api: RawApi, name: str) -> str:
    return api.call("tasks.create", name=name, type="training")["id"]


def _log_pages(api: RawApi, task: str, batch: int, earlier: bool, order: str | None = None) -> list[list[dict]]:
    pages, from_ts = [], None
    while True:
        body = {"task": task, "batch_size": batch, "navigate_earlier": earlier}
        if order:
            body["order"] = order
        if from_ts is not None:
            body["from_timestamp"] = from_ts
        page = api.call("events.get_task_log", **body)["events"]
        if not page:
            return pages
        pages.append(page)
        stamps = [e["timestamp"] for e in page]
        from_ts = min(stamps) if earlier else max(stamps)


# -- the SDK's reports, read back exactly ------------------------------------------------------------------
def test_scalar_metrics_iter_raw_pages_every_point_exactly(task_id, api):
    series: dict[tuple[str, str], list] = {}
    for metric in ("loss", "lr"):
        scroll, total, calls = None, None, 0
        while True:
            body = {"task": task_id, "metric": {"metric": metric}, "key": "iter"}
            body.update({"scroll_id": scroll} if scroll else {"batch_size": 1500, "count_total": True})
            data = api.call("events.scalar_metrics_iter_raw", **body)
            total = data["total"] if total is None else total
            calls += 1
            if not data["returned"]:
                break
            assert data["returned"] == sum(len(v["y"]) for v in data["variants"].values())
            for variant, xy in data["variants"].items():
                assert len(xy["iter"]) == len(xy["y"])
                series.setdefault((metric, variant), []).extend(zip(xy["iter"], xy["y"]))
            scroll = data["scroll_id"]
        assert total == sum(len(v) for k, v in expected_series().items() if k[0] == metric)
        assert calls > total // 1500  # several pages, none capped
    assert series == expected_series()


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_get_task_events_scrolls_every_scalar_once(task_id, api, order):
    got, scroll, sizes = [], None, []
    while True:
        body = {"task": task_id, "scroll_id": scroll} if scroll else {
            "task": task_id, "event_type": "training_stats_scalar", "batch_size": 777, "order": order}
        data = api.call("events.get_task_events", **body)
        if not data["events"]:
            break
        assert data["total"] == N_TRAIN + N_VAL + N_LR + 1
        assert data["returned"] == len(data["events"])
        sizes.append(data["returned"])
        got += data["events"]
        scroll = data["scroll_id"]
    assert len(got) == N_TRAIN + N_VAL + N_LR + 1
    # batch_size plus the rest of the last iteration; a continuation without batch_size takes the real default 500
    assert sizes[0] >= 777 and min(sizes[1:-1]) >= 500 and len(sizes) > 10
    iters = [e["iter"] for e in got]
    assert iters == sorted(iters, reverse=order == "desc")  # a page never splits an iteration
    by_series: dict[tuple[str, str], list] = {}
    for e in sorted(got, key=lambda e: e["iter"]):
        by_series.setdefault((e["metric"], e["variant"]), []).append((e["iter"], e["value"]))
    assert by_series.pop(("Summary", "best_acc")) == [(-2 ** 31, 0.8125)]
    assert by_series == expected_series()
    assert "method" not in got[0] and got[0]["task"] == task_id


def test_get_task_log_pages_every_line_in_order(task_id, api):
    forward = [e for page in _log_pages(api, task_id, 333, earlier=False) for e in page]
    backward = [e for page in _log_pages(api, task_id, 333, earlier=True, order="asc")[::-1] for e in page]
    # events of one timestamp come in index order whatever the direction (Elasticsearch's tie-break)
    assert sorted((e["timestamp"], e["msg"]) for e in forward) == sorted((e["timestamp"], e["msg"]) for e in backward)
    assert [e["timestamp"] for e in forward] == [e["timestamp"] for e in backward]
    assert [e["timestamp"] for e in forward] == sorted(e["timestamp"] for e in forward)
    total = api.call("events.get_task_log", task=task_id, batch_size=1)["total"]
    assert len(forward) == total
    # the SDK merges same-level lines of one second into one event: split them back
    lines = [ln for e in forward for ln in e["msg"].split("\n") if ln.startswith("row ")]
    assert sorted(lines) == expected_lines()

    resp = api.session.post(f"{api.info.api_host}/v2.23/events.download_task_log", json={"task": task_id},
                            timeout=60)
    assert resp.status_code == 200 and "attachment" in resp.headers["content-disposition"]
    downloaded = [json.loads(x) for x in resp.text.splitlines()]
    assert [d["msg"] for d in downloaded] == [e["msg"] for e in forward]
    assert [d["asctime"] for d in downloaded] == [e["timestamp"] for e in forward]
    text = api.session.post(f"{api.info.api_host}/v2.23/events.download_task_log",
                            json={"task": task_id, "line_type": "text", "line_format": "{level}|{msg}"}, timeout=60)
    assert text.text.splitlines()[0] == f"{forward[0]['level']}|{forward[0]['msg'].splitlines()[0]}"
    bad = api.session.post(f"{api.info.api_host}/v2.23/events.download_task_log",
                           json={"task": task_id, "line_type": "text", "line_format": "{nope}"}, timeout=60)
    assert bad.status_code == 400 and bad.json()["meta"]["result_subcode"] == 16


def test_debug_images_and_plots_over_all_iterations(task_id, api):
    seen, scroll = [], None
    while True:
        body = {"metrics": [{"task": task_id, "metric": "sample"}], "iters": 3}
        if scroll:
            body["scroll_id"] = scroll
        data = api.call("events.debug_images", **body)
        assert [m["task"] for m in data["metrics"]] == [task_id]
        its = data["metrics"][0]["iterations"]
        if not its:
            break
        seen += its
        scroll = data["scroll_id"]
    assert [it["iter"] for it in seen] == list(range(IMG_ITERS))[::-1]
    for it in seen:
        assert [e["variant"] for e in it["events"]] == ["left", "right"]
        for ev in it["events"]:
            resp = api.file(ev["url"])
            assert resp.status_code == 200 and int(resp.headers["Content-Length"]) == len(resp.content)
            pixels = Image.open(io.BytesIO(resp.content)).convert("RGB").tobytes()
            shade = it["iter"] * 20 + (ev["variant"] == "right")
            assert Image.open(io.BytesIO(resp.content)).size == (5, 6)
            assert all(abs(c - shade) <= 2 for c in pixels)  # JPEG of one flat colour

    latest = api.call("events.get_task_plots", task=task_id)
    assert [p["iter"] for p in latest["plots"]] == [PLOT_ITERS - 1] and latest["scroll_id"] is None
    every = api.call("events.get_task_plots", task=task_id, iters=100)["plots"]
    assert [(p["iter"], json.loads(p["plot_str"])["data"][0]["y"]) for p in every] == \
        [(it, [it * 3, 1]) for it in range(PLOT_ITERS)][::-1]
    scrolled, scroll = [], None
    while True:
        data = api.call("events.plots", metrics=[{"task": task_id}], iters=1,
                        **({"scroll_id": scroll} if scroll else {}))
        if not data["metrics"][0]["iterations"]:
            break
        scrolled += [it["iter"] for it in data["metrics"][0]["iterations"]]
        scroll = data["scroll_id"]
    assert scrolled == list(range(PLOT_ITERS))[::-1]


def test_task_statistics_and_summaries(task_id, api):
    task = api.call("tasks.get_by_id", task=task_id)["task"]
    assert task["last_iteration"] == max(N_TRAIN - 1, (N_VAL - 1) * 3)
    stats = {(v["metric"], v["variant"]): v for m in task["last_metrics"].values() for v in m.values()}
    train = stats[("loss", "train")]
    values = [y for _, y in expected_series()[("loss", "train")]]
    assert train["value"] == values[-1] and train["count"] == N_TRAIN
    assert train["min_value"] == min(values) and train["max_value"] == max(values)
    assert train["max_value_iteration"] == values.index(max(values))
    assert train["first_value"] == values[0] and train["first_value_iteration"] == 0
    assert api.call("events.get_scalar_metrics_and_variants", task=task_id)["metrics"] == \
        {"Summary": ["best_acc"], "loss": ["train", "val"], "lr": ["lr"]}
    single = api.call("events.get_task_single_value_metrics", tasks=[task_id])["tasks"]
    assert single[0]["values"][0]["value"] == 0.8125
    assert api.call("events.get_task_metrics", tasks=[task_id], event_type="training_stats_scalar")["metrics"] == \
        [{"task": task_id, "metrics": ["loss", "lr"]}]


def test_sdk_histogram_and_console_are_truncated_views(task_id, env, tmp_path, api):
    out = result_of(run_sdk_script(READER.format(task=task_id), env, timeout=90, cwd=tmp_path))
    exact = [y for _, y in expected_series()[("loss", "train")]]
    # 6,000 points in at most 2,000 buckets of 3 iterations, each the mean of 32-bit values: not the data
    assert len(out["train_x"]) == 2000 and out["train_x"][:2] == [0, 3]
    f32 = [struct.unpack("f", struct.pack("f", v))[0] for v in exact[:3]]
    assert out["train_y"][0] == pytest.approx(sum(f32) / 3, abs=0, rel=1e-15) and out["train_y"][0] != exact[0]
    assert out["metrics"] == ["loss", "lr"]  # the single value is not in the histogram
    # the request the SDK sends: the last timestamp may hold several lines, and "asc" orders them oldest first
    last = api.call("events.get_task_log", task=task_id, batch_size=1, order="asc", navigate_earlier=True)["events"]
    assert out["tail"] == [e["msg"] for e in last]
    assert 1 <= len(out["tail"]) < N_LOG // 10


# -- paging edge cases -------------------------------------------------------------------------------------
def test_log_pages_never_split_a_timestamp_in_either_direction(api):
    task = _new_task(api, "same-ts")
    ts = 1_700_000_000_000
    events = [{"type": "log", "task": task, "timestamp": ts + (i // 120) * 5, "level": "info", "worker": "w",
               "msg": f"m{i:04d}", "method": "get"} for i in range(600)]
    assert api.add_batch(events) == {"added": 600, "errors": 0, "errors_info": {}}
    for earlier, order in ((False, None), (True, None), (True, "asc"), (False, "desc")):
        pages = _log_pages(api, task, 50, earlier, order)
        assert [len(p) for p in pages] == [120] * 5  # 50 asked, the whole boundary timestamp returned
        msgs = sorted(e["msg"] for p in pages for e in p)
        assert msgs == [f"m{i:04d}" for i in range(600)]
        page_ts = [p[0]["timestamp"] for p in pages]
        assert page_ts == sorted(page_ts, reverse=earlier)
        stamps = [e["timestamp"] for e in pages[0]]
        want_desc = (earlier and order != "asc") or order == "desc"
        assert stamps == sorted(stamps, reverse=want_desc)
    first = api.call("events.get_task_log", task=task, batch_size=1)  # default: the latest, navigating earlier
    assert first["total"] == 600 and {e["timestamp"] for e in first["events"]} == {ts + 20}
    assert "method" not in first["events"][0]


def test_iteration_zero_boundary_and_huge_iteration_groups_scroll_to_the_end(api):
    """Past a page ending at iteration 0 the scroll goes on; of more than 10,000 events on one iteration the
    real server returns 10,000 (the rest of the last key value is one 10,000-hit search) and moves on."""
    task = _new_task(api, "iter0")
    events = [{"type": "training_stats_scalar", "task": task, "iter": i // 12_000, "metric": "m",
               "variant": f"v{i % 12_000:05d}", "value": i, "timestamp": 1} for i in range(24_000)]
    for start in range(0, len(events), 8000):
        assert api.add_batch(events[start:start + 8000])["added"] == 8000
    got, scroll = [], None
    for _ in range(20):
        body = {"task": task, "scroll_id": scroll} if scroll else {"task": task, "batch_size": 5000}
        data = api.call("events.get_task_events", **body)
        if not data["events"]:
            break
        got.extend(data["events"])
        scroll = data["scroll_id"]
    assert len(got) == 20_000 and data["total"] == 24_000
    assert [sum(1 for e in got if e["iter"] == it) for it in (0, 1)] == [10_000, 10_000]
    assert len({(e["iter"], e["variant"]) for e in got}) == 20_000


def test_empty_and_unknown_tasks(api):
    task = _new_task(api, "empty")
    assert api.call("events.get_task_log", task=task) == {"events": [], "returned": 0, "total": 0}
    data = api.call("events.get_task_events", task=task)
    assert (data["events"], data["total"]) == ([], 0)
    assert api.call("events.get_task_events", task=task, scroll_id=data["scroll_id"])["events"] == []
    raw = api.call("events.scalar_metrics_iter_raw", task=task, metric={"metric": "x"}, count_total=True)
    assert (raw["variants"], raw["total"], raw["returned"]) == ({}, 0, 0)
    assert api.call("events.scalar_metrics_iter_histogram", task=task) == {}
    assert api.call("events.get_task_plots", task=task)["plots"] == []
    assert api.call("events.debug_images", metrics=[{"task": task}])["metrics"] == [{"task": task, "iterations": []}]
    for endpoint, body in (("events.get_task_log", {"task": "nope"}), ("events.get_task_events", {"task": "nope"}),
                           ("events.scalar_metrics_iter_raw", {"task": "nope", "metric": {"metric": "x"}}),
                           ("events.scalar_metrics_iter_histogram", {"task": "nope"}),
                           ("events.debug_images", {"metrics": [{"task": "nope"}]})):
        assert api.error(endpoint, **body)[:2] == (400, 101), endpoint
    resp = api.session.post(f"{api.info.api_host}/v2.23/events.add_batch",
                            data=json.dumps({"type": "log", "task": "nope", "msg": "x"}),
                            headers={"Content-Type": "application/json-lines"}, timeout=30)
    meta = resp.json()["meta"]
    assert (resp.status_code, meta["result_subcode"]) == (400, 131) and "Invalid task id nope" in meta["result_msg"]
    assert api.error("events.get_task_events", task=task, scroll_id="not-a-scroll")[:2] == (400, 1104)


def test_nan_and_inf_scalars_are_refused_like_elasticsearch(api):
    task = _new_task(api, "nan")
    good = [{"type": "training_stats_scalar", "task": task, "iter": i, "metric": "m", "variant": "v", "value": i}
            for i in range(3)]
    for bad_value in ("NaN", "Infinity", "-Infinity", "1e39"):
        body = "\n".join([json.dumps(e) for e in good] + [
            f'{{"type":"training_stats_scalar","task":"{task}","iter":9,"metric":"m","variant":"bad",'
            f'"value":{bad_value}}}'])
        resp = api.session.post(f"{api.info.api_host}/v2.23/events.add_batch", data=body,
                                headers={"Content-Type": "application/json-lines"}, timeout=30)
        assert resp.status_code == 500 and resp.json()["meta"]["result_subcode"] == 100
        assert "supports only finite values" in resp.json()["meta"]["result_msg"]
    # the rest of the failing chunk is indexed (as Elasticsearch does); reads stay valid JSON
    raw = api.call("events.scalar_metrics_iter_raw", task=task, metric={"metric": "m"})
    assert raw["variants"] == {"v": {"y": [0, 1, 2], "iter": [0, 1, 2]}}
    assert api.call("events.scalar_metrics_iter_histogram", task=task)["m"]["v"]["y"] == [0, 1, 2]
    ok = api.add_batch([{"type": "training_stats_scalar", "task": task, "iter": 5, "metric": "m", "variant": "v",
                         "value": 1e-3}])
    assert ok["added"] == 1


def test_events_read_from_stored_json_match_decoded_events(api, monkeypatch):
    """Scalar columns read straight from the stored JSON (when SQLite gives the text back verbatim) are
    byte for byte what decoding every event gives, for odd values, both keys, and a paged scroll."""
    import sqlite3

    from clearml_assets.local_server.store import event_rows

    task = _new_task(api, "verbatim")
    values = [0.1234567890123456789, 1e-07, 3, 10 ** 30, -0.0, "2.5", None, 1e+20, 5e-324]
    api.add_batch([{"type": "training_stats_scalar", "task": task, "iter": i, "metric": "m",
                    "variant": f"v{i % 2}\u00e9", "value": v, "timestamp": 1000 + i} for i, v in enumerate(values)])
    api.add_batch([{"type": "training_stats_scalar", "task": task, "metric": "m", "variant": "no_iter",
                    "value": 7}])
    requests_ = [{"key": "timestamp"}, {"key": "iso_time", "batch_size": 4}]

    def read_all() -> list[bytes]:
        out = []
        for extra in requests_:
            body, scroll = {"task": task, "metric": {"metric": "m"}, "count_total": True, **extra}, None
            while True:
                resp = api.raw("events.scalar_metrics_iter_raw", {**body, "scroll_id": scroll} if scroll else body)
                data = resp.json()["data"]
                out.append(json.dumps(data["variants"]).encode())
                if not data["returned"]:
                    break
                scroll = data["scroll_id"]
        return out

    fast = read_all()
    assert event_rows._VERBATIM[sqlite3.sqlite_version] or sqlite3.sqlite_version_info < (3, 38)
    monkeypatch.setitem(event_rows._VERBATIM, sqlite3.sqlite_version, False)
    assert read_all() == fast
    by_time = json.loads(fast[0])
    assert repr(by_time["v0\u00e9"]["y"]) == repr([0.1234567890123456789, 3, -0.0, None, 5e-324])
    assert by_time["v1\u00e9"] == {"y": [1e-07, 10 ** 30, "2.5", 1e+20], "timestamp": [1001, 1003, 1005, 1007]}
    assert by_time["no_iter"]["y"] == [7]
    # by iteration, a page ending on the event without an iteration is the real server's 500 (events[-1]["iter"])
    assert api.error("events.scalar_metrics_iter_raw", task=task, metric={"metric": "m"})[:3] == (500, 0, "'iter'")
