"""Plots and debug images: ``events.get_task_plots``, ``get_multi_task_plots``, ``plots``, ``debug_images``.

``plots``/``debug_images`` follow the real ``MetricEventsIterator``: per task, ``iters`` iterations at a
time (newest first on the first call, then earlier or later by ``navigate_earlier``), one event per
metric/variant per iteration; debug images whose URL was recycled by a later iteration are hidden.
The real server keeps that state in Redis under the scroll id; here the scroll id carries it.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Callable

from ..events_store import count, decode_scroll, encode_scroll, metric_clause
from ..registry import ApiError, Call, bad_request, missing_field
from .common import ids_of

IMAGE, PLOT = "training_debug_image", "plot"


def _task_metrics(request_metrics: Any) -> dict[str, dict[str, list]]:
    """``[{task, metric?, variants?}]`` as ``{task: {metric: variants}}`` (``{}`` = every metric)."""
    if not isinstance(request_metrics, list) or not request_metrics:
        raise bad_request("Validation error (metrics: at least one item is required)")
    out: dict[str, dict[str, list]] = {}
    any_metric: set[str] = set()
    for item in request_metrics:
        if not isinstance(item, dict) or not item.get("task"):
            raise missing_field("metrics.task")
        out.setdefault(item["task"], {})
        if item.get("metric") is None:
            any_metric.add(item["task"])
        else:
            out[item["task"]][item["metric"]] = list(item.get("variants") or [])
    for task in any_metric:
        out[task] = {}
    return out


def _init_task_state(call: Call, event_type: str, task: str, metrics: dict[str, list]) -> dict:
    """Metrics and variants with events now; for images each variant's last recycled-URL iteration."""
    mclause, margs = metric_clause(metrics)
    conn = call.store.reader()
    where = f"company=? AND task=? AND type=? AND model_event=?{mclause}"
    args = [call.company, task, event_type, int(call.data.get("model_events", False)), *margs]
    if event_type == IMAGE:
        where += " AND json_extract(body, '$.url') IS NOT NULL"
    state: dict[str, dict[str, Any]] = {}
    for metric, variant in conn.execute(f"SELECT DISTINCT metric, variant FROM events WHERE {where} "
                                        "ORDER BY metric, variant", args):
        invalid = None
        if event_type == IMAGE:
            top = conn.execute(f"SELECT json_extract(body, '$.url') u, MAX(iter) m FROM events WHERE {where} "
                               "AND metric=? AND variant=? GROUP BY u ORDER BY m DESC LIMIT 1",
                               [*args, metric, variant]).fetchone()
            iters = conn.execute(f"SELECT iter FROM events WHERE {where} AND metric=? AND variant=? "
                                 "AND json_extract(body, '$.url')=? ORDER BY iter DESC LIMIT 2",
                                 [*args, metric, variant, top[0]]).fetchall()
            invalid = iters[1][0] if len(iters) > 1 else None
        state.setdefault(metric, {})[variant] = invalid
    return {"task": task, "metrics": state, "min": None, "max": None}


def _task_iterations(call: Call, event_type: str, task_state: dict, iters: int, earlier: bool) -> list[dict]:
    if not task_state["metrics"]:
        return []
    if task_state["max"] is None:
        earlier = True  # the first fetch is always from the latest iteration back
    metrics = list(task_state["metrics"])
    where = (f"company=? AND task=? AND type=? AND model_event=? AND metric IN ({','.join('?' * len(metrics))})")
    args: list = [call.company, task_state["task"], event_type, int(call.data.get("model_events", False)), *metrics]
    if event_type == IMAGE:
        where += " AND json_extract(body, '$.url') IS NOT NULL"
    if earlier and task_state["min"] is not None:
        where += " AND iter < ?"
        args.append(task_state["min"])
    elif not earlier and task_state["max"] is not None:
        where += " AND iter > ?"
        args.append(task_state["max"])
    conn = call.store.reader()
    its = [r[0] for r in conn.execute(f"SELECT DISTINCT iter FROM events WHERE {where} ORDER BY iter "
                                      f"{'DESC' if earlier else 'ASC'} LIMIT ?", args + [iters])]
    iterations = []
    for it in sorted(its, reverse=True):
        best: dict[tuple[str, str], dict] = {}
        for (body,) in conn.execute(f"SELECT body FROM events WHERE {where} AND iter=? ORDER BY seq", args + [it]):
            ev = json.loads(body)
            key = (ev.get("metric"), ev.get("variant"))
            rank = str(ev.get("url")) if event_type == IMAGE else ev.get("timestamp", 0)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, ev)
        events = []
        for (metric, variant), (_, ev) in sorted(best.items()):
            variants = task_state["metrics"].get(metric, {})
            if variant not in variants:
                continue  # variants that appeared after the state was made wait for a refresh
            invalid = variants[variant]
            if invalid is None or it > invalid:
                events.append(ev)
        if events:
            iterations.append({"iter": it, "events": events})
    if iterations:
        task_state["max"], task_state["min"] = iterations[0]["iter"], iterations[-1]["iter"]
    return iterations


