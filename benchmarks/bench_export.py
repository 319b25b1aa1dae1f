"""Benchmark: project archive vs. the seed's SDK way vs. the bare transfer of the same bytes.

Starts a local server in a subprocess, seeds N tasks with raw HTTP (default 200; each 5,000 scalar points
over 10 series, 2,000 log lines, 3 artifacts of 1 MB, 2 plots, 2 debug images), then times in one run, for
each simulated round trip (``--latency-ms``, default ``0,30,100``):

(a) the seed's way, per task sequentially in one SDK process with an empty SDK cache: ``Task.get_task``,
    ``get_reported_console_output`` written to ``console.txt``, ``get_reported_scalars`` written to
    ``scalars.json`` (with mAP / precision / recall / F1 picked out), each artifact's ``get_local_copy``
    copied into ``artifacts/``;
(b) the project archive asset (a Dagster materialization into a new export root);
(c) a bare parallel download of the same files (artifacts and debug images) to disk, and
(d) the bare parallel transfer of the same events (log pages, scalar events with their timestamps, plot
    and debug image events) within the real server's page limits, stopping on the server's totals as (b)
    does.

Prints completeness of (a) and (b) and, side by side for every round trip, the ratios: target
(a)/(b) >= 10 and (b) <= 2 x ((c) + (d)).

With ``--memory`` it instead checks that memory stays flat: one task with N log lines and an N-point
scalar series (default 1,000,000 each) is exported in a child process and its peak RSS is compared with
the same export at N/10.

The round trip is simulated by a proxy (its own process) in front of the API server and the fileserver that
delays every request by R milliseconds (as to a hosted ClearML server); seeding is not delayed.

Usage: python benchmarks/bench_export.py [--tasks 200] [--workers 8,16] [--latency-ms 0,30,100]
       python benchmarks/bench_export.py --memory [--memory-size 1000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from clearml_assets.local_server.runner import start_local_server_process
from clearml_assets.sdk_process import fastfail_config_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the seeder lives with the tests
from seeding import DemoSpec, RawSeeder  # noqa: E402

SEED_WAY = """
import json, os, re, shutil, sys, time
from pathlib import Path
from clearml import Task
ids, out = json.loads(sys.argv[1]), Path(sys.argv[2])
cache = Path.home() / ".clearml" / "cache"
assert not cache.exists(), f"the SDK cache {cache} is not empty: the SDK way would not download"
picked = re.compile(r"map|precision|recall|f1", re.I)
t0 = time.perf_counter()
lines = points = files = 0
for task_id in ids:
    task = Task.get_task(task_id=task_id)
    folder = out / f"{task.name}.{task.id}"
    (folder / "artifacts").mkdir(parents=True)
    log = task.get_reported_console_output()
    (folder / "console.txt").write_text("".join(log), encoding="utf-8")
    lines += sum(len(chunk.splitlines()) for chunk in log)
    scalars = task.get_reported_scalars()
    (folder / "scalars.json").write_text(json.dumps(scalars), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps({f"{m}/{v}": series["y"][-1] for m, vs in scalars.items()
                                                     for v, series in vs.items() if picked.search(f"{m}/{v}")}))
    points += sum(len(series["x"]) for variants in scalars.values() for series in variants.values())
    for name, artifact in task.artifacts.items():
        local = artifact.get_local_copy()
        if local:
            shutil.copy(local, folder / "artifacts" / os.path.basename(local))
            files += 1
