"""Metric summaries (clearml-server ``bll/event/event_metrics.py``): scalar histograms sampled as
Elasticsearch's, metric and variant names, vectors, single values, the latest values."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from ...core import ApiError, Call
from ...core.constants import SINGLE_VALUE_ITER
from ...store.event_rows import metric_clause
from .event_common import (MAX_AGGS_ELEMENTS, MAX_METRICS, MAX_SAMPLE_BUCKETS, MAX_VARIANTS, metric_variants, target,
                           targets)


def _floor_to(col: str, interval: int) -> str:
    return col if interval == 1 else f"({col} - ((({col} % {interval}) + {interval}) % {interval}))"


def scalar_histogram(call: Call, task_id: str, company: str, samples: int, key: str, metrics: Any) -> dict:
    """``{metric: {variant: {name, x, y}}}`` averaged into at most ``samples`` buckets per series; single values
    left out. Buckets and 32-bit averages as Elasticsearch's histogram."""
    column = "iter" if key == "iter" else "ts"
    mclause, margs = metric_clause(metric_variants(metrics))
    where = (f"company=? AND task=? AND type='training_stats_scalar' AND iter > {SINGLE_VALUE_ITER}" + mclause)
    args = [company, task_id, *margs]
    conn = call.store.reader()
    intervals = []
    for metric, variant, n, lo, hi in conn.execute(
            f"SELECT metric, variant, COUNT(*), MIN({column}), MAX({column}) FROM events WHERE {where} "
            "GROUP BY metric, variant ORDER BY metric, variant", args):
        if n < samples:
            intervals.append((metric, variant, 1, n))
        else:
            interval = max(1, math.ceil((hi - lo + 1) / samples))
            intervals.append((metric, variant, interval, math.ceil((hi - lo + 1) / interval)))
    result: dict[str, dict[str, dict]] = {}
    for interval, members in _interval_groups(intervals):
        for metric, variant in members:
            bucket = _floor_to(column, interval)
            rows = conn.execute(f"SELECT {bucket}, AVG(value) FROM events WHERE {where} AND metric=? AND variant=? "
                                f"GROUP BY 1 ORDER BY 1", [*args, metric, variant]).fetchall()
            xs: list = [r[0] for r in rows]
            if key == "iso_time":
                xs = [datetime.fromtimestamp(x / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                      for x in xs]
            result.setdefault(metric, {})[variant] = {"name": variant, "x": xs, "y": [r[1] for r in rows]}
    return {m: dict(sorted(v.items())) for m, v in sorted(result.items())}


def with_x_axis_labels(histogram: dict, doc: dict | None) -> dict:
    """The histogram with each series' ``x_axis_label`` (from its task's or model's ``last_metrics``), as the real
    ``get_scalar_metrics_average_per_iter`` after 1.9.2."""
    labels = {(v.get("metric"), v.get("variant")): v["x_axis_label"]
              for variants in ((doc or {}).get("last_metrics") or {}).values() for v in variants.values()
              if isinstance(v, dict) and v.get("x_axis_label") is not None}
    for metric, variants in histogram.items():
        for variant, data in variants.items():
            if (metric, variant) in labels:
                data["x_axis_label"] = labels[(metric, variant)]
    return histogram


def _interval_groups(intervals: list[tuple]) -> list[tuple[int, list[tuple[str, str]]]]:
    """Series sharing one histogram interval (within 10%), as the real ``_group_task_metric_intervals``."""
    groups, group, upper, group_max, group_samples = [], [], 0, 0, 0
    for metric, variant, interval, size in sorted(intervals, key=lambda i: i[2]):
        if interval > upper or group_samples + size > MAX_SAMPLE_BUCKETS or len(group) >= MAX_AGGS_ELEMENTS:
            if group:
                groups.append((group_max, group))
                group = []
            group_max, upper, group_samples = interval, interval + int(interval * 0.1), 0
        group.append((metric, variant))
        group_samples += size
        group_max = max(group_max, interval)
    if group:
        groups.append((group_max, group))
    return groups


def multi_task_histogram(call: Call, task_ids: list[str], samples: int, key: str, model_events: bool,
                         metrics: Any = None) -> dict:
    """``{metric: {variant: {task: {name: task name, x, y}}}}`` over the tasks."""
    docs = targets(call, task_ids, model_events)
    out: dict[str, dict[str, dict]] = {}
    for task_id, (doc, company) in docs.items():
        for metric, variants in scalar_histogram(call, task_id, company, samples, key, metrics).items():
            for variant, data in variants.items():
                out.setdefault(metric, {}).setdefault(variant, {})[task_id] = {**data, "name": doc.get("name")}
    return out


def metrics_and_variants(call: Call, task_id: str, event_type: str, model_events: bool) -> dict:
    """``{metric: [variants]}`` of one event type (100 metrics, 100 variants each, sorted)."""
    _, company = target(call, task_id, model_events)
    metrics: dict[str, list[str]] = {}
    for metric, variant in call.store.reader().execute(
            "SELECT DISTINCT metric, variant FROM events WHERE company=? AND task=? AND type=? "
            "ORDER BY metric, variant", (company, task_id, event_type)):
        if metric in metrics or len(metrics) < MAX_METRICS:
            variants = metrics.setdefault(metric, [])
            if len(variants) < MAX_VARIANTS:
                variants.append(variant)
    return metrics


def vector_histogram(call: Call, task_id: str, metric: str, variant: str, model_events: bool) -> dict:
    """Vectors of one metric/variant by iteration (the first 10,000)."""
    _, company = target(call, task_id, model_events)
    rows = call.store.reader().execute(
        "SELECT iter, body FROM events WHERE company=? AND task=? AND type='training_stats_vector' AND metric=? "
        "AND variant=? ORDER BY iter, seq LIMIT 10000", (company, task_id, metric, variant)).fetchall()
    return {"metric": metric, "variant": variant, "vectors": [json.loads(b).get("value") for _, b in rows],
            "iterations": [i for i, _ in rows]}


def task_metrics(call: Call, task_ids: list[str], event_type: str, model_events: bool) -> list[dict]:
    """Metric names (sorted, at most 8,000) of each task for one event type (``*``: any)."""
    docs = targets(call, task_ids, model_events)
    out = []
    for task_id, (_, company) in docs.items():
        # the real query: iteration above the single-value one (events without an iteration are left out too)
        sql = f"SELECT DISTINCT metric FROM events WHERE company=? AND task=? AND iter > {SINGLE_VALUE_ITER}"
        args: list = [company, task_id]
        if event_type != "*":
            sql += " AND type=?"
            args.append(event_type)
        rows = call.store.reader().execute(sql + " ORDER BY metric LIMIT 8000", args)
        out.append({"task": task_id, "metrics": [r[0] for r in rows]})
    return out


def multi_task_metrics(call: Call, task_ids: list[str], event_type: str | None, model_events: bool) -> list[dict]:
    """``[{metric, variants}]`` reported by any of the tasks (sorted)."""
    found = []
    for task_id in task_ids:
        try:
            found.append((task_id, target(call, task_id, model_events)[1]))
        except ApiError:
            continue
    if not found:
        return []
    sql = "SELECT DISTINCT metric, variant FROM events WHERE " + " OR ".join("(company=? AND task=?)" for _ in found)
    args: list = [v for pair in found for v in (pair[1], pair[0])]
    sql = f"SELECT * FROM ({sql})"
    if event_type and event_type != "*":
        sql = sql.replace(" WHERE ", " WHERE type=? AND (", 1) + ")"
        args.insert(0, event_type)
    metrics: dict[str, list[str]] = {}
    for metric, variant in call.store.reader().execute(sql + " ORDER BY metric, variant", args):
        metrics.setdefault(metric, []).append(variant)
    return [{"metric": m, "variants": v} for m, v in metrics.items()]


def single_value_metrics(call: Call, task_ids: list[str], model_events: bool, metrics: Any = None) -> list[dict]:
    """Single values (iteration -2^31) of the tasks that have any (``metrics``: the later APIs' filter)."""
    docs = targets(call, task_ids, model_events)
    mclause, margs = metric_clause(metric_variants(metrics))
    out = []
    for task_id, (doc, company) in docs.items():
        rows = call.store.reader().execute(
            "SELECT body FROM events WHERE company=? AND task=? AND type='training_stats_scalar' AND iter=?"
            f"{mclause} ORDER BY seq LIMIT 10000", [company, task_id, SINGLE_VALUE_ITER, *margs])
        values = [{k: ev.get(k) for k in ("metric", "variant", "value", "timestamp")}
                  for ev in (json.loads(r[0]) for r in rows)]
        if values:
            out.append({"task": task_id, "task_name": doc.get("name"), "values": values})
    return out


def latest_scalar_values(call: Call, task_id: str) -> dict:
    """Per metric/variant the value of the highest iteration (of the events with a value > 0, as the real
    query), plus the task's last iteration, name, status and last event write time."""
    doc, company = target(call, task_id)
    conn = call.store.reader()
    metrics: dict[str, list] = {}
    last_ts = 0
    for metric, variant, value, written in conn.execute(
            "SELECT metric, variant, value, (SELECT MAX(json_extract(body, '$.\"@timestamp\"')) FROM events b "
            "WHERE b.company=e.company AND b.task=e.task AND b.type=e.type AND b.metric=e.metric "
            "AND b.variant=e.variant AND b.value > 0) FROM events e WHERE company=? AND task=? "
            "AND type='training_stats_scalar' AND value > 0 AND seq = (SELECT seq FROM events x WHERE "
            "x.company=e.company AND x.task=e.task AND x.type=e.type AND x.metric=e.metric AND x.variant=e.variant "
            "AND x.value > 0 ORDER BY iter DESC, seq DESC LIMIT 1) ORDER BY metric, variant", (company, task_id)):
        metrics.setdefault(metric, []).append({"name": variant, "last_value": value, "last_10_value": value})
        if written:
            stamp = datetime.strptime(written, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            last_ts = max(last_ts, int(stamp.timestamp() * 1000))
    last_iter = conn.execute("SELECT MAX(iter) FROM events WHERE company=? AND task=?",
                             (company, task_id)).fetchone()[0]
    return {"metrics": [{"name": m, "variants": v} for m, v in metrics.items()], "last_iter": last_iter or 0,
            "name": doc.get("name"), "status": doc.get("status"), "last_timestamp": last_ts}
