"""Local server events at scale: 1,000,000 scalar points and 1,000,000 log lines in, all paged back out.

Run: ``python benchmarks/events_paging.py [--points N]``; prints insert and paging rates and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import requests

from clearml_assets.local_server import LocalServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    n = parser.parse_args().points
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp), api_port=0, files_port=0)
        server.start()
        info = server.info
        s = requests.Session()
        token = s.get(f"{info.api_host}/auth.login", auth=(info.access_key, info.secret_key)).json()["data"]["token"]
        s.headers["Authorization"] = f"Bearer {token}"

        def call(endpoint: str, **body):
            r = s.post(f"{info.api_host}/v2.23/{endpoint}", json=body, timeout=600)
            assert r.status_code == 200, r.text[:300]
            return r.json()["data"]

        task = call("tasks.create", name="bench", type="training")["id"]
        started = time.monotonic()
        for start in range(0, n, 50_000):
            lines = "\n".join(json.dumps({"type": "training_stats_scalar", "task": task, "iter": i // 2,
                                          "metric": "loss", "variant": f"v{i % 2}", "value": i * 0.5,
                                          "timestamp": 1_700_000_000_000 + i}) for i in range(start, min(n, start + 50_000)))
            r = s.post(f"{info.api_host}/v2.23/events.add_batch", data=lines,
                       headers={"Content-Type": "application/json-lines"}, timeout=600)
            assert r.status_code == 200, r.text[:300]
        insert_s = time.monotonic() - started
        started = time.monotonic()
        got, scroll = 0, None
        while True:
            # the real endpoint needs task and metric on every call, the scroll id only positions it
            body = {"task": task, "metric": {"metric": "loss"}, "batch_size": 100_000}
            body.update({"scroll_id": scroll} if scroll else {"count_total": True})
            data = call("events.scalar_metrics_iter_raw", **body)
            if not data["returned"]:
                break
            got += data["returned"]
            scroll = data["scroll_id"]
        raw_s = time.monotonic() - started
        assert got == n, (got, n)
        started = time.monotonic()
        events_got, scroll = 0, None
        while True:  # the archive's way: scalar events with their timestamps, 10,000 a page (the real cap)
            body = {"task": task, "event_type": "training_stats_scalar", "metrics": [{"metric": "loss"}],
                    "batch_size": 10_000, "order": "asc"}
            if scroll:
                body["scroll_id"] = scroll
            data = call("events.get_task_events", **body)
            if not data["events"]:
                break
            events_got += len(data["events"])
            scroll = data["scroll_id"]
            if events_got >= data["total"]:
                break
        events_s = time.monotonic() - started
        assert events_got == n, (events_got, n)
        started = time.monotonic()
        for start in range(0, n, 50_000):
            lines = "\n".join(json.dumps({"type": "log", "task": task, "msg": f"line {i}", "level": "info",
                                          "timestamp": 1_700_000_000_000 + i // 3}) for i in range(start, min(n, start + 50_000)))
            s.post(f"{info.api_host}/v2.23/events.add_batch", data=lines,
                   headers={"Content-Type": "application/json-lines"}, timeout=600).raise_for_status()
        log_insert_s = time.monotonic() - started
        started = time.monotonic()
        lines_got, from_ts = 0, None
        while True:
            body = {"task": task, "batch_size": 5_000, "navigate_earlier": False}
            if from_ts is not None:
                body["from_timestamp"] = from_ts
            events = call("events.get_task_log", **body)["events"]
            if not events:
                break
            lines_got += len(events)
            from_ts = events[-1]["timestamp"]
        log_s = time.monotonic() - started
        assert lines_got == n, (lines_got, n)
        server.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scalars: insert {n / insert_s:,.0f}/s ({insert_s:.1f} s), iter_raw paging {n / raw_s:,.0f}/s ({raw_s:.1f} s), "
          f"get_task_events paging {n / events_s:,.0f}/s ({events_s:.1f} s)")
    print(f"logs:    insert {n / log_insert_s:,.0f}/s ({log_insert_s:.1f} s), get_task_log paging {n / log_s:,.0f}/s "
          f"({log_s:.1f} s)")
    print(f"peak RSS {rss_mb:.0f} MiB for {n:,} + {n:,} events")


if __name__ == "__main__":
    main()
