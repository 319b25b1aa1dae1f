"""Load on the local server: concurrent exports while real-SDK writers report, for a bounded time.

The local server runs as its own process (its memory is sampled). ``--writers`` child processes use the
real ClearML SDK (``Task.init``, ``Logger.report_scalar``, ``Logger.report_text``) as fast as they can
for ``--seconds``; meanwhile ``--exporters`` threads archive the seeded tasks again and again (forced,
full exports). Afterwards every writer task is archived and its points and lines are counted against
what the writer says it reported: nothing may be lost, no export may fail.

Run: ``python benchmarks/bench_load.py [--seconds 60] [--exporters 8] [--writers 2]``. Prints throughput and
the server's peak memory; exits 1 on an error or a lost event.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil

from clearml_assets.archives import ClearMLTaskExporter
from clearml_assets.client import ClearMLClient
from clearml_assets.local_server import start_local_server_process
from bench_export import sdk_env  # benchmarks/ is on the path: run as a script or from tests/test_load.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the seeder lives with the tests
from seeding import DemoSpec, RawSeeder  # noqa: E402

WRITER = """
import json, sys, time
from clearml import Task
task = Task.init(project_name="load writers", task_name=sys.argv[1], auto_connect_frameworks=False,
                 auto_resource_monitoring=False, auto_connect_streams=False)
logger, deadline, points, lines = task.get_logger(), time.monotonic() + float(sys.argv[2]), 0, 0
while time.monotonic() < deadline:
    for series in range(5):
        logger.report_scalar("load", f"series_{series}", value=points * 0.001, iteration=points // 5)
        points += 1
    logger.report_text(f"line {lines}")
    lines += 1
    time.sleep(float(sys.argv[3]))
task.close()
print(json.dumps({"task_id": task.id, "points": points, "lines": lines}))
"""


def run_load(seconds: float = 60, exporters: int = 8, writers: int = 2, seeded_tasks: int = 8,
             workdir: Path | None = None, writer_pause: float = 0.0) -> dict:
    """Run the load and return its figures (see the module docstring).

    ``writer_pause`` is a sleep per 5 points and 1 line in each writer (0: as fast as the SDK goes).
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="clearml_load_"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = start_local_server_process(workdir / "server", log_file=workdir / "server.log")
    figures: dict = {"errors": [], "exports": 0, "exported_bytes": 0}
    try:
        info = server.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        spec = DemoSpec(scalar_series=5, points_per_series=2000, log_lines=2000, artifacts=2,
                        artifact_bytes=256 * 1024, plots=2, debug_images=2)
        task_ids = seeder.seed_project("load seeded", seeded_tasks, spec)
        client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="load",
                               files_host=info.files_host, web_host=info.web_host, max_connections=16)
        rss, stop = [], threading.Event()
        server_proc = psutil.Process(server.process.pid)

        def sample() -> None:
            while not stop.is_set():
                rss.append(server_proc.memory_info().rss)
                stop.wait(0.25)

        def export_loop(n: int) -> None:
            exporter = ClearMLTaskExporter(client, "load", workdir / f"exports_{n}")
            i = n
            while not stop.is_set():
                try:
                    result = exporter.export_task(task_ids[i % len(task_ids)], force=True)
                    with lock:
                        figures["exports"] += 1
                        figures["exported_bytes"] += int(result.counts.get("bytes", 0))
                        if result.counts.get("scalar_points") != spec.scalar_series * spec.points_per_series:
                            figures["errors"].append(f"export {result.task_id}: wrong scalar count")
                except Exception as exc:  # noqa: BLE001 - every failure is a finding of the benchmark
                    with lock:
                        figures["errors"].append(f"export: {type(exc).__name__}: {exc}"[:300])
                i += exporters

        lock = threading.Lock()
        started = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), f"writer {w}", str(seconds),
                                   str(writer_pause)],
                                  env=sdk_env(info, workdir / f"home_{w}"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for w in range(writers)]
        threads = [threading.Thread(target=sample, daemon=True)]
        threads += [threading.Thread(target=export_loop, args=(n,), daemon=True) for n in range(exporters)]
        for thread in threads:
            thread.start()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 300)
            if proc.returncode != 0:
                figures["errors"].append(f"writer exited {proc.returncode}: {err[-500:]}")
            else:
                reports.append(json.loads(out.strip().splitlines()[-1]))
        stop.set()
        for thread in threads:
            thread.join(120)
        elapsed = time.monotonic() - started

        lost, written = 0, 0
        final = ClearMLTaskExporter(client, "load", workdir / "final")
        for report in reports:
            result = final.export_task(report["task_id"], force=True)
            written += report["points"] + report["lines"]
            lost += max(0, report["points"] - int(result.counts.get("scalar_points", 0)))
            # the SDK sends several report_text lines in one log event: count the lines themselves
            seen = set(map(int, re.findall(r"\bline (\d+)\b", (result.folder / "console.log").read_text())))
            lost += len(set(range(report["lines"])) - seen)
        figures.update({
            "seconds": round(elapsed, 1), "writers": writers, "exporters": exporters,
            "events_written": written, "events_per_second_written": round(written / elapsed),
            "events_lost": lost, "exports_per_second": round(figures["exports"] / elapsed, 2),
            "export_mb_per_second": round(figures["exported_bytes"] / elapsed / 1e6, 1),
            "server_rss_mib_first": round(rss[0] / 2**20) if rss else None,
            "server_rss_mib_peak": round(max(rss) / 2**20) if rss else None,
        })
        return figures
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--exporters", type=int, default=8)
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    figures = run_load(args.seconds, args.exporters, args.writers)
    for key, value in figures.items():
        if key != "errors":
            print(f"{key:28s} {value}")
    print(f"{'errors':28s} {len(figures['errors'])}")
    for error in figures["errors"][:10]:
        print("   ", error)
    return 1 if figures["errors"] or figures["events_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
