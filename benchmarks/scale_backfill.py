"""bench_scale's backfill phase: a backfill of the backfill project's partitions, launched as the UI launches it, at
each level of concurrent runs, against the bare parallel transfer of the same bytes."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import bench_export
import scale_seed
from scale_deploy import TASK_ASSET, Deployment, dagster_dev, graphql, load, say
from seeding import RawSeeder

IN_FLIGHT_PER_RUN = 16  # a run's exporter: at most twice its max_workers (8) requests in flight

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidSubsetError { message }
  }
}"""


def launch_backfill(url: str, keys: list[str]) -> str:
    data = graphql(url, LAUNCH, {"params": {"partitionNames": keys, "assetSelection": [{"path": TASK_ASSET}],
                                            "fromFailure": False, "tags": []}})["launchPartitionBackfill"]
    if data["__typename"] != "LaunchBackfillSuccess":
        raise SystemExit(f"backfill not launched: {json.dumps(data)[:2000]}")
    return data["backfillId"]


def wait_backfill(deploy: Deployment, backfill_id: str, timeout: float) -> list:
    """Wait until the backfill is done; returns its runs."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    with deploy.instance() as instance:
        deadline = time.monotonic() + timeout
        while True:
            backfill = instance.get_backfill(backfill_id)
            if backfill.status not in (BulkActionStatus.REQUESTED,):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"backfill {backfill_id} not done after {timeout:.0f} s")
            time.sleep(2)
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        return [(r, instance.get_run_stats(r.run_id), instance.get_run_step_stats(r.run_id)) for r in runs]


def run_backfill_level(deploy: Deployment, keys: list[str], concurrency: int, settings: dict[str, str]) -> dict:
    root_home = deploy.work / f"home_c{concurrency}"
    log = deploy.work / f"dagster_dev_c{concurrency}.log"
    with dagster_dev(deploy, concurrency, log, {"CLEARML_ASSETS_HOME": str(root_home), **settings}) as url:
        say(f"backfill of {len(keys):,} partitions at {concurrency} concurrent run(s): launching; {load()}")
        started = time.time()
        backfill_id = launch_backfill(url, keys)
        launched = time.time() - started
        runs = wait_backfill(deploy, backfill_id, timeout=48 * 3600)
    ends = [stats.end_time for _, stats, _ in runs if stats.end_time]
    wall = max(ends) - started if ends else float("nan")
    outside = [(stats.end_time - stats.start_time) - sum((s.end_time or 0) - (s.start_time or 0) for s in steps)
               for _, stats, steps in runs if stats.end_time and stats.start_time]
    failed = [r.run_id for r, _, _ in runs if r.status.value != "SUCCESS"]
    starts = [stats.start_time for _, stats, _ in runs if stats.start_time]
    steps: dict[str, list[float]] = {}  # seconds of each step (the archive batch, its check) over the runs
    for _, _, run_steps in runs:
        for step in run_steps:
            if step.end_time and step.start_time:
                steps.setdefault(step.step_key, []).append(step.end_time - step.start_time)
    return {"concurrency": concurrency, "wall": wall, "launch": launched, "runs": len(runs), "failed": failed,
            "outside_mean": sum(outside) / max(1, len(outside)), "root": str(root_home / "exports"),
            "first_start": min(starts) - started if starts else float("nan"),
            "steps": {k: sum(v) / len(v) for k, v in steps.items()}, "load": os.getloadavg()}


def check_backfill(deploy: Deployment, keys: list[str], root: str) -> list[str]:
    """Partitions without exactly one materialization into ``root`` (a level's export root)."""
    import dagster as dg

    problems: list[str] = []
    with deploy.instance() as instance:
        counts: dict[str, int] = {}
        for start in range(0, len(keys), 1000):  # 1,000 partitions x 3 levels: below the 10,000 records a call
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(TASK_ASSET), asset_partitions=keys[start:start + 1000]),
                limit=10_000).records
            for record in records:
                meta = record.asset_materialization.metadata
                folder = str(getattr(meta.get("folder"), "value", ""))
                if folder.startswith(root):
                    counts[record.asset_materialization.partition] = counts.get(
                        record.asset_materialization.partition, 0) + 1
                    if str(getattr(meta.get("status"), "value", "")) != "ok":
                        problems.append(f"{record.asset_materialization.partition}: status "
                                        f"{getattr(meta.get('status'), 'value', None)}")
    problems += [f"{k}: {counts.get(k, 0)} materializations" for k in keys if counts.get(k, 0) != 1]
    return problems


def bare_transfer(seeded: scale_seed.Seeded, ids: list[str], in_flight: int, work: Path) -> float:
    info = seeded.server.info
    reader = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    urls = bench_export.file_urls(reader, ids)
    seconds = bench_export.bare_downloads(reader.token, urls, work / "bare_files", in_flight)
    shutil.rmtree(work / "bare_files", ignore_errors=True)
    return seconds + bench_export.bare_events(reader, ids, in_flight)


def run_backfill(deploy: Deployment, seeded: scale_seed.Seeded, levels: list[int], settings: dict[str, str]
                 ) -> list[dict]:
    keys = seeded.ids["scale/backfill"]
    rows = []
    say(f"backfill settings: {settings}")
    for n in levels:
        level = run_backfill_level(deploy, keys, n, settings)
        problems = check_backfill(deploy, keys, level["root"])
        say(f"bare parallel transfer of the same {len(keys):,} tasks, {IN_FLIGHT_PER_RUN * n} requests in "
            f"flight; {load()}")
        bare = bare_transfer(seeded, keys, IN_FLIGHT_PER_RUN * n, deploy.work)
        level.update(bare=bare, problems=len(problems))
        say(f"backfill at {n} concurrent run(s): {level['wall']:.1f} s for {len(keys):,} partitions in "
            f"{level['runs']} runs ({len(level['failed'])} failed; launch {level['launch']:.1f} s; per run "
            f"{level['outside_mean']:.1f} s outside the asset); bare transfer {bare:.1f} s; ratio "
            f"{level['wall'] / bare:.2f} (target <= 1.5); wrong or missing archives {len(problems)}; "
            "load average {:.1f} {:.1f} {:.1f}".format(*level["load"]))
        say(f"  launch to the first run's start {level['first_start']:.1f} s; mean seconds a step: "
            + ", ".join(f"{k} {v:.1f}" for k, v in level["steps"].items()))
        for line in problems[:5]:
            say(f"  {line}")
        shutil.rmtree(level["root"], ignore_errors=True)
        rows.append(level)
    return rows
