"""Where a project archive's time goes, against the bare transfer of the same bytes (bench_export's (b) vs (c)+(d)).

Starts a local server in a subprocess, seeds ``--tasks`` tasks as bench_export does (its ``DemoSpec``), then for
each simulated round trip runs (b) the project archive asset and (c)+(d) the bare parallel transfer, and prints
for each: wall seconds, CPU seconds of this process and of the server process, and the API requests per task
by endpoint. With ``--py-spy`` (PyPI ``py-spy``) both processes are sampled during each phase and the
functions holding the most samples (own and inclusive) are printed per process.

Usage: python benchmarks/profile_export.py [--tasks 30] [--workers 8] [--latency-ms 0,100] [--py-spy]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_export  # noqa: E402
from seeding import DemoSpec, RawSeeder  # noqa: E402

from clearml_assets.local_server.runner import start_local_server_process  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class RequestCounter:
    """Counts the HTTP requests this process sends, by URL path (``tasks.get_by_id``, ``/files/...``)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._send = requests.Session.send

    def __enter__(self) -> "RequestCounter":
        original = self._send

        def send(session, request, **kwargs):
            path = request.path_url.split("?", 1)[0]
            name = path.rsplit("/", 1)[-1] if "." in path.rsplit("/", 1)[-1] and "/v2" in path else "<file>"
            with self._lock:
                self.counts[name] += 1
            return original(session, request, **kwargs)

        requests.Session.send = send
        return self

    def __exit__(self, *exc) -> None:
        requests.Session.send = self._send


class Sampler:
    """py-spy sampling ``pids`` while the block runs (raw collapsed stacks into ``out``)."""

    def __init__(self, pids: dict[str, int], out: Path, rate: int = 100, gil: bool = False):
        self.pids, self.out, self.rate = pids, out, rate
        self.extra = ["--gil"] if gil else []
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "Sampler":
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        for name, pid in self.pids.items():
            self.procs[name] = subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw", "--nonblocking", *self.extra,
                 "-o", str(self.out / f"{name}.raw")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            proc.wait(60)

    def report(self, top: int) -> None:
        for name in self.pids:
            print_profile(name, self.out / f"{name}.raw", top)


