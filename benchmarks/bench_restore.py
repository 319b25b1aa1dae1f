"""Benchmark: restore of a project archive into an empty account vs. a bare upload of the same events and files.

Starts a source server and, per simulated round trip, a fresh target server (each a subprocess), seeds N
tasks on the source with raw HTTP (default 20; each 2,500 scalar points over 5 series, 1,000 log lines,
2 artifacts of 256 KB, 2 plots, 2 debug images), exports them as one project archive (untimed), then times
side by side, for every round trip (``--latency-ms``, default ``0,100``):

(r) the restore of the project archive into the empty target (``TaskRestorer.restore_path``: unpack,
    verify every file against the manifest, then per task create/edit/status calls, every event in bounded
    ``events.add_batch`` batches, every file uploaded, artifacts, models, provenance), and
(u) a bare upload of the same events and files into the same target: one ``tasks.create`` per task, the
    events (read from the unpacked archive before timing) in the same batches, the files uploaded, with
    the same number of requests in flight.

The round trip is simulated by the proxy of bench_export (its own process, in front of the target's API
server and fileserver, delaying every request by R ms); seeding and exporting are not delayed.

With ``--profile`` it also says where the time goes, per side: requests per task by endpoint, the requests a task's
own thread sends one after the other (its sequential chain), and the mean number of requests in flight.

Usage: python benchmarks/bench_restore.py [--tasks 20] [--latency-ms 0,100] [--workers 4] [--task-workers 4]
       [--profile]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the seeder lives with the tests
from bench_export import LatencyProxy  # noqa: E402
from seeding import DemoSpec, RawSeeder  # noqa: E402

from clearml_assets.archives.exporter import ClearMLTaskExporter  # noqa: E402
from clearml_assets.client import ClearMLClient  # noqa: E402
from clearml_assets.local_server.runner import start_local_server_process  # noqa: E402
from clearml_assets.restore.engine import TaskRestorer  # noqa: E402
from clearml_assets.restore.events import batches as _batches  # noqa: E402
from clearml_assets.restore.reader import open_archive  # noqa: E402

SPEC = DemoSpec(scalar_series=5, points_per_series=500, log_lines=1000, artifacts=2, artifact_bytes=256 << 10,
                plots=2, debug_images=2)


def client_of(info, account: str, workers: int) -> ClearMLClient:
    return ClearMLClient(info.api_host, info.access_key, info.secret_key, account=account,
                         files_host=info.files_host, web_host=info.web_host, max_connections=4 * workers)


def bare_plan(archive: Path, work: Path) -> list[dict]:
    """Per task: its events and files, read from the archive (untimed)."""
    plan = []
    with open_archive(archive, workdir=work) as tasks:
        for task in tasks:
            events = list(task.scalar_events()) + list(task.log_events()) + [e for e, _ in task.plot_events()]
            events += [e for e, _ in task.debug_image_events()]
            files = [p for _, p in task.debug_image_events() if p] + [p for _, p in task.artifacts() if p]
            files += [p for _, p in task.models() if p]
            keep = work / "bare_files" / task.source_task_id
            for n, path in enumerate(files):
                (keep / str(n)).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, keep / str(n) / path.name)
            plan.append({"name": task.task.get("name"), "events": events,
                         "files": sorted(keep.rglob("*.*"))})
    return plan


def bare_upload(client: ClearMLClient, plan: list[dict], project_id: str, in_flight: int) -> float:
    """Create the tasks, send every event and upload every file, ``in_flight`` requests at once."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        ids = list(pool.map(lambda p: client.tasks.create(name=p["name"], type="training", project=project_id), plan))
        jobs = []
        for task_id, item in zip(ids, plan):
            for batch in _batches(({**e, "task": task_id} for e in item["events"]), 5_000, 4 << 20):
                jobs.append(pool.submit(client.events.add_batch, batch))
            for path in item["files"]:
                jobs.append(pool.submit(client.files.upload, f"bare/{task_id}/{path.parent.name}/{path.name}", path))
        for job in jobs:
            job.result()
    return time.perf_counter() - t0


