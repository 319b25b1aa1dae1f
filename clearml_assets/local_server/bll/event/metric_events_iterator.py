"""``events.plots`` / ``events.debug_images``: the real ``MetricEventsIterator`` (clearml-server
``bll/event/metric_events_iterator.py``, API 2.23).

The scroll id names a state kept on the server (the real one keeps it in Redis for an hour): per task the metrics
and variants known when the state was made, for images the last iteration of a recycled URL, and the iterations
last returned. ``refresh`` re-reads the metrics the last event batch touched (the task's ``metric_stats``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, Optional

from ...core import ApiError, Call
from ...store.plots import PlotBudget
from .event_common import MAX_METRICS, MAX_VARIANTS, target

IMAGE, PLOT = "training_debug_image", "plot"
STATE_EXPIRATION_SEC = 3600  # services.events.events_retrieval.state_expiration_sec
MAX_ES_BUCKETS = 8000  # 10,000 aggregation buckets x dynamic_metrics_count_threshold 80%
TOP_HITS = 3  # Elasticsearch's default top_hits size
MAX_STATES = 10_000


class StateCache:
    """Scroll states by id, expiring like the real server's Redis keys (bounded in number)."""

    def __init__(self) -> None:
        self._states: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, kind: str, state_id: Optional[str]) -> Optional[dict]:
        if not state_id:
            return None
        with self._lock:
            found = self._states.get((kind, state_id))
            if found is None or found[0] < time.monotonic():
                return None
            return json.loads(found[1])

    def set(self, kind: str, state: dict) -> None:
        with self._lock:
            self._states[(kind, state["id"])] = (time.monotonic() + STATE_EXPIRATION_SEC, json.dumps(state))
            self._states.move_to_end((kind, state["id"]))
            while len(self._states) > MAX_STATES:
                self._states.popitem(last=False)

    def delete(self, state_id: str) -> None:
        with self._lock:
            for key in [k for k in self._states if k[1] == state_id]:
                del self._states[key]


STATES = StateCache()
METRIC_EVENTS_STATE = "MetricEventsScrollState"  # one state class for plots and debug images, as the real one
DEBUG_SAMPLE_STATE = "DebugImageSampleState"
PLOT_SAMPLE_STATE = "PlotsSampleState"


def new_state_id() -> str:
    return uuid.uuid4().hex


def invalid_scroll(state_id: Any, extra: str = "") -> ApiError:
    return ApiError(400, 1104, f"Invalid scroll id{f' ({extra})' if extra else ''}: scroll_id={state_id}")


def _metric_condition(metrics: dict[str, list]) -> tuple[str, list]:
    parts, args = [], []
    for metric, variants in metrics.items():
        if variants:
            parts.append(f"(metric=? AND variant IN ({','.join('?' * len(variants))}))")
            args += [metric, *variants]
        else:
            parts.append("metric=?")
            args.append(metric)
    return (" AND (" + " OR ".join(parts) + ")", args) if parts else ("", [])