def metric_events(call: Call, event_type: str, entity: Callable) -> dict:
    """The body of ``events.debug_images`` / ``events.plots`` (2.23 ``MetricEventsRequest``)."""
    data = call.data
    task_metrics = _task_metrics(data.get("metrics"))
    for task in task_metrics:
        entity(call, task, bool(data.get("model_events")))
    iters = data.get("iters", 1)
    if not isinstance(iters, int) or iters < 1:
        raise bad_request(f"Validation error (iters must be at least 1): {iters!r}")
    state = decode_scroll(data["scroll_id"]) if data.get("scroll_id") else None
    if state is None or data.get("refresh") or {t["task"] for t in state["tasks"]} != set(task_metrics):
        state = {"tasks": [_init_task_state(call, event_type, t, m) for t, m in task_metrics.items()]}
    earlier = bool(data.get("navigate_earlier", True))
    out = [{"task": t["task"], "iterations": _task_iterations(call, event_type, t, iters, earlier)}
           for t in state["tasks"]]
    return {"metrics": out, "scroll_id": encode_scroll(state)}


def _plot_rows(call: Call, task_ids: list[str], where_extra: str, args_extra: list, iters: int,
               partition: str) -> list[dict]:
    conn = call.store.reader()
    marks = ",".join("?" * len(task_ids))
    rows = conn.execute(
        f"SELECT body FROM (SELECT body, metric, variant, iter, seq, ROW_NUMBER() OVER (PARTITION BY {partition} "
        f"ORDER BY iter DESC, seq DESC) AS n FROM events WHERE company=? AND task IN ({marks}) AND type='plot' "
        f"{where_extra}) WHERE n <= ? ORDER BY metric, variant, iter DESC, seq DESC",
        [call.company, *task_ids, *args_extra, iters])
    return [json.loads(r[0]) for r in rows]


