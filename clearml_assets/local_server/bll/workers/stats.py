"""Worker machine statistics (clearml-server ``bll/workers/stats.py``; the real server keeps them in Elasticsearch).

Each ``workers.status_report`` with ``machine_stats`` adds a sample ``[timestamp ms, task, {key: value}]`` to the
worker's entry. 1.9.2 files them under the worker's key (``worker_<company>_<user>_<id>``) and answers series of
the buckets that hold data; later releases file them under the worker's id and answer date histograms over the
whole requested range (buckets of at least 40 s, empty ones 0, the incomplete last one left out), a GPU key split
per device on request (``resource_series``).
"""

from __future__ import annotations

import math
import time
from typing import Any

from ...core import ApiError, Call

STATS_KEPT = 20_000  # samples per worker
MIN_CHART_INTERVAL = 40  # services.workers.min_chart_interval_sec


def log_stats(call: Call, worker: dict, timestamp: int | None, task: str | None, stats: dict) -> None:
    """Add a status report's machine statistics to the worker's samples."""
    entry = call.store.get("worker_stats", worker["key"], call.company) or {
        "id": worker["key"], "company": call.company, "worker": worker["worker"], "samples": []}
    values = {k: v for k, v in stats.items() if v is not None}
    entry["samples"] = entry["samples"][-STATS_KEPT:] + [[int(timestamp or time.time() * 1000), task, values]]
    call.store.save("worker_stats", entry)


def _name(call: Call, entry: dict) -> str:
    """How a request names a worker's statistics: its key on 1.9.2, its id after."""
    return entry["worker"] if call.release.worker_stats_histograms else entry["id"]


def _entries(call: Call, wanted: list[str]) -> list[dict]:
    return [e for e in call.store.all("worker_stats", call.company) if not wanted or _name(call, e) in wanted]


def metric_keys(call: Call, wanted: list[str]) -> list[dict]:
    """The machine-stat keys the workers reported, by category (``cpu``: ``cpu_usage``, ...).

    Raises:
        ApiError: 400/1005 when none of the workers reported any.
    """
    keys = {k for entry in _entries(call, wanted) for _, _, values in entry["samples"] for k, v in values.items()
            if v or not call.release.worker_stats_histograms}
    if not keys:
        raise ApiError(400, 1005, f"Worker stats not found (worker_ids={wanted})")
    categories: dict[str, list[str]] = {}
    for key in sorted(keys):
        categories.setdefault(key.split("_", 1)[0], []).append(key)
    return [{"name": name, "metric_keys": names} for name, names in categories.items()]


def _documents(values: dict, key: str) -> list[tuple[str, float]]:
    """The Elasticsearch documents a sample's ``key`` became: ``(variant, value)`` per device, or ``total``."""
    value = values.get(key)
    if value is None or value == [] or value == 0:
        return []
    if isinstance(value, (list, tuple)):
        return [(str(i), float(v)) for i, v in enumerate(value)]
    return [("total", float(value))]


def _aggregate(values: list[float], how: str) -> float:
    if not values:
        return 0.0
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    return sum(values) / len(values)


def _bucket_keys(start: float, end: float, interval: int) -> list[int]:
    """Date-histogram keys (ms) over ``[start, end]`` (extended bounds), the incomplete last one left out."""
    step = interval * 1000
    first, last = math.floor(int(start) * 1000 / step) * step, math.floor(int(end) * 1000 / step) * step
    keys = list(range(first, last + 1, step))
    cutoff = (end - 0.9 * interval) * 1000
    while keys and keys[-1] >= cutoff:
        keys.pop()
    return keys


