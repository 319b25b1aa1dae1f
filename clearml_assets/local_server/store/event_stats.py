"""The task statistics a batch of events updates, as the real ``TaskBLL.update_statistics``: ``last_iteration``,
``last_metrics`` (per metric and variant: last, first, min, max, mean, count), ``unique_metrics``,
``metric_stats`` and ``last_update``."""

from __future__ import annotations

import hashlib

from ..core import Call, now_iso

MAX_UNIQUE_METRICS = 2000


def field_hash(name: str) -> str:
    """The real server's ``hash_field_name`` (keys of ``last_metrics``)."""
    return hashlib.md5(name.encode("utf-8")).hexdigest()


def update_task_stats(call: Call, task_ids: set[str], iters: dict[str, int], scalars: dict[str, list[dict]],
                      stats: dict[str, dict[str, dict[str, int]]]) -> None:
    """``last_iteration`` (max), ``last_metrics``, ``metric_stats`` and ``last_update`` as
    ``TaskBLL.update_statistics`` (``metric_stats`` is replaced by the batch's, as the real update does)."""
    with call.store.lock:
        for task_id in task_ids:
            doc = call.store.get("tasks", task_id, call.company)
            if doc is None:
                continue
            if task_id in iters:
                doc["last_iteration"] = max(doc.get("last_iteration") or 0, iters[task_id])
            _merge_last_metrics(doc, _batch_last_scalars(scalars.get(task_id, [])))
            if stats.get(task_id):
                doc["metric_stats"] = {
                    field_hash(metric): {"metric": metric, "event_stats_by_type": {
                        etype: {"last_update": ts} for etype, ts in types.items()}}
                    for metric, types in stats[task_id].items()}
            doc["last_update"] = now_iso()
            call.store.save("tasks", doc)


def _batch_last_scalars(events: list[dict]) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for ev in events:
        last = out.setdefault((ev["metric"], ev["variant"]), {"metric": ev["metric"], "variant": ev["variant"]})
        value, it, ts = ev["value"], ev.get("iter", 0), ev.get("timestamp", 0)
        last["count"] = last.get("count", 0) + 1
        last["total"] = last.get("total", 0) + value
        if (it, ts) >= (last.get("iter", it), last.get("timestamp", ts)):
            last.update(value=value, iter=it, timestamp=ts)
        if last.get("first_value_iter") is None or it < last["first_value_iter"]:
            last.update(first_value=value, first_value_iter=it)
        if last.get("min_value") is None or value < last["min_value"]:
            last.update(min_value=value, min_value_iter=it)
        if last.get("max_value") is None or value > last["max_value"]:
            last.update(max_value=value, max_value_iter=it)
    return out


def _merge_last_metrics(doc: dict, batch: dict[tuple[str, str], dict]) -> None:
    if not batch:
        return
    metrics = doc.get("last_metrics") or {}
    unique = list(doc.get("unique_metrics") or [])
    for (metric, variant), data in batch.items():
        name = f"{metric}/{variant}"
        if name not in unique:
            if len(unique) >= MAX_UNIQUE_METRICS:
                continue
            unique.append(name)
        stored = metrics.setdefault(field_hash(metric), {}).setdefault(field_hash(variant), {})
        stored.update(metric=metric, variant=variant, value=data["value"])
        if stored.get("first_value") is None:
            stored.update(first_value=data["first_value"], first_value_iteration=data["first_value_iter"])
        if stored.get("min_value") is None or stored["min_value"] > data["min_value"]:
            stored.update(min_value=data["min_value"], min_value_iteration=data["min_value_iter"])
        if stored.get("max_value") is None or stored["max_value"] < data["max_value"]:
            stored.update(max_value=data["max_value"], max_value_iteration=data["max_value_iter"])
        count = stored.get("count") or 0
        stored["mean_value"] = round(((stored.get("mean_value") or 0) * count + data["total"])
                                     / (count + data["count"]), 2)
        stored["count"] = count + data["count"]
    doc["last_metrics"] = metrics
    doc["unique_metrics"] = unique
