"""Benchmark: N concurrent Dagster archive runs against one shared local server (throughput, nothing lost).

The production layout of docs/deployment.md on one machine: one long-lived server started with
``clearml-assets local-server start`` and reached by URL (``CLEARML_ASSETS_LOCAL_SERVER``), Dagster on
PostgreSQL (Debian's ``postgresql``, started here on loopback; SQLite with ``--storage sqlite`` or when
PostgreSQL is not installed), and every run its own process: ``dagster asset materialize`` of one task
partition, as the completed-task sensor launches them. ``--tasks`` tasks are seeded with raw HTTP (scalars,
log lines, artifacts, a plot, a debug image each), added as partitions with ``clearml-assets add-partitions``,
then archived once per concurrency level in ``--concurrency`` (each level into its own export root, all in
one run, so the ratios compare like with like).

Nothing lost means, for every level: every run exits 0, every partition has exactly one materialization into
that level's root, its archive re-reads byte for byte against its manifest (status ``ok``), and its scalar
points, log lines and files are the seeded numbers.

Usage: python benchmarks/bench_runs.py [--tasks 16] [--concurrency 1,4] [--storage postgres|sqlite] [--keep]
Prints one line per level (runs/min, seconds) and the throughput ratio of each level to the first; exits 1
when anything was lost or a run failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the seeding and PostgreSQL helpers live with the tests

import dagster as dg  # noqa: E402

from clearml_assets.archives.assets import task_archive_key  # noqa: E402
from clearml_assets.archives.manifest import MANIFEST_NAME  # noqa: E402
from clearml_assets.archives.packing import verify_archive  # noqa: E402
from clearml_assets.local_server.auth import load_or_create_credentials  # noqa: E402
from seeding import DemoSpec, RawSeeder  # noqa: E402

BIN = Path(sys.executable).parent
ACCOUNT = "local"
SPEC = DemoSpec(scalar_series=4, points_per_series=250, log_lines=1500, artifacts=2, artifact_bytes=256 << 10,
                plots=1, debug_images=1)


def _cli(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _checked(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _storage(work: Path, choice: str, env: dict):
    """DAGSTER_HOME with PostgreSQL storage (returns the server to stop) or the default SQLite."""
    dagster_home = work / "dagster_home"
    dagster_home.mkdir()
    env["DAGSTER_HOME"] = str(dagster_home)
    if choice != "sqlite":
        from pgserver import postgres_bin_dir, start_postgres

        if postgres_bin_dir() is not None:
            pg = start_postgres()
            (dagster_home / "dagster.yaml").write_text(pg.dagster_yaml(pg.create_database("dagster_bench")))
            env["DAGSTER_PG_PASSWORD"] = os.environ["DAGSTER_PG_PASSWORD"] = pg.password
            return "postgres", pg
        if choice == "postgres":
            raise SystemExit("--storage postgres: PostgreSQL is not installed (apt-get install -y postgresql)")
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return "sqlite", None


def _shared_server(work: Path, env: dict) -> dict:
    """Start the long-lived server as docs/deployment.md does; point the runs at it by URL."""
    home = work / "server_home"
    _checked(_cli(env, "clearml-assets", "local-server", "start", "--home", str(home), "--api-port", "0",
                  "--files-port", "0", "--web-port", "0"), "clearml-assets local-server start")
    record = json.loads((home / "server" / "server.json").read_text())
    keys = dataclasses.asdict(load_or_create_credentials(home / "server")[0])
    env.update({"CLEARML_ASSETS_LOCAL_SERVER": record["api_host"],
                "CLEARML_ASSETS_SERVER_ACCESS_KEY": keys["access_key"],
                "CLEARML_ASSETS_SERVER_SECRET_KEY": keys["secret_key"]})
    return {"home": home, **record, **keys}


def _run_level(env: dict, task_ids: list[str], concurrency: int, export_root: Path) -> tuple[float, list[str]]:
    """Archive every task in its own ``dagster asset materialize`` process, ``concurrency`` at a time."""
    key = task_archive_key(ACCOUNT)
    config = json.dumps({"ops": {key.to_python_identifier(): {"config": {"export_root": str(export_root)}}}})

    def one(task_id: str) -> str | None:
        proc = _cli(env, "dagster", "asset", "materialize", "-m", "clearml_assets.definitions", "--select",
                    key.to_user_string(), "--partition", task_id, "--config-json", config)
        return None if proc.returncode == 0 else f"{task_id}: exit {proc.returncode}: {proc.stderr[-1500:]}"

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        failures = [f for f in pool.map(one, task_ids) if f]
    return time.perf_counter() - start, failures


def _lost(instance: dg.DagsterInstance, task_ids: list[str], export_root: Path) -> list[str]:
    """What the level lost: partitions without exactly one verified, complete archive under its root."""
    problems: list[str] = []
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=task_archive_key(ACCOUNT), asset_partitions=task_ids), limit=10_000).records
    ours: dict[str, list[dict]] = {}
    for record in records:
        meta = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
        if str(meta.get("folder", "")).startswith(str(export_root)):
            ours.setdefault(record.asset_materialization.partition, []).append(meta)
    for task_id in task_ids:
        metas = ours.get(task_id, [])
        if len(metas) != 1:
            problems.append(f"{task_id}: {len(metas)} materializations into {export_root}")
            continue
        meta = metas[0]
        manifest = json.loads((Path(meta["folder"]) / MANIFEST_NAME).read_text())
        found = verify_archive(Path(meta["archive_path"]), manifest)
        expected = {"status": "ok", "scalar_points": SPEC.scalar_series * SPEC.points_per_series,
                    "log_lines": SPEC.log_lines}
        got = {name: meta.get(name) for name in expected}
        if found or got != expected:
            problems.append(f"{task_id}: {got} (expected {expected}); archive problems: {found[:3]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=16, help="tasks (= runs per level, default 16)")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated run concurrency levels (default 1,4)")
    parser.add_argument("--storage", choices=["auto", "postgres", "sqlite"], default="auto",
                        help="Dagster storage (default: PostgreSQL when installed, else SQLite)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_", "DAGSTER_"))}
    env.update({"CLEARML_ASSETS_HOME": str(work / "home"), "CLEARML_ASSETS_ARCHIVE_CRON": "off"})
    storage, pg = _storage(work, args.storage, env)
    server = _shared_server(work, env)
    try:
        return _bench(args, levels, work, env, server, storage)
    finally:
        _cli(env, "clearml-assets", "local-server", "stop", "--home", str(server["home"]))
        if pg is not None:
            pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args, levels: list[int], work: Path, env: dict, server: dict, storage: str) -> int:
    seeder = RawSeeder(server["api_host"], server["files_host"], server["access_key"], server["secret_key"])
    t0 = time.perf_counter()
    task_ids = seeder.seed_project("bench runs", args.tasks, SPEC, workers=4)
    print(f"seeded {len(task_ids)} tasks in {time.perf_counter() - t0:.1f}s; Dagster storage: {storage}; "
          f"shared server {server['api_host']}", flush=True)
    _checked(_cli(env, "clearml-assets", "add-partitions", *task_ids), "clearml-assets add-partitions")
    rates, lost_total = [], 0
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for n in levels:
            root = work / f"exports_c{n}"
            seconds, failures = _run_level(env, task_ids, n, root)
            lost = _lost(instance, task_ids, root)
            rates.append(len(task_ids) / seconds * 60)
            lost_total += len(failures) + len(lost)
            print(f"concurrency {n}: {len(task_ids)} runs in {seconds:.1f}s = {rates[-1]:.1f} runs/min; "
                  f"failed runs {len(failures)}, lost or wrong archives {len(lost)}", flush=True)
            for line in (failures + lost)[:10]:
                print(f"  {line}", flush=True)
    for n, rate in zip(levels[1:], rates[1:]):
        print(f"throughput concurrency {n} / concurrency {levels[0]}: {rate / rates[0]:.2f}x")
    print("nothing lost" if lost_total == 0 else f"LOST OR FAILED: {lost_total}")
    return 0 if lost_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
