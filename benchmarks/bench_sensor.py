"""Benchmark of the completed-task sensor on the local ClearML server.

1. 10,000 completed tasks (status changes spread over 30 days) are in the server and the sensor has caught
   up: an idle tick must make <= 3 HTTP requests (auth.login + the resource's connection check +
   tasks.get_all; every request the client sends is counted) and take <= 1 s.
2. 500 tasks are then completed through the REST API: the sensor must add all of them, exactly once,
   over one or more ticks, each tick well inside Dagster's 60 s sensor timeout.

Run: ``python benchmarks/bench_sensor.py [--tasks 10000] [--new 500]``. Prints the figures and exits 1 if
a target is missed.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server_api import RawApi  # noqa: E402

from clearml_assets.archives.assets import clearml_task_partitions  # noqa: E402
from clearml_assets.archives.defs import build_archive_defs  # noqa: E402
from clearml_assets.automation import build_clearml_completed_tasks_sensor  # noqa: E402
from clearml_assets.automation.sensors import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG  # noqa: E402
from clearml_assets.local_server import LocalServer  # noqa: E402
from clearml_assets.resource import ClearMLResource  # noqa: E402

ACCOUNT = "bench"
HTTP_REQUESTS = {"n": 0}
_send = requests.Session.send


def _counting_send(self, request, **kwargs):
    HTTP_REQUESTS["n"] += 1
    return _send(self, request, **kwargs)


def seed_history(server: LocalServer, api: RawApi, count: int) -> None:
    """``count`` completed tasks, stored directly (the set-up, not the system under test)."""
    template_id = api.call("tasks.create", name="template", type="training")["id"]
    template = copy.deepcopy(server.store.get("tasks", template_id))
    server.store.delete("tasks", template_id)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    step = timedelta(days=30) / count
    with server.store.lock:
        for i in range(count):
            when = (start + i * step).isoformat(timespec="microseconds")
            doc = copy.deepcopy(template)
            doc.update(id=uuid.uuid4().hex, name=f"history {i}", status="completed", status_changed=when,
                       started=when, completed=when, last_update=when, last_change=when)
            server.store.save("tasks", doc)


def complete_new(api: RawApi, count: int) -> list[str]:
    ids = []
    for i in range(count):
        task_id = api.call("tasks.create", name=f"new {i}", type="training")["id"]
        api.call("tasks.started", task=task_id)
        api.call("tasks.completed", task=task_id)
        ids.append(task_id)
    return ids


class Ticker:
    """Evaluates ticks like the daemon: a fresh resource per tick, partitions applied to the instance."""

    def __init__(self, server: LocalServer, instance: dg.DagsterInstance, home: Path):
        self.server, self.instance, self.home = server, instance, home
        self.sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
        self.sensor_parts = clearml_task_partitions(ACCOUNT).name
        self.cursor: str | None = None

    def tick(self):
        resource = ClearMLResource.for_local_server(self.server.info, home=str(self.home), account=ACCOUNT)
        defs = dg.Definitions.merge(build_archive_defs([ACCOUNT]),
                                    dg.Definitions(sensors=[self.sensor], resources={"clearml": resource}))
        context = dg.build_sensor_context(instance=self.instance, instance_ref=self.instance.get_ref(),
                                          cursor=self.cursor, resources={"clearml": resource}, definitions=defs)
        before = HTTP_REQUESTS["n"]
        started = time.perf_counter()
        data = self.sensor.evaluate_tick(context)
        seconds = time.perf_counter() - started
        for request in data.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = data.cursor or self.cursor
        return data, HTTP_REQUESTS["n"] - before, seconds

    def until_idle(self, max_ticks: int = 100):
        """Ticks until one requests nothing; returns (task ids archived by the runs requested, ticks, slowest)."""
        keys, ticks, worst = [], 0, 0.0
        for _ in range(max_ticks):
            data, _, seconds = self.tick()
            worst = max(worst, seconds)
            if not data.run_requests:
                return keys, ticks, worst
            keys += self.archived(data.run_requests)
            ticks += 1
        raise SystemExit("the sensor never caught up")

    def archived(self, run_requests) -> list[str]:
        """The task ids the run requests archive (a partition, or each partition of a range)."""
        order = self.instance.get_dynamic_partitions(self.sensor_parts)
        where = {key: i for i, key in enumerate(order)}
        out = []
        for request in run_requests:
            if request.partition_key:
                out.append(request.partition_key)
            else:
                out += order[where[request.tags[PARTITION_RANGE_START_TAG]]:
                             where[request.tags[PARTITION_RANGE_END_TAG]] + 1]
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000, help="completed tasks already on the server")
    parser.add_argument("--new", type=int, default=500, help="tasks completed after the sensor caught up")
    args = parser.parse_args()
    requests.Session.send = _counting_send
    ok = True
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        server = LocalServer(Path(tmp) / "server", api_port=0, files_port=0).start()
        try:
            api = RawApi(server.info)
            t0 = time.perf_counter()
            seed_history(server, api, args.tasks)
            print(f"seeded {args.tasks} completed tasks in {time.perf_counter() - t0:.1f} s")
            ticker = Ticker(server, instance, Path(tmp) / "home")

            t0 = time.perf_counter()
            keys, ticks, worst = ticker.until_idle()
            print(f"initial catch-up: {len(keys)} tasks in {ticks} tick(s), {time.perf_counter() - t0:.1f} s, "
                  f"slowest tick {worst:.2f} s")
            ok &= len(keys) == len(set(keys)) == args.tasks

            idle = [ticker.tick() for _ in range(5)]
            calls = max(c for _, c, _ in idle)
            seconds = sorted(s for _, _, s in idle)[len(idle) // 2]
            print(f"idle tick over {args.tasks} tasks: {calls} HTTP requests (target <= 3), "
                  f"median {seconds * 1000:.0f} ms (target <= 1000 ms)")
            ok &= calls <= 3 and seconds <= 1.0 and all(not d.run_requests for d, _, _ in idle)

            t0 = time.perf_counter()
            new_ids = complete_new(api, args.new)
            print(f"completed {args.new} new tasks through REST in {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            keys, ticks, worst = ticker.until_idle()
            found = set(keys)
            print(f"new tasks: {len(keys)} archived by the runs requested ({len(found & set(new_ids))}/{args.new} new ids, "
                  f"{len(keys) - len(set(keys))} repeated) in {ticks} tick(s), {time.perf_counter() - t0:.1f} s, "
                  f"slowest tick {worst:.2f} s (Dagster's timeout 60 s)")
            ok &= found == set(new_ids) and len(keys) == len(set(keys)) == args.new and worst < 30
        finally:
            server.stop()
    print("OK" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
