"""Archives stay complete against clearml-server's real behaviour.

The account reaches the local server through a :class:`RealServerQuirks` proxy that answers as
clearml-server v1.9.2 does (log events without ``iter`` and ``get_task_events`` refusing them, a capped log
total, compressed plots, the iteration-0 scroll restart, 500-row pages, public rows). Every count is
checked against what was seeded, so nothing passes because the local server is lenient.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from clearml_assets.archives.checks import verify_export
from seeding import DemoSpec, RawSeeder
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.packing import verify_archive
from clearml_assets.client import ClearMLClient
from clearml_assets.resource import ClearMLResource
from fault_proxy import FaultProxy, RealServerQuirks

NONE = DemoSpec(scalar_series=1, points_per_series=3, log_lines=0, artifacts=0, artifact_bytes=0, plots=0,
                debug_images=0)


@pytest.fixture
def real(clearml_server):
    quirks = RealServerQuirks()
    proxy = FaultProxy(clearml_server.info.api_host, quirks=quirks)
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    client = ClearMLClient(proxy.url, info.access_key, info.secret_key, account="real",
                           files_host=info.files_host, web_host=info.web_host)
    yield seeder, client, quirks
    proxy.close()


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_event_scroll_restart_at_iteration_0_loses_and_repeats_nothing(real, tmp_path: Path):
    seeder, client, quirks = real
    task_id = seeder.seed_task(seeder.project("real/scroll"), "real/scroll", "restart", NONE)
    now = int(time.time() * 1000)
    events = [{"type": "training_debug_image", "task": task_id, "timestamp": now + i, "iter": 0,
               "metric": "m", "variant": f"v{i}", "url": f"https://example.org/{i}.png"} for i in range(2_100)]
    events += [{"type": "training_debug_image", "task": task_id, "timestamp": now + 5000 + i, "iter": i,
                "metric": "m", "variant": "late", "url": f"https://example.org/late{i}.png"} for i in (1, 2, 3)]
    seeder.add_events(events)
    result = ClearMLTaskExporter(client, "real", tmp_path / "x").export_task(task_id)
    written = _lines(result.folder / "debug_images" / "index.jsonl")
    keys = [(e["iter"], e["variant"]) for e in written]
    assert len(keys) == len(set(keys)) == 2_103  # no duplicates, nothing lost
    assert {(1, "late"), (2, "late"), (3, "late")} <= set(keys)
    assert quirks.counts.get("scroll_restarted")
    assert any("restarted the event scroll" in i.get("warning", "") for i in result.issues)
    assert result.counts["debug_image_events"] == result.manifest["server_counts"]["debug_image_events"] == 2_103
    # public https media: external references, not failures
    assert result.manifest["status"] == "ok", result.issues
    assert result.counts["external_references"] == 2_103


def test_compressed_plots_are_decoded_and_their_images_archived(real, tmp_path: Path):
    seeder, client, quirks = real
    task_id = seeder.seed_task(seeder.project("real/plots"), "real/plots", "plots", NONE)
    big = json.dumps({"data": [{"y": list(range(30_000))}], "layout": {"title": "big"}})
    assert len(big) >= 100_000
    figure = os.urandom(3000)
    url = seeder.upload(f"/real/plots/{task_id}/fig.png", figure)
    with_image = json.dumps({"data": [], "layout": {"images": [{"source": url, "x": 0}]}})
    now = int(time.time() * 1000)
    seeder.add_events([
        {"type": "plot", "task": task_id, "timestamp": now, "iter": 1, "metric": "big", "variant": "v",
         "plot_str": big},
        {"type": "plot", "task": task_id, "timestamp": now, "iter": 2, "metric": "figure", "variant": "mpl",
         "plot_str": with_image}])
    result = ClearMLTaskExporter(client, "real", tmp_path / "x").export_task(task_id)
    assert quirks.counts.get("compressed_plots_sent") == 1  # on the wire as plot_data, as a real server sends it
    plots = {p["metric"]: p for p in _lines(result.folder / "plots" / "plots.jsonl")}
    assert plots["big"]["plot_str"] == big and "plot_data" not in plots["big"]
    [image_file] = plots["figure"]["local_image_files"]
    assert (result.folder / image_file).read_bytes() == figure
    assert result.counts["plot_image_files"] == 1 and result.manifest["status"] == "ok", result.issues


def test_console_as_the_ui_shows_it_with_levels_and_a_capped_total(real, tmp_path: Path):
    seeder, client, quirks = real
    task_id = seeder.seed_task(seeder.project("real/log"), "real/log", "log", NONE)
    now = int(time.time() * 1000)
    special = [("info", "\x1b[32mstarting\x1b[0m\n"), ("info", "epoch 1:  10%\repoch 1:  50%\repoch 1: 100%\n"),
               ("info", "\rprogress 1/3"), ("info", "\rprogress 3/3\n"), ("error", "Traceback: boom\n")]
    events = [{"type": "log", "task": task_id, "timestamp": now + i, "level": level, "worker": "w1", "msg": msg}
              for i, (level, msg) in enumerate(special)]
    events += [{"type": "log", "task": task_id, "timestamp": now + 10 + i // 3, "level": "info", "worker": "w1",
                "msg": f"line {i:05d}"} for i in range(10_050)]
    seeder.add_events(events)
    result = ClearMLTaskExporter(client, "real", tmp_path / "x").export_task(task_id)
    text = (result.folder / "console.txt").read_text(encoding="utf-8").splitlines()
    assert text[:4] == ["starting", "epoch 1: 100%", "progress 3/3", "Traceback: boom"]
    assert len(text) == result.counts["log_lines"] == 4 + 10_050
    structured = _lines(result.folder / "log.jsonl")
    assert len(structured) == result.counts["log_events"] == 5 + 10_050
    assert structured[4] == {"timestamp": now + 4, "level": "error", "worker": "w1", "msg": "Traceback: boom\n"}
    assert "\x1b[32m" in (result.folder / "console.log").read_text(encoding="utf-8")  # raw stream kept
    assert result.counts["log_levels"]["error"] == 1
    assert result.manifest["server_counts"]["log_events_total_capped"] is True
    assert quirks.counts.get("log_events_refused") is None  # never asked for: it fails on a real server
    assert result.manifest["status"] == "ok", result.issues


def test_public_rows_are_left_out_and_pages_clamped(real, tmp_path: Path):
    seeder, client, quirks = real
    project = seeder.project("real/public")
    ids = {seeder.seed_task(project, "real/public", f"task {i}", NONE) for i in range(3)}
    exporter = ClearMLTaskExporter(client, "real", tmp_path / "x", page_size=1000)
    result = exporter.export_project(project)
    assert {r.task_id for r in result.tasks} == ids and not result.failures
    assert quirks.counts.get("public_rows")
    rows = list(client.tasks.iter(project=[project], status=["completed"], only_fields=["id"],
                                  include_public=True))
    assert len(rows) == 4  # asked for: the public row is there


def test_model_events_are_archived_under_the_model(real, tmp_path: Path):
    seeder, client, _ = real
    task_id = seeder.seed_task(seeder.project("real/model"), "real/model", "model", NONE, complete=False)
    model_id = seeder.call("models.create", name="best", uri="https://example.org/w.pt", task=task_id, ready=False,
                           project=seeder.project("real/model"))["id"]
    now = int(time.time() * 1000)
    # the real server stores model events at iteration 0 (one value per metric/variant)
    seeder.add_events([{"type": "training_stats_scalar", "task": model_id, "model_event": True,
                        "timestamp": now + i, "iter": i, "metric": "eval", "variant": f"acc{i}", "value": i / 10}
                       for i in range(7)])
    seeder.call("tasks.completed", task=task_id, force=True)
    result = ClearMLTaskExporter(client, "real", tmp_path / "x").export_task(task_id)
    [record] = json.loads((result.folder / "models" / "models.json").read_text())
    assert record["id"] == model_id and record["events"] == 7
    events = _lines(result.folder / "models" / f"output.best.{model_id}" / "events.jsonl")
    assert sorted(e["variant"] for e in events) == [f"acc{i}" for i in range(7)]
    assert sorted(e["timestamp"] for e in events) == [now + i for i in range(7)]
    assert result.counts["model_events"] == result.manifest["server_counts"]["model_events"] == 7


def test_files_host_spelled_localhost_is_the_same_fileserver(clearml_server, tmp_path: Path):
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("real/alias"), "real/alias", "alias", NONE, complete=False)
    data = os.urandom(5000)
    url = seeder.upload(f"/real/alias/{task_id}/a.bin", data)
    assert "127.0.0.1" in url
    spelled = url.replace("127.0.0.1", "localhost")  # how the SDK on the same machine may record it
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True,
                artifacts=[{"key": "a", "type": "custom", "mode": "output", "uri": spelled}])
    seeder.call("tasks.completed", task=task_id, force=True)
    # the client as users get it, from the resource (which accepts the loopback spellings of its files host)
    client = ClearMLResource.for_local_server(info, home=str(tmp_path / "home"), account="alias").client()
    assert client.files_host == info.files_host
    result = ClearMLTaskExporter(client, "alias", tmp_path / "x").export_task(task_id)
    assert result.counts["artifact_files"] == 1 and result.manifest["status"] == "ok", result.issues
    assert (result.folder / "artifacts" / "output.a" / "a.bin").read_bytes() == data


def test_a_transient_error_leaves_an_incomplete_archive_that_is_retried(clearml_server, tmp_path: Path):
    info = clearml_server.info
    proxy = FaultProxy(info.api_host)
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    spec = DemoSpec(scalar_series=1, points_per_series=3, log_lines=20, artifacts=0, artifact_bytes=0, plots=1,
                    debug_images=0)
    task_id = seeder.seed_task(seeder.project("real/transient"), "real/transient", "transient", spec)
    client = ClearMLClient(proxy.url, info.access_key, info.secret_key, account="t", files_host=info.files_host)
    root = tmp_path / "x"
    try:
        proxy.inject("status", match="events.get_task_log", code=500, times=1)
        first = ClearMLTaskExporter(client, "t", root).export_task(task_id)
        assert first.manifest["status"] == "incomplete"
        assert verify_archive(first.archive, first.manifest) == []  # what was read is kept...
        passed, meta = verify_export(root.resolve(), "t", "tasks", task_id)
        assert not passed and "incomplete" in meta["problem"]  # ...but the check is not green
        second = ClearMLTaskExporter(client, "t", root).export_task(task_id)
        assert not second.skipped and second.manifest["status"] == "ok"
        assert second.counts["log_events"] == 20
        assert verify_export(root.resolve(), "t", "tasks", task_id)[0]
        assert ClearMLTaskExporter(client, "t", root).export_task(task_id).skipped
    finally:
        proxy.close()


def test_local_server_scroll_restart_switch(clearml_server, monkeypatch, tmp_path: Path):
    """The same bug reproduced by the local server itself (its documented quirk switch)."""
    monkeypatch.setenv("CLEARML_LOCAL_SERVER_QUIRKS", "scroll_restart_at_iter0")
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("real/switch"), "real/switch", "switch", NONE)
    now = int(time.time() * 1000)
    seeder.add_events([{"type": "plot", "task": task_id, "timestamp": now, "iter": 0 if i < 600 else i,
                        "metric": "p", "variant": f"v{i}", "plot_str": "{}"} for i in range(605)])
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="switch",
                           files_host=info.files_host)
    result = ClearMLTaskExporter(client, "switch", tmp_path / "x").export_task(task_id)
    variants = [p["variant"] for p in _lines(result.folder / "plots" / "plots.jsonl")]
    assert sorted(variants) == sorted(f"v{i}" for i in range(605))
    assert result.counts["plots"] == result.manifest["server_counts"]["plots"] == 605
    assert result.manifest["status"] == "ok", result.issues
