"""The reader picks up the archive format's additions when present: ``log.jsonl`` (levels and timestamps
kept), a timestamp on each scalar line, plots stored compressed (``plot_data``). The export folder is
extended the way the exporter's new format writes it, its manifest rehashed, then restored."""

from __future__ import annotations

import base64
import json
import zlib

from seeding import DemoSpec, RawSeeder
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.manifest import hash_folder, read_manifest, write_manifest
from clearml_assets.client import ClearMLClient
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import TaskRestorer

SPEC = DemoSpec(scalar_series=2, points_per_series=30, log_lines=0, artifacts=0, plots=0, debug_images=0)


def _client(server: LocalServer) -> ClearMLClient:
    info = server.info
    return ClearMLClient(info.api_host, info.access_key, info.secret_key, files_host=info.files_host)


def test_log_levels_timestamps_scalar_timestamps_and_compressed_plots_are_restored(tmp_path):
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        info = a.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        task_id = seeder.seed_task(seeder.project("fmt"), "fmt", "format task", SPEC)
        exported = ClearMLTaskExporter(_client(a), "personal", tmp_path / "x").export_task(task_id)
        folder = exported.folder
        logs = [{"timestamp": 1_700_000_000_000 + i * 7, "level": level, "worker": "w1", "msg": f"line {i}",
                 "type": "log", "task": task_id, "@timestamp": "2023-11-14T22:13:20Z"}
                for i, level in enumerate(["info", "warning", "error", "critical", "debug"])]
        (folder / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in logs), encoding="utf-8")
        lines = (folder / "scalars" / "scalars.jsonl").read_text().splitlines()
        stamped = [{**json.loads(line), "timestamp": 1_600_000_000_000 + n} for n, line in enumerate(lines)]
        (folder / "scalars" / "scalars.jsonl").write_text("".join(json.dumps(e) + "\n" for e in stamped))
        plot = json.dumps({"data": [{"y": list(range(30_000))}]})
        (folder / "plots").mkdir(exist_ok=True)
        (folder / "plots" / "plots.jsonl").write_text(json.dumps({
            "type": "plot", "task": task_id, "iter": 3, "metric": "m", "variant": "v", "timestamp": 1_650_000_000_000,
            "plot_len": len(plot), "plot_data": base64.b64encode(zlib.compress(plot.encode())).decode()}) + "\n")
        manifest = read_manifest(folder)
        manifest["files"] = hash_folder(folder)
        write_manifest(folder, manifest)

        target = _client(b)
        (result,) = TaskRestorer(target).restore_path(folder)
        got = target.session.call("events.get_task_log", task=result.task_id, order="asc", batch_size=100)["events"]
        assert [(e["level"], e["timestamp"], e["msg"], e["worker"]) for e in got] == \
            [(e["level"], e["timestamp"], e["msg"], e["worker"]) for e in logs]
        scalars = target.session.call("events.get_task_events", task=result.task_id,
                                      event_type="training_stats_scalar", batch_size=1000)["events"]
        assert sorted(e["timestamp"] for e in scalars) == [s["timestamp"] for s in stamped]
        (restored_plot,) = target.session.call("events.get_task_events", task=result.task_id,
                                               event_type="plot")["events"]
        # a plot of 100,000 characters or more is stored compressed, and get_task_events returns it so
        assert len(plot) >= 100_000 and "plot_str" not in restored_plot
        assert zlib.decompress(base64.b64decode(restored_plot["plot_data"])).decode() == plot
        assert restored_plot["plot_len"] == len(plot) and restored_plot["timestamp"] == 1_650_000_000_000