print(json.dumps({"seconds": time.perf_counter() - t0, "lines": lines, "points": points, "files": files}))
"""


class LatencyProxy:
    """A TCP proxy to ``port`` on loopback that delays each request (first bytes after a response).

    It runs in its own process: pumping every byte through Python threads in the measuring process would
    take that process's GIL from the export being measured.
    """

    def __init__(self, port: int):
        import multiprocessing

        context = multiprocessing.get_context("fork")  # started before any measured thread exists
        self.target = port
        self._latency = context.Value("d", 0.0, lock=False)
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        self._process = context.Process(target=_serve_proxy, args=(listener, port, self._latency), daemon=True)
        self._process.start()
        listener.close()

    @property
    def latency(self) -> float:
        return self._latency.value

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency.value = seconds

    def url(self, original: str) -> str:
        return original.replace(f":{self.target}", f":{self.port}")


def _serve_proxy(listener: socket.socket, target: int, latency) -> None:
    def pump(src: socket.socket, dst: socket.socket, state: dict, request_side: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if request_side and state["new_request"]:
                    state["new_request"] = False
                    if latency.value:
                        time.sleep(latency.value)
                elif not request_side:
                    state["new_request"] = True
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = {"new_request": True}
        threading.Thread(target=pump, args=(client, upstream, state, True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, state, False), daemon=True).start()


def sdk_env(info, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(info.env())
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "CLEARML_TASK_NO_REUSE": "1",
                "CLEARML_CONFIG_FILE": str(fastfail_config_file(home)), "CLEARML_LOG_LEVEL": "ERROR"})
    return env


def run_seed_way(info, ids: list[str], home: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", SEED_WAY, json.dumps(ids), str(out)], env=sdk_env(info, home),
                          capture_output=True, text=True, timeout=7200)
    if proc.returncode != 0:
        raise SystemExit(f"seed way failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_project_asset(info, project_id: str, root: Path, workers: int) -> dict:
    import dagster as dg

    from clearml_assets.archives.assets import build_clearml_project_archive_asset
    from clearml_assets.resource import ClearMLResource

    asset = build_clearml_project_archive_asset("bench")
    resource = ClearMLResource.for_local_server(info, account="bench")
    # the account's connections bound the archive's requests in flight: as many as the bare transfers have
    account = resource.accounts["bench"].model_copy(update={"max_connections": 2 * workers})
    resource = ClearMLResource(accounts={"bench": account}, default_account="bench")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("clearml_projects_bench", [project_id])
    t0 = time.perf_counter()
    result = dg.materialize([asset], instance=instance, partition_key=project_id,
                            resources={"clearml": resource},
                            run_config={"ops": {"bench__clearml_project_archive": {"config": {
                                "export_root": str(root), "max_workers": workers}}}})
    seconds = time.perf_counter() - t0
    assert result.success
    meta = result.asset_materializations_for_node("bench__clearml_project_archive")[0].metadata
    return {"seconds": seconds, "tasks": meta["tasks"].value, "tasks_reused": meta["tasks_reused"].value,
            "lines": meta["log_lines"].value, "points": meta["scalar_points"].value,
            "files": meta["artifact_files"].value, "archive_bytes": meta["archive_bytes"].value}


def file_urls(reader: RawSeeder, ids: list[str]) -> list[str]:
    """Every file the archive downloads: artifacts and debug images."""
    urls = []
    for task_id in ids:
        urls += [a["uri"] for a in reader.call("tasks.get_by_id", task=task_id)["task"]["execution"]["artifacts"]]
        urls += [e["url"] for e in reader.call("events.get_task_events", task=task_id, batch_size=10000,
                                               event_type="training_debug_image")["events"]]
    return urls


def bare_downloads(token: str, urls: list[str], dest: Path, workers: int) -> float:
    dest.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=workers)
    session.mount("http://", adapter)

    def get(item):
        i, url = item
        with session.get(url, headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=300) as resp:
            resp.raise_for_status()
            with open(dest / f"{i}.bin", "wb") as out:
                for chunk in resp.iter_content(1 << 20):
                    out.write(chunk)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, enumerate(urls)))
    return time.perf_counter() - t0


def bare_events(reader: RawSeeder, ids: list[str], workers: int) -> float:
    """Every event stream of every task, in parallel, each paged until the server's total is reached."""
    # the real server's limits: log pages of 5,000 (its default), events pages of at most 10,000 (scalars,
    # with their timestamps, as the archive reads them) and 500 (plots, debug images)
    def log(task_id):
        # the log's total is exact only below 10,000 (Elasticsearch's track_total_hits): above, page to the end
        ts, got, total = None, 0, None
        while True:
            req = {"task": task_id, "batch_size": 5000, "navigate_earlier": False, "order": "asc"}
            if ts is not None:
                req["from_timestamp"] = ts
            data = reader.call("events.get_task_log", **req)
            events = data.get("events") or []
            got += len(events)
            total = data.get("total", 0) if total is None else total
            if not events or (total < 10_000 and got >= total) or events[-1]["timestamp"] == ts:
                return
            ts = events[-1]["timestamp"]

    def scalars(task_id):
        for metric in reader.call("events.get_scalar_metrics_and_variants", task=task_id)["metrics"]:
            events(task_id, "training_stats_scalar", 10_000, [{"metric": metric}])

    def events(task_id, event_type, batch=500, metrics=None):
        scroll, got, total = None, 0, None
        while total is None or got < total:
            req = {"task": task_id, "event_type": event_type, "batch_size": batch, "order": "asc"}
            if metrics:
                req["metrics"] = metrics
            if scroll:
                req["scroll_id"] = scroll
            data = reader.call("events.get_task_events", **req)
            total = data["total"] if total is None else total
            scroll, got = data.get("scroll_id"), got + data["returned"]
            if not data["returned"]:
                return

    jobs = [(fn, (task_id, *extra)) for task_id in ids
            for fn, extra in ((log, ()), (scalars, ()), (events, ("plot",)), (events, ("training_debug_image",)))]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: job[0](*job[1]), jobs))
    return time.perf_counter() - t0