def register_iterators(events_endpoint: Callable, entity: Callable) -> None:
    """Register the plot and debug image endpoints (called by ``services.events``)."""

    @events_endpoint("events.debug_images")
    def debug_images(call: Call) -> dict:
        """Debug images per task, ``iters`` iterations a call, scrolled by ``scroll_id``."""
        return metric_events(call, IMAGE, entity)

    @events_endpoint("events.plots")
    def plots(call: Call) -> dict:
        """Plots per task, ``iters`` iterations a call, scrolled by ``scroll_id``."""
        return metric_events(call, PLOT, entity)

    @events_endpoint("events.get_task_plots")
    def get_task_plots(call: Call) -> dict:
        """The ``iters`` (default 1) latest plot events of every metric/variant of a task, in one response."""
        task_id = call.require("task")
        model_events = bool(call.data.get("model_events"))
        entity(call, task_id, model_events)
        iters = call.data.get("iters") or 1
        mclause, margs = metric_clause(call.data.get("metrics"))
        events = _plot_rows(call, [task_id], f"AND model_event=?{mclause}", [int(model_events), *margs], iters,
                            "metric, variant")
        return {"plots": events, "returned": len(events), "total": len(events), "scroll_id": None}

    @events_endpoint("events.get_multi_task_plots")
    def get_multi_task_plots(call: Call) -> dict:
        """Latest plots of several tasks as ``{metric: {variant: {task: {iter: {name, plots}}}}}``."""
        data = call.data
        model_events = bool(data.get("model_events"))
        task_ids = ids_of(call.require("tasks"))
        if not task_ids:
            raise bad_request("Validation error (tasks: at least one item is required)")
        names = {t: entity(call, t, model_events).get("name") for t in task_ids}
        iters = data.get("iters") or 1
        per_metric = data.get("last_iters_per_task_metric", True)
        mclause, margs = metric_clause(data.get("metrics"))
        conn = call.store.reader()
        marks = ",".join("?" * len(task_ids))
        group = "task, metric" if per_metric else "task"
        where = (f"company=? AND task IN ({marks}) AND type='plot' AND model_event=?{mclause} AND (task, "
                 f"{'metric, ' if per_metric else ''}iter) IN (SELECT {group}, iter FROM (SELECT {group}, iter, "
                 f"DENSE_RANK() OVER (PARTITION BY {group} ORDER BY iter DESC) AS r FROM events WHERE company=? "
                 f"AND task IN ({marks}) AND type='plot' AND model_event=?{mclause}) WHERE r <= ?)")
        args = [call.company, *task_ids, int(model_events), *margs, call.company, *task_ids, int(model_events),
                *margs, iters]
        state = decode_scroll(data["scroll_id"]) if data.get("scroll_id") else {}
        if state.get("done"):
            return {"plots": {}, "returned": 0, "total": 0, "scroll_id": data["scroll_id"]}
        sql = f"SELECT body, iter, seq FROM events WHERE {where}"
        qargs = list(args)
        if state.get("after"):
            sql += " AND (iter, seq) < (?, ?)"
            qargs += state["after"]
        rows = conn.execute(sql + " ORDER BY iter DESC, seq DESC LIMIT 1000", qargs).fetchall()
        events = [json.loads(r[0]) for r in rows]
        grouped = _group_top_events(events, iters, names)
        if data.get("no_scroll"):
            scroll = None
        else:
            scroll = encode_scroll({"after": [rows[-1][1], rows[-1][2]]} if rows else {"done": True})
        return {"plots": grouped, "returned": len(grouped), "total": count(conn, where, args), "scroll_id": scroll}

    @events_endpoint("events.get_debug_image_sample")
    def get_debug_image_sample(call: Call) -> dict:
        """The debug image of a task/metric/variant at ``iteration`` (default: the latest)."""
        task_id, metric, variant = call.require("task"), call.require("metric"), call.require("variant")
        entity(call, task_id, bool(call.data.get("model_events")))
        conn = call.store.reader()
        where = "company=? AND task=? AND type=? AND metric=? AND variant=?"
        args = [call.company, task_id, IMAGE, metric, variant]
        lo, hi = conn.execute(f"SELECT MIN(iter), MAX(iter) FROM events WHERE {where}", args).fetchone()
        sql = f"SELECT body FROM events WHERE {where}"
        qargs = list(args)
        if call.data.get("iteration") is not None:
            sql += " AND iter=?"
            qargs.append(int(call.data["iteration"]))
        row = conn.execute(sql + " ORDER BY iter DESC, json_extract(body, '$.url') DESC LIMIT 1", qargs).fetchone()
        if row is None and call.data.get("iteration") is not None:
            raise ApiError(400, 12, f"Validation error (no debug image for iteration {call.data['iteration']})")
        return {"scroll_id": encode_scroll({"task": task_id, "metric": metric, "variant": variant}),
                "event": json.loads(row[0]) if row else None, "min_iteration": lo, "max_iteration": hi}


def _group_top_events(events: list[dict], max_iters: int, names: dict[str, str]) -> dict:
    """As the real ``_get_top_iter_unique_events_per_task``: top ``max_iters`` per metric/variant/task."""
    fields = ("metric", "variant", "task")

    def key(ev: dict, names_: tuple) -> tuple:
        return tuple(ev.get(f) for f in names_)

    top = itertools.chain.from_iterable(
        itertools.islice(group, max_iters)
        for _, group in itertools.groupby(sorted(events, key=lambda e: key(e, fields + ("iter",)), reverse=True),
                                          key=lambda e: key(e, fields)))
    out: dict = {}
    for ev in sorted(top, key=lambda e: key(e, fields + ("iter",)), reverse=True):
        leaf = out.setdefault(str(ev["metric"]), {}).setdefault(str(ev["variant"]), {}).setdefault(
            str(ev["task"]), {}).setdefault(str(ev["iter"]), {"name": names.get(ev["task"]), "plots": []})
        leaf["plots"].append(ev)
    return out