class RequestLog:
    """Every request ``client`` sends: (thread name, endpoint, start, end); :meth:`take` returns and clears them."""

    def __init__(self, client: ClearMLClient):
        self.rows: list[tuple[str, str, float, float]] = []
        session = client._http  # the client's one requests.Session (API calls, event batches and uploads)
        send = session.request

        def timed(method, url, *args, **kwargs):
            start = time.perf_counter()
            try:
                return send(method, url, *args, **kwargs)
            finally:
                endpoint = url.rsplit("/", 1)[-1] if "/v2." in url else "upload"
                self.rows.append((threading.current_thread().name, endpoint, start, time.perf_counter()))

        session.request = timed

    def take(self) -> list[tuple[str, str, float, float]]:
        rows, self.rows = self.rows, []
        return rows


def profile(side: str, rows: list, seconds: float, tasks: int) -> str:
    """Requests per task (by endpoint), a task thread's own sequential requests, mean requests in flight."""
    busy = sum(end - start for _, _, start, end in rows)
    own = sum(1 for thread, _, _, _ in rows if thread.startswith("clearml-restore-task"))
    kinds = ", ".join(f"{name} {n / tasks:.1f}" for name, n in Counter(e for _, e, _, _ in rows).most_common())
    chain = f"; sent one after the other by the task's own thread: {own / tasks:.1f}/task" if own else ""
    return (f"    {side}: {len(rows) / tasks:.1f} requests/task ({kinds}){chain}; "
            f"mean in flight {busy / seconds:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks in the project archive (default 20; the "
                                                              "issue's figure is for 200)")
    parser.add_argument("--latency-ms", default="0,100", help="simulated round trips, comma-separated (default 0,100)")
    parser.add_argument("--workers", type=int, default=4, help="uploads/event batches in flight per task (default 4)")
    parser.add_argument("--task-workers", type=int, default=4, help="tasks restored at once (default 4)")
    parser.add_argument("--profile", action="store_true", help="where the time goes (requests, chains, in flight)")
    args = parser.parse_args(argv)
    latencies = [float(x) for x in args.latency_ms.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench_restore_"))
    source = start_local_server_process(work / "source", log_file=work / "source.log")
    targets = []
    try:
        info = source.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        t0 = time.perf_counter()
        seeder.seed_project("bench", args.tasks, SPEC, workers=4)
        exported = ClearMLTaskExporter(client_of(info, "source", 8), "source", work / "exports",
                                       max_workers=8).export_project("bench")
        print(f"seeded and archived {args.tasks} tasks in {time.perf_counter() - t0:.1f}s: "
              f"{exported.archive.stat().st_size >> 20} MB archive, totals {exported.manifest['task_totals']}")
        plan = bare_plan(exported.archive, work)
        in_flight = args.workers * args.task_workers
        rows = []
        for rtt in latencies:
            target = start_local_server_process(work / f"target_{rtt:g}", log_file=work / f"target_{rtt:g}.log")
            targets.append(target)
            tinfo = target.info
            api_proxy = LatencyProxy(int(tinfo.api_host.rsplit(":", 1)[1]))
            files_proxy = LatencyProxy(int(tinfo.files_host.rsplit(":", 1)[1]))
            tinfo = dataclasses.replace(tinfo, api_host=api_proxy.url(tinfo.api_host),
                                        files_host=files_proxy.url(tinfo.files_host))
            client = client_of(tinfo, "target", in_flight)
            bare_project = client.projects.ensure("bench-bare")
            log = RequestLog(client) if args.profile else None
            api_proxy.latency = files_proxy.latency = rtt / 1000
            t0 = time.perf_counter()
            results = TaskRestorer(client, project="bench-restore", max_workers=args.workers).restore_path(
                exported.archive, task_workers=args.task_workers)
            r = time.perf_counter() - t0
            assert len(results) == args.tasks and all(x.created for x in results)
            restore_rows = log.take() if log else []
            u = bare_upload(client, plan, bare_project, in_flight)
            print(f"--- {rtt:g} ms: (r) restore {r:.2f}s   (u) bare upload {u:.2f}s   (r)/(u) {r / u:.2f}", flush=True)
            if log:
                print(profile("(r)", restore_rows, r, args.tasks), flush=True)
                print(profile("(u)", log.take(), u, args.tasks), flush=True)
            rows.append((rtt, r, u))
        print(f"\n{args.tasks} tasks, {args.task_workers} tasks x {args.workers} requests in flight")
        print(f"{'RTT ms':>7} {'(r) s':>8} {'(u) s':>8} {'(r)/(u)':>8}")
        for rtt, r, u in rows:
            print(f"{rtt:>7g} {r:>8.2f} {u:>8.2f} {r / u:>8.2f}")
    finally:
        for target in targets:
            target.stop()
        source.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