MEMORY_CHILD = """
import json, resource, sys, time
from pathlib import Path
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.client import ClearMLClient
info, task_id, root = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
client = ClearMLClient(info["api_host"], info["access_key"], info["secret_key"], account="mem",
                       files_host=info["files_host"], read_timeout=600, deadline_seconds=600)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
result = ClearMLTaskExporter(client, "mem", root, max_workers=4).export_task(task_id)
print(json.dumps({"seconds": time.perf_counter() - t0, "rss_before_kb": base,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "lines": result.counts["log_lines"], "points": result.counts["scalar_points"],
                  "server": result.manifest["server_counts"], "issues": result.issues,
                  "archive_bytes": result.manifest["archive"]["size"]}))
"""


def seed_big_task(seeder: RawSeeder, project_id: str, name: str, size: int) -> str:
    """A completed task with ``size`` log lines and a ``size``-point scalar series (sent in chunks)."""
    task_id = seeder.call("tasks.create", name=name, type="training", project=project_id)["id"]
    seeder.call("tasks.started", task=task_id, force=True)
    now = int(time.time() * 1000)
    chunk = 20_000
    for start in range(0, size, chunk):
        end = min(size, start + chunk)
        seeder.add_events([{"type": "log", "task": task_id, "timestamp": now + i // 8, "level": "info",
                            "worker": "bench", "msg": f"epoch line {i:08d} loss={i * 1e-6:.6f}"}
                           for i in range(start, end)])
        seeder.add_events([{"type": "training_stats_scalar", "task": task_id, "timestamp": now + i,
                            "iter": i, "metric": "train", "variant": "loss", "value": 1.0 / (i + 1)}
                           for i in range(start, end)])
    seeder.call("tasks.completed", task=task_id, force=True)
    return task_id


