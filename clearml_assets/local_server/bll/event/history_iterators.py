"""One variant's debug image or one metric's plots at an iteration, then the next or previous one: the real
``HistoryDebugImageIterator`` and ``HistoryPlotsIterator`` (clearml-server ``bll/event``, API 2.23)."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from ...core import Call
from ...store.plots import PlotBudget
from .event_common import MAX_METRICS, MAX_VARIANTS, target
from .metric_events_iterator import DEBUG_SAMPLE_STATE, IMAGE, PLOT_SAMPLE_STATE, STATES, invalid_scroll, new_state_id


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
        state = {"id": new_state_id(), "task": req.task, "metric": req.metric, "variant": None, "iteration": None,
                 "navigate_current_metric": req.navigate_current_metric}
        state[key] = load(call, company, req.task, req.metric if req.navigate_current_metric else None)
        return state
    if (state["task"] != req.task or state["navigate_current_metric"] != req.navigate_current_metric
            or (state["navigate_current_metric"] and state["metric"] != req.metric)):
        raise invalid_scroll(state["id"], "Task and metric stored in the state do not match the passed ones")
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
        raise invalid_scroll(req.scroll_id)
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
    budget = PlotBudget()
    for event in events:
        budget.uncompress(event)
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
        raise invalid_scroll(req.scroll_id)
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
