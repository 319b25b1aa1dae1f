"""Plot and debug image navigation, as clearml-server's ``bll/event`` iterators at API 2.23 (v1.9.2).

- ``events.plots`` / ``events.debug_images``: the real ``MetricEventsIterator``. The scroll id names a state
  kept on the server (the real one keeps it in Redis for an hour): per task the metrics and variants known
  when the state was made, for images the last iteration of a recycled URL, and the iterations last returned.
  ``refresh`` re-reads the metrics the last event batch touched (the task's ``metric_stats``).
- ``get_debug_image_sample`` / ``next_debug_image_sample``: the real ``HistoryDebugImageIterator``.
- ``get_plot_sample`` / ``next_plot_sample``: the real ``HistoryPlotsIterator``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, Callable, Optional

from ..events_store import uncompress_plot
from ..registry import ApiError, Call
from .events import MAX_METRICS, MAX_VARIANTS, target

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


def _new_id() -> str:
    return uuid.uuid4().hex


def _invalid_scroll(state_id: Any, extra: str = "") -> ApiError:
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


# -- events.plots / events.debug_images -------------------------------------------------------------------
class MetricEventsIterator:
    """The real ``MetricEventsIterator`` for one event type."""

    def __init__(self, event_type: str):
        self.event_type = event_type
        self.extra = " AND json_extract(body, '$.url') IS NOT NULL" if event_type == IMAGE else ""

    def get_task_events(self, call: Call, task_metrics: dict[str, dict[str, list]], companies: dict[str, str],
                        iters: int, navigate_earlier: bool, refresh: bool, state_id: Optional[str]) -> dict:
        state = STATES.get(METRIC_EVENTS_STATE, state_id)
        if state is None:
            state = {"id": _new_id(), "tasks": self._init_task_states(call, companies, task_metrics)}
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
        for it in its:
            rows = conn.execute(
                f"SELECT body FROM (SELECT body, metric, variant, ROW_NUMBER() OVER (PARTITION BY metric, variant "
                f"ORDER BY {order}, seq) AS n, DENSE_RANK() OVER (PARTITION BY metric ORDER BY variant) AS v "
                f"FROM events WHERE {where} AND iter=?) WHERE n <= ? AND v <= ? ORDER BY metric, variant, n",
                args + [it, TOP_HITS, max_variants]).fetchall()
            events = [self._process(ev) for ev in (json.loads(r[0]) for r in rows)
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

    def _process(self, event: dict) -> dict:
        return uncompress_plot(event) if self.event_type == PLOT else event

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


# -- debug image history ---------------------------------------------------------------------------------------
def _url_where(company: str, task: str) -> tuple[str, list]:
    return "company=? AND task=? AND type=? AND json_extract(body, '$.url') IS NOT NULL", [company, task, IMAGE]


def _variant_iterations(call: Call, company: str, task: str, metric: Optional[str]) -> list[dict]:
    """Per variant: the valid iterations (from the smallest of the URLs' last iterations to the last one)."""
    where, args = _url_where(company, task)
    if metric is not None:
        where += " AND metric=?"
        args.append(metric)
    conn = call.store.reader()
    states = []
    for (m,) in conn.execute(f"SELECT DISTINCT metric FROM events WHERE {where} ORDER BY metric LIMIT ?",
                             [*args, MAX_METRICS]).fetchall():
        for variant, max_iter in conn.execute(
                f"SELECT variant, MAX(iter) FROM events WHERE {where} AND metric=? GROUP BY variant "
                "ORDER BY variant LIMIT ?", [*args, m, MAX_VARIANTS // 2]).fetchall():
            min_iter = conn.execute(
                f"SELECT MAX(iter) mi FROM events WHERE {where} AND metric=? AND variant=? "
                "GROUP BY json_extract(body, '$.url') ORDER BY mi LIMIT 1", [*args, m, variant]).fetchone()[0]
            states.append({"metric": m, "name": variant, "min_iteration": int(min_iter),
                           "max_iteration": int(max_iter)})
    return states


def _variants_condition(variants: list[dict]) -> tuple[str, list]:
    parts, args = [], []
    for v in variants:
        parts.append("(metric=? AND variant=? AND iter >= ?)")
        args += [v["metric"], v["name"], v["min_iteration"]]
    return "(" + " OR ".join(parts) + ")", args


def _fill_sample(event: dict, res: dict, state: dict) -> None:
    state.update(variant=event["variant"], metric=event["metric"], iteration=event["iter"])
    res["event"] = event
    for vs in state["variant_states"]:
        if vs["name"] == state["variant"] and vs["metric"] == state["metric"]:
            res["min_iteration"], res["max_iteration"] = vs["min_iteration"], vs["max_iteration"]
            break


def _sample_state(call: Call, company: str, req, kind: str, key: str, load: Callable) -> dict:
    """The sample state ``req.scroll_id`` names (checked against the request), or a new one.

    Args:
        call: The API call.
        company: The company whose events are navigated.
        req: A ``get_*_sample`` request.
        kind: ``DEBUG_SAMPLE_STATE`` or ``PLOT_SAMPLE_STATE``.
        key: The state's list of navigable series (``variant_states``/``metric_states``).
        load: Reads that list: ``load(call, company, task, metric or None)``.

    Raises:
        ApiError: The state was made for another task, metric or navigation mode.
    """
    state = STATES.get(kind, req.scroll_id)
    if state is None:
        state = {"id": _new_id(), "task": req.task, "metric": req.metric, "variant": None, "iteration": None,
                 "navigate_current_metric": req.navigate_current_metric}
        state[key] = load(call, company, req.task, req.metric if req.navigate_current_metric else None)
        return state
    if (state["task"] != req.task or state["navigate_current_metric"] != req.navigate_current_metric
            or (state["navigate_current_metric"] and state["metric"] != req.metric)):
        raise _invalid_scroll(state["id"], "Task and metric stored in the state do not match the passed ones")
    if req.refresh:
        state[key] = load(call, company, req.task, state["metric"] if state["navigate_current_metric"] else None)
    return state


def get_debug_image_sample(call: Call, req) -> dict:
    """The image of a variant at ``iteration`` or the latest before it (the latest without one)."""
    _, company = target(call, req.task, req.model_events)
    res: dict[str, Any] = {"scroll_id": None, "event": None, "min_iteration": None, "max_iteration": None}
    state = _sample_state(call, company, req, DEBUG_SAMPLE_STATE, "variant_states", _variant_iterations)
    try:
        res["scroll_id"] = state["id"]
        var_state = next((vs for vs in state["variant_states"]
                          if vs["name"] == req.variant and vs["metric"] == req.metric), None)
        if var_state is None:
            return res
        res["min_iteration"], res["max_iteration"] = var_state["min_iteration"], var_state["max_iteration"]
        where, args = _url_where(company, req.task)
        where += " AND metric=? AND variant=? AND iter >= ?"
        args += [req.metric, req.variant, var_state["min_iteration"]]
        if req.iteration is not None:
            where += " AND iter <= ?"
            args.append(req.iteration)
        row = call.store.reader().execute(f"SELECT body FROM events WHERE {where} ORDER BY iter DESC, seq LIMIT 1",
                                          args).fetchone()
        if row is not None:
            _fill_sample(json.loads(row[0]), res, state)
        return res
    finally:
        STATES.set(DEBUG_SAMPLE_STATE, state)


def next_debug_image_sample(call: Call, req) -> dict:
    """The next/previous variant on the same iteration, else the first/last of the next/previous iteration."""
    _, company = target(call, req.task, req.model_events)
    res: dict[str, Any] = {"scroll_id": req.scroll_id, "event": None, "min_iteration": None, "max_iteration": None}
    state = STATES.get(DEBUG_SAMPLE_STATE, req.scroll_id)
    if not state or state["task"] != req.task:
        raise _invalid_scroll(req.scroll_id)
    finders: list[Callable] = [_next_for_another_iteration] if req.next_iteration else [
        _next_for_current_iteration, _next_for_another_iteration]
    event = None
    for find in finders:
        event = find(call, company, req.navigate_earlier, state)
        if event:
            break
    if not event:
        return res
    _fill_sample(event, res, state)
    STATES.set(DEBUG_SAMPLE_STATE, state)
    return res


def _state_variants(state: dict) -> list[dict]:
    if state["navigate_current_metric"]:
        return [vs for vs in state["variant_states"] if vs["metric"] == state["metric"]]
    return list(state["variant_states"])


def _next_for_current_iteration(call: Call, company: str, earlier: bool, state: dict) -> Optional[dict]:
    if state.get("iteration") is None:
        return None
    current = (state["metric"], state["variant"])
    variants = [vs for vs in _state_variants(state)
                if ((vs["metric"], vs["name"]) < current if earlier else (vs["metric"], vs["name"]) > current)
                and vs["min_iteration"] <= state["iteration"]]
    if not variants:
        return None
    cond, cargs = _variants_condition(variants)
    where, args = _url_where(company, state["task"])
    order = "DESC" if earlier else "ASC"
    row = call.store.reader().execute(
        f"SELECT body FROM events WHERE {where} AND iter=? AND {cond} ORDER BY metric {order}, variant {order}, seq "
        "LIMIT 1", [*args, state["iteration"], *cargs]).fetchone()
    return json.loads(row[0]) if row else None


def _next_for_another_iteration(call: Call, company: str, earlier: bool, state: dict) -> Optional[dict]:
    if state.get("iteration") is None:
        return None
    variants = _state_variants(state)
    if earlier:
        variants = [vs for vs in variants if vs["min_iteration"] < state["iteration"]]
    if not variants:
        return None
    cond, cargs = _variants_condition(variants)
    where, args = _url_where(company, state["task"])
    op, order = ("<", "DESC") if earlier else (">", "ASC")
    row = call.store.reader().execute(
        f"SELECT body FROM events WHERE {where} AND {cond} AND iter {op} ? "
        f"ORDER BY iter {order}, metric {order}, variant {order}, seq LIMIT 1",
        [*args, *cargs, state["iteration"]]).fetchone()
    return json.loads(row[0]) if row else None


# -- plot history -------------------------------------------------------------------------------------------------
def _metric_iterations(call: Call, company: str, task: str, metric: Optional[str]) -> list[dict]:
    where, args = "company=? AND task=? AND type='plot'", [company, task]
    if metric is not None:
        where += " AND metric=?"
        args.append(metric)
    return [{"name": m, "min_iteration": lo, "max_iteration": hi} for m, lo, hi in call.store.reader().execute(
        f"SELECT metric, MIN(iter), MAX(iter) FROM events WHERE {where} GROUP BY metric ORDER BY metric LIMIT 5000",
        args)]


def _plot_events_for(call: Call, company: str, task: str, order: str, cond: str, cargs: list) -> list[dict]:
    """The plots (up to 100, by variant) of the first iteration, then the first metric, in ``order``."""
    where = f"company=? AND task=? AND type='plot'{cond}"
    args = [company, task, *cargs]
    conn = call.store.reader()
    first = conn.execute(f"SELECT iter FROM events WHERE {where} AND iter IS NOT NULL ORDER BY iter {order} LIMIT 1",
                         args).fetchone()
    if first is None:
        return []
    metric = conn.execute(f"SELECT metric FROM events WHERE {where} AND iter=? ORDER BY metric {order} LIMIT 1",
                          [*args, first[0]]).fetchone()
    rows = conn.execute(f"SELECT body FROM events WHERE {where} AND iter=? AND metric=? ORDER BY variant, seq "
                        "LIMIT 100", [*args, first[0], metric[0]]).fetchall()
    return [json.loads(r[0]) for r in rows]


def _fill_plots(events: list[dict], res: dict, state: dict) -> None:
    for event in events:
        uncompress_plot(event)
    state["metric"], state["iteration"] = events[0]["metric"], events[0]["iter"]
    res["events"] = events
    for ms in state["metric_states"]:
        if ms["name"] == state["metric"]:
            res["min_iteration"], res["max_iteration"] = ms["min_iteration"], ms["max_iteration"]
            break


def get_plot_sample(call: Call, req) -> dict:
    """The plots of a metric at ``iteration`` or the latest before it (the latest without one)."""
    _, company = target(call, req.task, req.model_events)
    res: dict[str, Any] = {"scroll_id": None, "events": [], "min_iteration": None, "max_iteration": None}
    state = _sample_state(call, company, req, PLOT_SAMPLE_STATE, "metric_states", _metric_iterations)
    try:
        res["scroll_id"] = state["id"]
        metric_state = next((ms for ms in state["metric_states"] if ms["name"] == req.metric), None)
        if metric_state is None:
            return res
        res["min_iteration"], res["max_iteration"] = metric_state["min_iteration"], metric_state["max_iteration"]
        cond, cargs = " AND metric=?", [req.metric]
        if req.iteration is not None:
            cond += " AND iter <= ?"
            cargs.append(req.iteration)
        events = _plot_events_for(call, company, req.task, "DESC", cond, cargs)
        if events:
            _fill_plots(events, res, state)
        return res
    finally:
        STATES.set(PLOT_SAMPLE_STATE, state)


def next_plot_sample(call: Call, req) -> dict:
    """The plots of the next/previous metric on the same iteration, else of the next/previous iteration."""
    _, company = target(call, req.task, req.model_events)
    res: dict[str, Any] = {"scroll_id": req.scroll_id, "events": [], "min_iteration": None, "max_iteration": None}
    state = STATES.get(PLOT_SAMPLE_STATE, req.scroll_id)
    if not state or state["task"] != req.task:
        raise _invalid_scroll(req.scroll_id)
    if state.get("iteration") is None:
        return res
    op, order = ("<", "DESC") if req.navigate_earlier else (">", "ASC")
    cond, cargs = "", []
    if state["navigate_current_metric"]:
        cond, cargs = " AND metric=?", [state["metric"]]
    if req.next_iteration or state["navigate_current_metric"]:
        cond += f" AND iter {op} ?"
        cargs.append(state["iteration"])
    else:
        cond += f" AND ((iter = ? AND metric {op} ?) OR iter {op} ?)"
        cargs += [state["iteration"], state["metric"], state["iteration"]]
    events = _plot_events_for(call, company, state["task"], order, cond, cargs)
    if not events:
        return res
    _fill_plots(events, res, state)
    STATES.set(PLOT_SAMPLE_STATE, state)
    return res