def worker_stats(call: Call, items: list[dict], start: float, end: float, interval: int, wanted: list[str],
                 split_by_resource: bool) -> list[dict]:
    """``workers.get_stats`` after 1.9.2: per worker, per key and aggregation, ``dates``, ``values`` (and
    ``resource_series`` of a GPU key's devices)."""
    if start >= end:
        raise ApiError(400, 12, "Validation error (from_date must be less than to_date)")
    interval = max(int(interval or 1), MIN_CHART_INTERVAL)
    keys = _bucket_keys(start, end, interval)
    out = []
    for entry in _entries(call, wanted):
        samples = [s for s in entry["samples"] if start * 1000 <= s[0] <= end * 1000]
        metrics: dict[str, list[dict]] = {}
        for item in items:
            key, how = item["key"], item.get("aggregation", "avg")
            step = interval * 1000
            docs = [(s[0] // step * step, d) for s in samples for d in _documents(s[2], key)]
            if docs:
                metrics.setdefault(key, []).append(_stat(docs, keys, how, split_by_resource and key.startswith("gpu_")))
        if metrics:
            out.append({"worker": _name(call, entry),
                        "metrics": [{"metric": k, "stats": v} for k, v in metrics.items()]})
    return out


def _stat(docs: list[tuple[int, tuple[str, float]]], keys: list[int], how: str, split: bool) -> dict:
    """One aggregation of one key over the buckets: ``values`` (0 where empty), and a series per device of a GPU
    key split by resource (when it has more than one)."""
    by_bucket: dict[int, list[float]] = {}
    by_device: dict[tuple[str, int], list[float]] = {}
    for bucket, (device, value) in docs:  # grouped once: O(documents + buckets), not their product
        by_bucket.setdefault(bucket, []).append(value)
        by_device.setdefault((device, bucket), []).append(value)
    stat = {"aggregation": how, "dates": keys, "resource_series": [],
            "values": [_aggregate(by_bucket.get(b, []), how) for b in keys]}
    devices = sorted({device for device, _ in by_device})
    if split and len(devices) > 1:
        stat["resource_series"] = [{"name": dev, "values": [_aggregate(by_device.get((dev, b), []), how)
                                                            for b in keys]} for dev in devices]
    return stat


def worker_stats_1_9_2(call: Call, items: list[dict], start: float, end: float, interval: int, wanted: list[str],
                       split_by_variant: bool) -> list[dict]:
    """``workers.get_stats`` of 1.9.2: per worker and key, the buckets that hold data (per list index with
    ``split_by_variant``)."""
    interval = max(1, int(interval or 1))
    by_key: dict[str, list[str]] = {}
    for item in items:
        by_key.setdefault(item["key"], []).append(item.get("aggregation", "avg"))
    workers = []
    for entry in _entries(call, wanted):
        samples = [s for s in entry["samples"] if start * 1000 <= s[0] <= end * 1000]
        if not samples:
            continue
        metrics = []
        for key, aggs in by_key.items():
            if split_by_variant:
                width = max((len(v[key]) for _, _, v in samples if isinstance(v.get(key), list)), default=0)
                metrics += [_series(samples, key, aggs, interval, i) for i in range(width)]
            else:
                metrics.append(_series(samples, key, aggs, interval, None))
        workers.append({"worker": entry["id"], "metrics": [m for m in metrics if m["dates"]]})
    return workers


def _series(samples: list, key: str, aggregations: list[str], interval: int, variant: int | None) -> dict:
    buckets: dict[int, list[float]] = {}
    for ts, _, values in samples:
        value = values.get(key)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if variant is not None:
            if variant >= len(items):
                continue
            items = [items[variant]]
        buckets.setdefault(int(ts // 1000 // interval * interval), []).extend(float(v) for v in items)
    dates = sorted(buckets)
    out: dict[str, Any] = {"metric": key, "dates": [d * 1000 for d in dates],
                           "stats": [{"aggregation": a, "values": [_aggregate(buckets[d], a) for d in dates]}
                                     for a in aggregations]}
    if variant is not None:
        out["variant"] = str(variant)
    return out


def activity_report(call: Call, start: float, end: float, interval: int) -> dict:
    """``workers.get_activity_report``: per bucket how many workers reported (``total``) and how many ran a task
    (``active``); after 1.9.2 over the whole range (buckets of at least 40 s, the last one left out, as the
    real server's comparison of milliseconds with seconds always does)."""
    newer = call.release.worker_stats_histograms
    interval = max(int(interval or 60), MIN_CHART_INTERVAL) if newer else max(1, int(interval or 60))
    if newer and start >= end:
        raise ApiError(400, 12, "Validation error (from_date must be less than to_date)")
    step = interval * 1000 if newer else interval
    total: dict[int, set] = {}
    active: dict[int, set] = {}
    for entry in call.store.all("worker_stats", call.company):
        for ts, task, _ in entry["samples"]:
            if start * 1000 <= ts <= end * 1000:
                bucket = int((ts if newer else ts // 1000) // step * step)
                total.setdefault(bucket, set()).add(entry["id"])
                if task:
                    active.setdefault(bucket, set()).add(entry["id"])
    if newer:
        first, last = math.floor(int(start) * 1000 / step) * step, math.floor(int(end) * 1000 / step) * step
        dates = list(range(first, last + 1, step))[:-1]
    else:
        dates = None
    return {"total": _counts(total, dates), "active": _counts(active, dates)}


def _counts(buckets: dict[int, set], dates: list[int] | None) -> dict:
    dates = sorted(buckets) if dates is None else dates
    return {"dates": dates, "counts": [len(buckets.get(d, ())) for d in dates]}


def count_workers(call: Call, workers: list[dict], last_seen: float | None, tags: list | None,
                  system_tags: list | None, pattern: str | None, tag_match, compile_pattern) -> int:
    """``workers.get_count`` (API 2.26): the live workers seen within ``last_seen`` seconds, by tags and id."""
    now = time.time()
    regex = compile_pattern(pattern, "worker_pattern") if pattern else None
    return sum(1 for w in workers
               if (not last_seen or w["last_activity_ts"] >= now - last_seen)
               and tag_match(w.get("tags") or [], tags) and tag_match(w.get("system_tags") or [], system_tags)
               and (regex is None or regex.search(w["worker"])))
