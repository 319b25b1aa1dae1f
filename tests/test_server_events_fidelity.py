"""``events.*`` limits and quirks of the real clearml-server (v1.9.2, API 2.23) reproduced by the local server.

Each test pins one behaviour read from clearml-server's ``services/events.py`` and ``bll/event``: what a client
meets on a real server (500 for log events by iteration, compressed plots, the 10,000 log total, 10,000 events
of one iteration, server-side scroll states, model events) and the switchable scroll-restart bug.
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import LocalServer  # noqa: E402
QUIRKS_ENV, SCROLL_RESTART_AT_ITER0 = "CLEARML_LOCAL_SERVER_QUIRKS", "scroll_restart_at_iter0"  # documented switch
BIG = 100_000  # services.events.plot_compression_threshold


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    srv = LocalServer(tmp_path_factory.mktemp("events_fidelity"), api_port=0, files_port=0)
    srv.start()
    api = RawApi(srv.info)
    api.server = srv
    yield api
    srv.stop()


def _task(api: RawApi, name: str = "fidelity") -> str:
    return api.call("tasks.create", name=name, type="training")["id"]


def _plot(task: str, it: int, metric: str, plot_str: str, variant: str = "v") -> dict:
    return {"type": "plot", "task": task, "iter": it, "metric": metric, "variant": variant, "plot_str": plot_str,
            "timestamp": 1_700_000_000_000 + it}


def _log(task: str, i: int, **extra) -> dict:
    return {"type": "log", "task": task, "timestamp": 1_700_000_000_000 + i, "level": "info", "worker": "w",
            "msg": f"line {i}", **extra}


def _big_plot_str(size: int) -> str:
    head = '{"data": [{"type": "image", "source": "http://files.example/a.png"}], "pad": "'
    return head + "x" * (size - len(head) - 2) + '"}'


# -- log events carry no iteration ------------------------------------------------------------------------
def test_get_task_events_of_log_events_without_iter_is_the_real_500(api):
    task = _task(api)
    empty = api.call("events.get_task_events", task=task, event_type="log")
    assert (empty["events"], empty["total"]) == ([], 0)
    api.add_batch([_log(task, i) for i in range(3)])
    assert api.error("events.get_task_events", task=task, event_type="log", batch_size=1) == (500, 0, "'iter'")
    # every event type together: the log events sort after every iteration, the page reaching them fails
    api.add_batch([{"type": "training_stats_scalar", "task": task, "iter": i, "metric": "m", "variant": "v",
                    "value": i} for i in range(2)])
    first = api.call("events.get_task_events", task=task, batch_size=2)
    assert [e["iter"] for e in first["events"]] == [0, 1] and first["total"] == 5
    assert api.error("events.get_task_events", task=task, scroll_id=first["scroll_id"])[:2] == (500, 0)
    # log events sent with an iteration (as clearml-server's own tests do) page normally
    other = _task(api)
    api.add_batch([_log(other, i, iter=i) for i in range(3)])
    data = api.call("events.get_task_events", task=other, event_type="log")
    assert [e["iter"] for e in data["events"]] == [0, 1, 2]


# -- compressed plots ----------------------------------------------------------------------------------------
def test_plots_from_100000_characters_are_stored_and_returned_compressed(api):
    task = _task(api)
    small, big = _big_plot_str(BIG - 1), _big_plot_str(BIG)
    api.add_batch([_plot(task, 0, "small", small), _plot(task, 0, "big", big)])
    events = {e["metric"]: e for e in api.call("events.get_task_events", task=task, event_type="plot")["events"]}
    assert events["small"]["plot_str"] == small and "plot_data" not in events["small"]
    assert "plot_str" not in events["big"] and events["big"]["plot_len"] == BIG
    assert "\n" in events["big"]["plot_data"]  # base64.encodebytes lines, as the real server writes them
    assert zlib.decompress(base64.b64decode(events["big"]["plot_data"])).decode() == big
    assert events["big"]["source_urls"] == ["http://files.example/a.png"]
    # every other plot read decompresses
    plots = {p["metric"]: p for p in api.call("events.get_task_plots", task=task)["plots"]}
    assert plots["big"]["plot_str"] == big and "plot_data" not in plots["big"]
    its = api.call("events.plots", metrics=[{"task": task}])["metrics"][0]["iterations"]
    assert {e["metric"]: e["plot_str"] for e in its[0]["events"]}["big"] == big
    sample = api.call("events.get_plot_sample", task=task, metric="big")
    assert sample["events"][0]["plot_str"] == big
    multi = api.call("events.get_multi_task_plots", tasks=[task])["plots"]
    assert multi["big"]["v"][task]["0"]["plots"][0]["plot_str"] == big


# -- totals and page limits ----------------------------------------------------------------------------------
def test_get_task_log_total_is_capped_at_10000(api):
    task = _task(api)
    api.add_batch([_log(task, i) for i in range(10_005)])
    first = api.call("events.get_task_log", task=task, batch_size=10)
    assert first["total"] == 10_000 and first["returned"] == 10
    got, from_ts = 0, None
    while True:
        page = api.call("events.get_task_log", task=task, batch_size=5000, navigate_earlier=False,
                        **({"from_timestamp": from_ts} if from_ts else {}))["events"]
        if not page:
            break
        got += len(page)
        from_ts = page[-1]["timestamp"]
    assert got == 10_005  # every line can be paged; only the count stops at 10,000
    status, subcode, msg = api.error("events.get_task_log", task=task, batch_size=10_001)
    assert (status, subcode) == (500, 100) and "Result window is too large" in msg


def test_get_task_events_continuation_needs_the_task_and_a_real_scroll_id(api):
    task = _task(api)
    api.add_batch([{"type": "training_stats_scalar", "task": task, "iter": i, "metric": "m", "variant": "v",
                    "value": i} for i in range(5)])
    data = api.call("events.get_task_events", task=task, batch_size=2)
    header, payload, _ = data["scroll_id"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["from_key_value"] == "1" and claims["total"] == 5  # the real JWT scroll state
    status, _, msg = api.error("events.get_task_events", scroll_id=data["scroll_id"])
    assert status == 400 and "task" in msg
    assert api.error("events.get_task_events", task=task, scroll_id="nope")[:2] == (400, 1104)


# -- the iteration 0 scroll restart (a real-server bug, behind a switch) -----------------------------------
def _pages(api: RawApi, task: str, event_type: str, pages: int, order: str = "asc") -> list[list[int]]:
    out, scroll = [], None
    for _ in range(pages):
        body = {"task": task, "event_type": event_type, "batch_size": 1, "order": order}
        data = api.call("events.get_task_events", **(body | ({"scroll_id": scroll} if scroll else {})))
        out.append([e["iter"] for e in data["events"]])
        scroll = data["scroll_id"]
    return out


def test_scroll_restart_at_iteration_0_only_when_switched_on(api, monkeypatch):
    task = _task(api)
    api.add_batch([_plot(task, it, f"m{n}", "{}") for it in (0, 1) for n in range(3)])
    monkeypatch.delenv(QUIRKS_ENV, raising=False)
    assert _pages(api, task, "plot", 3) == [[0, 0, 0], [1, 1, 1], []]
    assert _pages(api, task, "plot", 3, "desc") == [[1, 1, 1], [0, 0, 0], []]
    monkeypatch.setenv(QUIRKS_ENV, SCROLL_RESTART_AT_ITER0)
    assert _pages(api, task, "plot", 3) == [[0, 0, 0]] * 3  # duplicates, iteration 1 never reached
    assert _pages(api, task, "plot", 3, "desc") == [[1, 1, 1], [0, 0, 0], [1, 1, 1]]
    api.add_batch([{"type": "training_stats_scalar", "task": task, "iter": it, "metric": "s", "variant": "v",
                    "value": it} for it in (0, 0, 1)])
    first = api.call("events.scalar_metrics_iter_raw", task=task, metric={"metric": "s"}, batch_size=1)
    again = api.call("events.scalar_metrics_iter_raw", task=task, metric={"metric": "s"}, scroll_id=first["scroll_id"])
    assert first["variants"]["v"]["iter"] == again["variants"]["v"]["iter"] == [0]  # 2 events, one kept by id
    # the same switch as a collection on the server's store (for a LocalServer argument)
    monkeypatch.delenv(QUIRKS_ENV)
    monkeypatch.setattr(api.server.store, "quirks", {SCROLL_RESTART_AT_ITER0}, raising=False)
    assert _pages(api, task, "plot", 2) == [[0, 0, 0]] * 2
    monkeypatch.setattr(api.server.store, "quirks", set(), raising=False)
    assert _pages(api, task, "plot", 2) == [[0, 0, 0], [1, 1, 1]]


# -- plots / debug images: the scroll state lives on the server -------------------------------------------
def test_plots_scroll_state_is_kept_by_the_server(api):
    task = _task(api)
    api.add_batch([_plot(task, it, "m", f"p{it}") for it in range(4)])
    first = api.call("events.plots", metrics=[{"task": task}], iters=1)
    assert [i["iter"] for i in first["metrics"][0]["iterations"]] == [3]
    # the same scroll id twice: the state moved on the server, as in Redis
    again = [api.call("events.plots", metrics=[{"task": task}], iters=1, scroll_id=first["scroll_id"])
             for _ in range(2)]
    assert [[i["iter"] for i in a["metrics"][0]["iterations"]] for a in again] == [[2], [1]]
    assert {a["scroll_id"] for a in again} == {first["scroll_id"]}
    refreshed = api.call("events.plots", metrics=[{"task": task}], iters=1, scroll_id=first["scroll_id"],
                         refresh=True)
    assert [i["iter"] for i in refreshed["metrics"][0]["iterations"]] == [3]


def test_plot_and_debug_image_samples_navigate(api):
    task = _task(api)
    api.add_batch([_plot(task, it, m, f"{m}{it}") for it in range(2) for m in ("a", "b")])
    sample = api.call("events.get_plot_sample", task=task, metric="a")
    assert ([e["plot_str"] for e in sample["events"]], sample["min_iteration"], sample["max_iteration"]) == \
        (["a1"], 0, 1)
    prev = api.call("events.next_plot_sample", task=task, scroll_id=sample["scroll_id"])
    assert [e["plot_str"] for e in prev["events"]] == ["a0"]
    assert api.error("events.next_plot_sample", task=task, scroll_id="unknown")[:2] == (400, 1104)
    api.add_batch([{"type": "training_debug_image", "task": task, "iter": it, "metric": "img", "variant": v,
                    "url": f"http://files/{v}{it}.png"} for it in range(2) for v in ("l", "r")])
    image = api.call("events.get_debug_image_sample", task=task, metric="img", variant="l")
    assert (image["event"]["url"], image["min_iteration"], image["max_iteration"]) == ("http://files/l1.png", 0, 1)
    nxt = api.call("events.next_debug_image_sample", task=task, scroll_id=image["scroll_id"], navigate_earlier=False)
    assert nxt["event"]["url"] == "http://files/r1.png"
    back = api.call("events.next_debug_image_sample", task=task, scroll_id=image["scroll_id"], next_iteration=True)
    assert back["event"]["url"] == "http://files/r0.png"


# -- model events --------------------------------------------------------------------------------------------
def test_model_events_are_written_and_read_with_model_events(api):
    model = api.call("models.create", name="model events", uri="file:///tmp/m.pt", ready=False)["id"]
    events = [{"type": "training_stats_scalar", "model_event": True, "task": model, "iter": it, "metric": "acc",
               "variant": "top1", "value": it + 0.5} for it in range(3)]
    assert api.add_batch(events)["added"] == 3
    refused = api.add_batch_raw([{"type": "log", "model_event": True, "task": model, "msg": "x"}])
    assert (refused.status_code, refused.json()["meta"]["result_subcode"]) == (400, 131)
    hist = api.call("events.scalar_metrics_iter_histogram", task=model, model_events=True)
    # the newest release keeps every iteration (1.9.2 kept iteration 0 only: tests/test_server_newest.py)
    assert hist["acc"]["top1"]["x"] == [0, 1, 2] and hist["acc"]["top1"]["y"] == [0.5, 1.5, 2.5]
    read = api.call("events.get_task_events", task=model, model_events=True, order="asc")
    assert [(e["iter"], e["value"], e["model_event"]) for e in read["events"]] == [
        (0, 0.5, True), (1, 1.5, True), (2, 2.5, True)]
    assert api.error("events.get_task_events", task=model)[:2] == (400, 101)  # not a task
    assert api.call("events.delete_for_model", model=model)["deleted"] == 3


# -- endpoints the SDK and the web UI call -------------------------------------------------------------------
def test_vector_multi_task_and_clear_scroll_endpoints(api):
    tasks = [_task(api) for _ in range(2)]
    for t in tasks:
        api.add_batch([{"type": "training_stats_scalar", "task": t, "iter": i, "metric": "m", "variant": "v",
                        "value": i} for i in range(4)]
                      + [{"type": "training_stats_vector", "task": t, "iter": i, "metric": "vec", "variant": "v",
                          "values": [i, i + 1]} for i in range(2)])
    multi = api.call("events.multi_task_scalar_metrics_iter_histogram", tasks=tasks)["metrics"]
    assert set(multi["m"]["v"]) == set(tasks) and multi["m"]["v"][tasks[0]]["x"] == [0, 1, 2, 3]
    vec = api.call("events.vector_metrics_iter_histogram", task=tasks[0], metric="vec", variant="v")
    assert (vec["iterations"], vec["vectors"]) == ([0, 1], [[0, 1], [1, 2]])
    assert api.call("events.clear_scroll", scroll_id="FFFF") == {}
    assert api.error("events.multi_task_scalar_metrics_iter_histogram", tasks=[])[:2] == (400, 12)