def memory_check(info, seeder: RawSeeder, work: Path, size: int) -> None:
    project_id = seeder.project("memory")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    host = {"api_host": info.api_host, "files_host": info.files_host, "access_key": info.access_key,
            "secret_key": info.secret_key}
    rows = []
    for n in (size // 10, size):
        t0 = time.perf_counter()
        task_id = seed_big_task(seeder, project_id, f"big_{n}", n)
        print(f"seeded a task with {n:,} log lines and {n:,} scalar points in {time.perf_counter() - t0:.1f}s")
        proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, json.dumps(host), task_id,
                               str(work / f"mem_{n}")], env=env, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"memory export failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((n, row))
        print(f"N={n:>9,}: export {row['seconds']:.1f}s  lines={row['lines']:,} points={row['points']:,} "
              f"(server {row['server']})  peak RSS {row['peak_rss_kb'] / 1024:.0f} MiB "
              f"(after imports {row['rss_before_kb'] / 1024:.0f} MiB)  issues={len(row['issues'])}")
    (n1, small), (n2, big) = rows
    growth = (big["peak_rss_kb"] - small["peak_rss_kb"]) / 1024
    print(f"peak RSS growth from N={n1:,} to N={n2:,}: {growth:+.0f} MiB "
          f"(flat if small; the data itself is {big['archive_bytes'] / 2**20:.0f} MiB packed)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks to seed (default 200)")
    parser.add_argument("--workers", default="8,16",
                        help="the archive's max_workers, comma-separated; each is a separate measurement of "
                             "(b)-(d) against the same (a). The archive has up to twice this many requests in "
                             "flight, and so do the bare transfers (default 8,16)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--latency-ms", default="0,30,100",
                        help="simulated network round trips per request, in ms, comma-separated; each is a "
                             "separate measurement of (a)-(d) (default 0,30,100; 0 is loopback)")
    parser.add_argument("--memory", action="store_true",
                        help="check flat memory on a huge log and scalar series instead")
    parser.add_argument("--memory-size", type=int, default=1_000_000,
                        help="log lines and scalar points of the --memory task (default 1,000,000)")
    args = parser.parse_args(argv)
    latencies = [float(x) for x in str(args.latency_ms).split(",") if x.strip()]
    worker_counts = [int(x) for x in str(args.workers).split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    server = start_local_server_process(work / "server", log_file=work / "server.log")
    try:
        info = server.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        if args.memory:
            memory_check(info, seeder, work, args.memory_size)
            return
        api_proxy = LatencyProxy(int(info.api_host.rsplit(":", 1)[1]))
        files_proxy = LatencyProxy(int(info.files_host.rsplit(":", 1)[1]))
        info = dataclasses.replace(info, api_host=api_proxy.url(info.api_host),
                                   files_host=files_proxy.url(info.files_host))
        seeder.files_host = info.files_host  # artifact URIs name the proxied fileserver
        spec = DemoSpec()
        t0 = time.perf_counter()
        ids = seeder.seed_project("bench", args.tasks, spec, workers=4)
        project_id = seeder.project("bench")
        print(f"seeded {len(ids)} tasks in {time.perf_counter() - t0:.1f}s "
              f"({spec.scalar_series * spec.points_per_series} points, {spec.log_lines} lines, "
              f"{spec.artifacts} x {spec.artifact_bytes >> 20} MB artifacts each)")
        expected = {"lines": len(ids) * spec.log_lines,
                    "points": len(ids) * spec.scalar_series * spec.points_per_series,
                    "files": len(ids) * spec.artifacts}
        reader = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        urls = file_urls(reader, ids)
        print(f"expected      : {expected} (plus {len(urls) - expected['files']} debug image files)")
        # one untimed materialization first, so no timed run pays the process's one-time imports
        warm_spec = DemoSpec(scalar_series=2, points_per_series=5, log_lines=5, artifacts=1, artifact_bytes=1024)
        seeder.seed_project("warmup", 1, warm_spec, workers=1)
        run_project_asset(info, seeder.project("warmup"), work / "warmup", worker_counts[0])
        rows = []
        for rtt in latencies:
            api_proxy.latency = files_proxy.latency = rtt / 1000
            run = work / f"rtt_{rtt:g}"
            print(f"--- simulated round trip per request: {rtt:g} ms", flush=True)
            a = run_seed_way(info, ids, run / "sdk_home", run / "sdk_out")
            print(f"(a) SDK way   : {a['seconds']:.2f}s  lines={a['lines']} points={a['points']} files={a['files']}"
                  f"  missing: lines={expected['lines'] - a['lines']} points={expected['points'] - a['points']}"
                  f" files={expected['files'] - a['files']}", flush=True)
            for workers in worker_counts:
                b = run_project_asset(info, project_id, run / f"exports_{workers}", workers)
                print(f"(b) archive, max_workers={workers}: {b['seconds']:.2f}s  lines={b['lines']} "
                      f"points={b['points']} files={b['files']} tasks={b['tasks']} (reused {b['tasks_reused']})  "
                      f"missing: lines={expected['lines'] - b['lines']} points={expected['points'] - b['points']} "
                      f"files={expected['files'] - b['files']}", flush=True)
                c = bare_downloads(reader.token, urls, run / f"bare_{workers}", 2 * workers)
                d = bare_events(reader, ids, 2 * workers)
                print(f"(c) bare files: {c:.2f}s   (d) bare events: {d:.2f}s  ({2 * workers} in flight)", flush=True)
                rows.append((rtt, workers, a["seconds"], b["seconds"], c, d))
            if not args.keep:
                shutil.rmtree(run, ignore_errors=True)
        print(f"\n{len(ids)} tasks; target (a)/(b) >= 10 and (b)/((c)+(d)) <= 2")
        print(f"{'RTT ms':>7} {'workers':>8} {'(a) s':>8} {'(b) s':>8} {'(c) s':>8} {'(d) s':>8} {'(a)/(b)':>8} "
              f"{'(b)/((c)+(d))':>14} {'(a)/((c)+(d))':>14}")
        for rtt, workers, a_s, b_s, c_s, d_s in rows:
            print(f"{rtt:>7g} {workers:>8} {a_s:>8.2f} {b_s:>8.2f} {c_s:>8.2f} {d_s:>8.2f} {a_s / b_s:>7.1f}x "
                  f"{b_s / (c_s + d_s):>14.2f} {a_s / (c_s + d_s):>13.1f}x")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