def print_profile(name: str, raw: Path, top: int) -> None:
    """The functions holding the most samples in a py-spy raw file (own time, then inclusive)."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    if not raw.exists():
        print(f"  {name}: no samples")
        return
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [re.sub(r" \(/\S*?/(site-packages|lib/python3\.\d+|clearml_assets)/", " (", f)
                  for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            incl[frame] += int(n)
    print(f"  {name}: {total} samples")
    print("    -- by part (a sample counts for the innermost frame of a known part)")
    for part, n in categories(raw).most_common():
        print(f"    {100 * n / max(total, 1):5.1f}% {part}")
    for title, counter in (("own", own), ("inclusive", incl)):
        print(f"    -- {title}")
        for frame, n in counter.most_common(top):
            print(f"    {100 * n / max(total, 1):5.1f}% {frame[:140]}")


# (part, substrings of a frame) checked from the innermost frame outwards; the first part found takes the sample
PARTS = (
    ("waiting on the network (socket reads)", ("SocketIO.readinto", "_socket", "select (", "poll_wait_for_socket",
                                              "EpollSelector.select", "Condition.wait")),
    ("packing: hashing, zip/tar, compression", ("archives/packing.py", "packing.py", "zipfile.py", "tarfile.py",
                                                "gzip.py", "lzma.py")),
    ("downloads (file bodies to disk)", ("download (", "_fetch (", "iter_content", "fetch_object")),
    ("JSON decoding of answers", ("_json (", "orjson", "json/decoder.py", "Response.json")),
    ("scalars (parquet + JSON lines)", ("scalars.py", "pyarrow")),
    ("console log", ("logs.py",)),
    ("plots/debug images/model events", ("media.py", "events.py")),
    ("manifest and records (JSON writing, signing)", ("manifest.py", "records.py", "signing.py", "json/encoder.py")),
    ("publishing (rename, index, locks, folders)", ("publish.py", "filelock", "paths.py")),
    ("HTTP client (requests, urllib3, http.client)", ("requests/", "urllib3/", "http/client.py", "client.py")),
    ("Dagster", ("dagster/",)),
    ("server: events", ("bll/event", "event_", "services/events")),
    ("server: HTTP stack (uvicorn, starlette, anyio)", ("uvicorn", "starlette", "anyio", "asyncio")),
    ("server: fileserver", ("fileserver.py",)),
    ("filesystem (mkdir, stat, open)", ("pathlib.py", "genericpath", "posixpath", "<frozen os>", "shutil.py")),
)


def categories(raw: Path) -> collections.Counter:
    """Samples per part of the work (:data:`PARTS`); ``other`` for the rest."""
    out: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        part = next((name for frame in reversed(frames) for name, keys in PARTS
                     if any(k in frame for k in keys)), "other")
        out[part] += int(n)
    return out


@dataclasses.dataclass
class Phase:
    name: str
    seconds: float
    cpu_self: float
    cpu_server: float
    requests: collections.Counter


def measure(name: str, server_pid: int, fn: Callable[[], object], work: Path, py_spy: str | None, top: int
            ) -> Phase:
    sampler = Sampler({"exporter": os.getpid(), "server": server_pid}, work / name,
                      gil=py_spy == "gil") if py_spy else None
    if sampler:
        (work / name).mkdir(parents=True, exist_ok=True)
        sampler.__enter__()
    try:
        with RequestCounter() as counter:
            c0, s0, t0 = cpu_seconds(os.getpid()), cpu_seconds(server_pid), time.perf_counter()
            fn()
            seconds = time.perf_counter() - t0
            cpu_self, cpu_server = cpu_seconds(os.getpid()) - c0, cpu_seconds(server_pid) - s0
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    phase = Phase(name, seconds, cpu_self, cpu_server, counter.counts)
    if sampler:
        sampler.report(top)
    return phase


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency-ms", default="0")
    parser.add_argument("--py-spy", nargs="?", const="all", choices=["all", "gil"],
                        help="sample both processes with py-spy (gil: only threads holding the GIL, i.e. "
                             "Python CPU; all: every running thread)")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (py-spy's raw stacks)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="profile_export_"))
    server = start_local_server_process(work / "server", log_file=work / "server.log")
    try:
        info = server.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        api_proxy = bench_export.LatencyProxy(int(info.api_host.rsplit(":", 1)[1]))
        files_proxy = bench_export.LatencyProxy(int(info.files_host.rsplit(":", 1)[1]))
        info = dataclasses.replace(info, api_host=api_proxy.url(info.api_host),
                                   files_host=files_proxy.url(info.files_host))
        seeder.files_host = info.files_host
        ids = seeder.seed_project("bench", args.tasks, DemoSpec(), workers=4)
        project_id = seeder.project("bench")
        reader = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        urls = bench_export.file_urls(reader, ids)
        warm = DemoSpec(scalar_series=2, points_per_series=5, log_lines=5, artifacts=1, artifact_bytes=1024)
        seeder.seed_project("warmup", 1, warm, workers=1)
        bench_export.run_project_asset(info, seeder.project("warmup"), work / "warmup", args.workers)
        pid = server.process.pid
        for rtt in [float(x) for x in args.latency_ms.split(",")]:
            api_proxy.latency = files_proxy.latency = rtt / 1000
            print(f"=== round trip {rtt:g} ms, {len(ids)} tasks, max_workers {args.workers}, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
            run = work / f"rtt_{rtt:g}"
            b = measure("archive", pid, lambda: bench_export.run_project_asset(
                info, project_id, run / "exports", args.workers), run, args.py_spy, args.top)
            bare = measure("bare", pid, lambda: (
                bench_export.bare_downloads(reader.token, urls, run / "bare", 2 * args.workers),
                bench_export.bare_events(reader, ids, 2 * args.workers)), run, args.py_spy, args.top)
            for phase in (b, bare):
                per_task = {k: round(v / len(ids), 2) for k, v in phase.requests.most_common()}
                print(f"{phase.name:8s} {phase.seconds:6.2f} s wall; CPU: this process {phase.cpu_self:6.2f} s, "
                      f"server {phase.cpu_server:6.2f} s; {sum(phase.requests.values()) / len(ids):.1f} "
                      f"requests/task {per_task}", flush=True)
            print(f"ratio archive / bare: wall {b.seconds / bare.seconds:.2f}, CPU "
                  f"{(b.cpu_self + b.cpu_server) / (bare.cpu_self + bare.cpu_server):.2f}", flush=True)
            if not args.keep:
                shutil.rmtree(run, ignore_errors=True)
    finally:
        server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