class MetricEventsIterator:
    """The real ``MetricEventsIterator`` for one event type."""

    def __init__(self, event_type: str):
        self.event_type = event_type
        self.extra = " AND json_extract(body, '$.url') IS NOT NULL" if event_type == IMAGE else ""

    def get_task_events(self, call: Call, task_metrics: dict[str, dict[str, list]], companies: dict[str, str],
                        iters: int, navigate_earlier: bool, refresh: bool, state_id: Optional[str]) -> dict:
        state = STATES.get(METRIC_EVENTS_STATE, state_id)
        if state is None:
            state = {"id": new_state_id(), "tasks": self._init_task_states(call, companies, task_metrics)}
        elif refresh:
            self._reinit_outdated(call, companies, state, task_metrics)
        specific = any(v for metrics in task_metrics.values() if metrics for v in metrics.values())
        try:
            out = [self._task_metric_events(call, task_state, companies, iters, navigate_earlier, specific)
                   for task_state in state["tasks"]]
        finally:
            STATES.set(METRIC_EVENTS_STATE, state)
        return {"scroll_id": state["id"], "metrics": [{"task": t, "iterations": its} for t, its in out]}

    def _init_task_states(self, call: Call, companies: dict[str, str],
                          task_metrics: dict[str, dict[str, list]]) -> list[dict]:
        return [{"task": task, "metrics": self._init_metric_states(call, companies[task], task, metrics),
                 "last_min_iter": None, "last_max_iter": None} for task, metrics in task_metrics.items()]

    def _init_metric_states(self, call: Call, company: str, task: str, metrics: dict[str, list]) -> list[dict]:
        mclause, margs = _metric_condition(metrics)
        where = f"company=? AND task=? AND type=?{self.extra}{mclause}"
        args = [company, task, self.event_type, *margs]
        conn = call.store.reader()
        max_variants = MAX_VARIANTS // 2
        states: list[dict] = []
        for metric, ts in conn.execute(f"SELECT metric, MAX(ts) FROM events WHERE {where} GROUP BY metric "
                                       f"ORDER BY metric LIMIT ?", [*args, MAX_METRICS]).fetchall():
            variants = []
            for (variant,) in conn.execute(f"SELECT DISTINCT variant FROM events WHERE {where} AND metric=? "
                                           "ORDER BY variant LIMIT ?", [*args, metric, max_variants]).fetchall():
                variants.append({"variant": variant, "last_invalid_iteration": self._last_invalid_iteration(
                    conn, where, args, metric, variant)})
            states.append({"metric": metric, "timestamp": ts, "variants": variants})
        return states

    def _last_invalid_iteration(self, conn, where: str, args: list, metric: str, variant: str) -> Optional[int]:
        """Images: when the URL of the newest iteration was used before, the iteration before that one."""
        if self.event_type != IMAGE:
            return None
        top = conn.execute(f"SELECT json_extract(body, '$.url') u, MAX(iter) m FROM events WHERE {where} AND metric=? "
                           "AND variant=? GROUP BY u ORDER BY m DESC LIMIT 1", [*args, metric, variant]).fetchone()
        if top is None:
            return None
        iters = conn.execute(f"SELECT iter FROM events WHERE {where} AND metric=? AND variant=? "
                             "AND json_extract(body, '$.url')=? ORDER BY iter DESC LIMIT 2",
                             [*args, metric, variant, top[0]]).fetchall()
        return iters[1][0] if len(iters) > 1 else None

    def _reinit_outdated(self, call: Call, companies: dict[str, str], state: dict,
                         task_metrics: dict[str, dict[str, list]]) -> None:
        """Re-read the metrics whose last reported batch is newer than their state; restart every task."""
        recalc: dict[str, dict[str, list]] = {}
        for task_state in state["tasks"]:
            task = task_state["task"]
            if task not in task_metrics:
                continue
            with call.store.lock:
                doc = call.store.get("tasks", task) or {}
            requested = task_metrics[task]
            old = {m["metric"]: m for m in task_state["metrics"]}
            times = {s.get("metric"): s.get("event_stats_by_type", {}).get(self.event_type, {}).get("last_update")
                     for s in (doc.get("metric_stats") or {}).values()
                     if self.event_type in (s.get("event_stats_by_type") or {})
                     and (not requested or s.get("metric") in requested)}
            todo = {m: requested.get(m) for m, t in times.items()
                    if m not in old or (old[m].get("timestamp") or 0) < (t or 0)}
            if todo:
                recalc[task] = todo
        updated = {s["task"]: s for s in self._init_task_states(call, companies, recalc)}
        tasks = []
        for task_state in state["tasks"]:
            new = updated.get(task_state["task"])
            if new is None:
                task_state["last_min_iter"] = task_state["last_max_iter"] = None
                tasks.append(task_state)
                continue
            names = {m["metric"] for m in new["metrics"]}
            new["metrics"] = new["metrics"] + [m for m in task_state["metrics"] if m["metric"] not in names]
            tasks.append(new)
        state["tasks"] = tasks

    def _task_metric_events(self, call: Call, task_state: dict, companies: dict[str, str], iters: int,
                            navigate_earlier: bool, specific: bool) -> tuple[str, list]:
        task = task_state["task"]
        if not task_state["metrics"]:
            return task, []
        if task not in companies:  # the real companies[task_state.task] on a state made for other tasks
            raise ApiError(500, 0, f"'{task}'")
        if task_state["last_max_iter"] is None:
            navigate_earlier = True  # the first fetch is always from the latest iteration back
        metrics = [m["metric"] for m in task_state["metrics"]]
        where = f"company=? AND task=? AND type=?{self.extra} AND metric IN ({','.join('?' * len(metrics))})"
        args: list = [companies[task], task, self.event_type, *metrics]
        if navigate_earlier and task_state["last_min_iter"] is not None:
            where += " AND iter < ?"
            args.append(task_state["last_min_iter"])
        elif not navigate_earlier and task_state["last_max_iter"] is not None:
            where += " AND iter > ?"
            args.append(task_state["last_max_iter"])
        conn = call.store.reader()
        its = [r[0] for r in conn.execute(f"SELECT DISTINCT iter FROM events WHERE {where} AND iter IS NOT NULL "
                                          f"ORDER BY iter {'DESC' if navigate_earlier else 'ASC'} LIMIT ?",
                                          args + [iters])]
        max_variants = max(1, int(MAX_ES_BUCKETS / (len(metrics) * iters)))
        order = "json_extract(body, '$.url') DESC" if self.event_type == IMAGE else "ts DESC"
        invalid = {(m["metric"], v["variant"]): v.get("last_invalid_iteration")
                   for m in task_state["metrics"] for v in m["variants"]}
        iterations = []
        budget = PlotBudget()
        for it in its:
            rows = conn.execute(
                f"SELECT body FROM (SELECT body, metric, variant, ROW_NUMBER() OVER (PARTITION BY metric, variant "
                f"ORDER BY {order}, seq) AS n, DENSE_RANK() OVER (PARTITION BY metric ORDER BY variant) AS v "
                f"FROM events WHERE {where} AND iter=?) WHERE n <= ? AND v <= ? ORDER BY metric, variant, n",
                args + [it, TOP_HITS, max_variants]).fetchall()
            events = [self._process(ev, budget) for ev in (json.loads(r[0]) for r in rows)
                      if self._valid(ev, invalid, specific)]
            if events:
                iterations.append({"iter": it, "events": events})
        if not navigate_earlier:
            iterations.sort(key=lambda i: i["iter"], reverse=True)
        if iterations:
            task_state["last_max_iter"] = iterations[0]["iter"]
            task_state["last_min_iter"] = iterations[-1]["iter"]
        return task, iterations

    @staticmethod
    def _valid(event: dict, invalid: dict, specific: bool) -> bool:
        key = (event.get("metric"), event.get("variant"))
        if key not in invalid:
            return False  # allow_uninitialized_variants is off by default (and off for specific variants)
        max_invalid = invalid[key]
        return max_invalid is None or event.get("iter") > max_invalid

    def _process(self, event: dict, budget: PlotBudget) -> dict:
        return budget.uncompress(event) if self.event_type == PLOT else event

    def metric_events(self, call: Call, req) -> dict:
        """The body of ``events.plots`` / ``events.debug_images`` (``MetricEventsRequest``)."""
        task_metrics: dict[str, dict[str, list]] = {}
        for tm in req.metrics:
            task_metrics.setdefault(tm.task, {})[tm.metric] = tm.variants
        for metrics in task_metrics.values():
            if None in metrics:
                metrics.clear()
        found = {}
        for task in task_metrics:
            found[task] = target(call, task, bool(req.model_events))[1]
        return self.get_task_events(call, task_metrics, found, req.iters, req.navigate_earlier, req.refresh,
                                    req.scroll_id)


PLOTS = MetricEventsIterator(PLOT)
DEBUG_IMAGES = MetricEventsIterator(IMAGE)
