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


def update_model_stats(call: Call, model_ids: set[str], iters: dict[str, int],
                       scalars: dict[str, list[dict]]) -> None:
    """A model's ``last_iteration`` (max), ``last_metrics`` and update times from its events, as the real
    ``ModelBLL.update_statistics`` (after 1.9.2, whose model events left the model as it was)."""
    for doc in _with_batch(call, "models", model_ids, iters, scalars):
        doc["last_change"] = doc["last_update"]
        doc["last_changed_by"] = call.user


def update_task_stats(call: Call, task_ids: set[str], iters: dict[str, int], scalars: dict[str, list[dict]],
                      stats: dict[str, dict[str, dict[str, int]]]) -> None:
    """``last_iteration`` (max), ``last_metrics``, ``metric_stats`` and ``last_update`` as
    ``TaskBLL.update_statistics`` (``metric_stats`` is replaced by the batch's, as the real update does)."""
    for doc in _with_batch(call, "tasks", task_ids, iters, scalars):
        if stats.get(doc["id"]):
            doc["metric_stats"] = {
                field_hash(metric): {"metric": metric, "event_stats_by_type": {
                    etype: {"last_update": ts} for etype, ts in types.items()}}
                for metric, types in stats[doc["id"]].items()}


def _with_batch(call: Call, collection: str, ids: set[str], iters: dict[str, int], scalars: dict[str, list[dict]]):
    """Each task (or model) of ``ids`` under the store lock with the batch's ``last_iteration``, ``last_metrics``
    and ``last_update`` applied; saved after the caller's own changes (a generator)."""
    with call.store.lock:
        for entity_id in ids:
            doc = call.store.get(collection, entity_id, call.company)
            if doc is None:
                continue
            if entity_id in iters:
                doc["last_iteration"] = max(doc.get("last_iteration") or 0, iters[entity_id])
            _merge_last_metrics(doc, _batch_last_scalars(scalars.get(entity_id, [])))
            doc["last_update"] = now_iso()
            yield doc
            call.store.save(collection, doc)


def _batch_last_scalars(events: list[dict]) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for ev in events:
        last = out.setdefault((ev["metric"], ev["variant"]), {"metric": ev["metric"], "variant": ev["variant"]})
        value, it, ts = ev["value"], ev.get("iter", 0), ev.get("timestamp", 0)
        last["count"] = last.get("count", 0) + 1
        last["total"] = last.get("total", 0) + value
        if (it, ts) >= (last.get("iter", it), last.get("timestamp", ts)):
            last.update(value=value, iter=it, timestamp=ts)
            if ev.get("x_axis_label") is not None:
                last["x_axis_label"] = ev["x_axis_label"]
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
    before = {key: set(variants) for key, variants in metrics.items()}
    unique = list(doc.get("unique_metrics") or [])
    for (metric, variant), data in batch.items():
        name = f"{metric}/{variant}"
        if name not in unique:
            if len(unique) >= MAX_UNIQUE_METRICS:
                continue
            unique.append(name)
        stored = metrics.setdefault(field_hash(metric), {}).setdefault(field_hash(variant), {})
        stored.update(metric=metric, variant=variant, value=data["value"])
        if data.get("x_axis_label") is not None:
            stored["x_axis_label"] = data["x_axis_label"]
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
    doc["last_metrics"] = _mongo_order(metrics, before)
    doc["unique_metrics"] = unique


def _mongo_order(metrics: dict, before: dict[str, set]) -> dict:
    """Fields in the order MongoDB (5.0+) leaves them: those there before first, new ones in lexicographic
    order of their (hashed) names, at both levels."""
    out = {}
    for key in [*[k for k in metrics if k in before], *sorted(k for k in metrics if k not in before)]:
        variants, old = metrics[key], before.get(key) or set()
        out[key] = {v: variants[v] for v in [*[v for v in variants if v in old],
                                             *sorted(v for v in variants if v not in old)]}
    return out
