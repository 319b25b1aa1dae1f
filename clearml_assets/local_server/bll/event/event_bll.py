"""The ``events.*`` logic of the local server, as clearml-server's ``bll/event`` at API 2.23 (v1.9.2).

Elasticsearch becomes SQLite here, but what a client sees is the real server's:

- pages by ``iter`` (``get_task_events``, ``scalar_metrics_iter_raw``) and by ``timestamp`` (``get_task_log``)
  are the real ``EventsIterator``: ``batch_size`` events sorted by the key only, plus up to 10,000 events
  sharing the last key value; the next page starts strictly after that value (``search_after``), so events
  beyond 10,000 on one key value are lost, as on the real server;
- events without ``iter`` (log lines) sort last and a page ending on one fails with the real 500 ``'iter'``
  (``events[-1]["iter"]``), so ``get_task_events`` with ``event_type: log`` answers 500 once there are logs;
- totals taken from Elasticsearch hits (``get_task_log``, ``get_scalar_metric_data``, ``get_multi_task_plots``)
  are capped at 10,000 (``track_total_hits``); ``get_task_events`` counts exactly;
- plots of 100,000 characters or more are stored compressed (``plot_data``); ``get_task_events`` returns them
  so, every other plot read decompresses them;
- scroll ids of ``get_task_events``/``scalar_metrics_iter_raw`` are the real JWTs (``from_key_value``, ``total``,
  ``request``).

Real-server bugs are reproduced only when switched on (see :func:`quirk`):
``scroll_restart_at_iter0``: a scroll whose page ends at iteration 0 restarts from the beginning
(the real ``if from_key_value:`` treats 0 as "no position").
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Iterable

from ...apimodels.events import EventType, LogEventsRequest, ScalarMetricsIterRawRequest, TaskEventsRequest
from ...core import ApiError, Call, bad_request
from ...core.rawjson import RawJSON
from ...store.event_rows import count, json_fields_verbatim, metric_clause
from .event_common import (EMPTY_SCROLL, ES_TOTAL_CAP, MAX_EVENTS_PAGE, MAX_RAW_SCALARS, check_updatable,
                           decode_scroll, encode_scroll, json_text, key_events, metric_variants, position, raw_array,
                           scrolled, target)


# -- logs -------------------------------------------------------------------------------------------------
def get_task_log(call: Call, req: LogEventsRequest) -> dict:
    """Up to ``batch_size`` log events before/after ``from_timestamp`` plus the rest of the last timestamp;
    ``total`` is Elasticsearch's hit count (at most 10,000); ``order`` only flips the page."""
    _, company = target(call, req.task)
    if req.batch_size > ES_TOTAL_CAP:  # Elasticsearch's max_result_window, surfaced as the real DataError
        raise ApiError(500, 100, "General data error (TransportError(400, 'search_phase_execution_exception', "
                                 "'Result window is too large, from + size must be less than or equal to: [10000] "
                                 f"but was [{req.batch_size}].'))")
    where, args = "company=? AND task=? AND type='log'", [company, req.task]
    mclause, margs = metric_clause((req.model_extra or {}).get("metrics"))  # later APIs' filter
    where, args = where + mclause, args + margs
    conn = call.store.reader()
    rows = key_events(conn, where, args, "ts", req.batch_size, req.navigate_earlier, req.from_timestamp or None)
    bodies = [r[0] for r in rows]
    if req.order and ((req.navigate_earlier and req.order.value == "asc")
                      or (not req.navigate_earlier and req.order.value == "desc")):
        bodies.reverse()
    total = min(count(conn, where, args), ES_TOTAL_CAP)
    return {"events": raw_array(bodies), "returned": len(bodies), "total": total}


def log_lines(store, company: str, task_id: str) -> Iterable[dict]:
    """Every log event of a task, oldest first (``download_task_log``)."""
    conn = store.connect()  # a connection of its own: the stream outlives the request thread
    try:
        cursor = conn.execute("SELECT body FROM events WHERE company=? AND task=? AND type='log' ORDER BY ts, seq",
                              (company, task_id))
        while rows := cursor.fetchmany(1000):
            for (body,) in rows:
                yield json.loads(body)
    finally:
        conn.close()


def clear_task_log(call: Call, task_id: str, allow_locked: bool, threshold_sec: int | None,
                   include: list | None = None, exclude: list | None = None) -> int:
    """Delete a task's log events (older than ``threshold_sec``)."""
    target(call, task_id)
    check_updatable(call, task_id, allow_locked)
    sql, args = "DELETE FROM events WHERE company=? AND task=? AND type='log'", [call.company, task_id]
    if threshold_sec:
        sql += " AND ts < ?"
        args.append(int(datetime.now(timezone.utc).timestamp() * 1000) - int(threshold_sec * 1000))
    for names, op in ((include, "IN"), (exclude, "NOT IN")):
        if names:
            sql += f" AND metric {op} ({','.join('?' * len(names))})"
            args += list(names)
    with call.store.writing() as conn:
        return conn.execute(sql, args).rowcount


def delete_events(call: Call, entity_id: str, allow_locked: bool, model: bool) -> int:
    """Every event of a task (or model)."""
    target(call, entity_id, model)
    check_updatable(call, entity_id, allow_locked, model)
    with call.store.writing() as conn:
        return conn.execute("DELETE FROM events WHERE company=? AND task=?", (call.company, entity_id)).rowcount


# -- get_task_events / scalar_metrics_iter_raw ---------------------------------------------------------------
def get_task_events(call: Call, req: TaskEventsRequest) -> dict:
    """Events by iteration, ``batch_size`` (at most 10,000) a page plus the rest of the last iteration."""
    task_id = req.task  # a continuation reads this call's task with the scroll's other fields, as the real code
    _, company = target(call, task_id, req.model_events)
    if not req.scroll_id:
        from_key, total = None, None
    else:
        state = decode_scroll(req.scroll_id)
        if state.get("from_key_value") is None:
            return {"returned": 0, "total": state.get("total"), "scroll_id": req.scroll_id, "events": []}
        from_key, total = int(state["from_key_value"]), state.get("total")
        batch_size = req.batch_size
        req = TaskEventsRequest.model_validate(state.get("request") or {})
        req.batch_size = batch_size or req.batch_size
    where, args = "company=? AND task=?", [company, task_id]
    if req.event_type != EventType.all:
        where += " AND type=?"
        args.append(req.event_type.value)
    mclause, margs = metric_clause(metric_variants(req.metrics))
    where, args = where + mclause, args + margs
    conn = call.store.reader()
    if req.count_total and total is None:
        total = count(conn, where, args)
    rows = key_events(conn, where, args, "iter", min(req.batch_size, MAX_EVENTS_PAGE), req.order.value == "desc",
                      position(call, from_key))
    scroll = encode_scroll({"from_key_value": str(rows[-1][-2]) if rows else None, "total": total,
                            "request": req.model_dump(mode="json", exclude={"scroll_id"})})
    return {"returned": len(rows), "total": total, "scroll_id": scroll, "events": raw_array(r[0] for r in rows)}


def scalar_metrics_iter_raw(call: Call, req: ScalarMetricsIterRawRequest) -> dict:
    """Every point of one metric's variants by ``key``: ``batch_size`` (10,000; at most 200,000) fetched in
    10,000-event steps, each with the rest of its last key value."""
    key = req.key or "iter"
    key = getattr(key, "value", key)
    if req.batch_size is not None and req.batch_size < 0:
        raise bad_request("Validation error (batch_size should be non negative number)")
    if not req.scroll_id:
        from_key, total = None, None
        req.batch_size = req.batch_size or 10_000
    else:
        state = decode_scroll(req.scroll_id)
        if state.get("from_key_value") is None:
            return {"returned": 0, "total": state.get("total"), "scroll_id": req.scroll_id, "variants": {}}
        from_key, total = int(state["from_key_value"]), state.get("total")
        req.batch_size = req.batch_size or (state.get("request") or {}).get("batch_size") or 10_000
    _, company = target(call, req.task, req.model_events)
    mclause, margs = metric_clause([req.metric.model_dump()])
    where = "company=? AND task=? AND type='training_stats_scalar'" + mclause
    args = [company, req.task, *margs]
    conn = call.store.reader()
    if req.count_total and total is None:
        total = count(conn, where, args)
    batch = min(req.batch_size, MAX_RAW_SCALARS)
    column, field = ("iter", "iter") if key == "iter" else ("ts", "timestamp")
    verbatim = json_fields_verbatim(conn)
    # (variant, key JSON, value JSON) straight from the stored JSON when SQLite gives its text back verbatim
    columns = f"variant, body -> '$.{field}', body -> '$.value'" if verbatim else "variant, body"
    points: list[tuple] = []
    for _ in range(math.ceil(batch / 10_000)):
        rows = key_events(conn, where, args, column, min(batch, 10_000), False, position(call, from_key), columns)
        if not rows:
            break
        points += rows
        from_key = rows[-1][-2]
    series: dict[str, tuple[list[str], list[str]]] = {}
    for point in points:
        if verbatim:
            variant, key_text, value_text = point[:3]
        else:
            event = json.loads(point[1])
            variant, key_text, value_text = point[0], json_text(event.get(field)), json_text(event.get("value"))
        ys, keys = series.setdefault(variant, ([], []))
        ys.append(value_text or "null")
        keys.append(key_text or "null")
    variants = RawJSON("{" + ",".join(f'{json_text(v)}:{{"y":[{",".join(ys)}],{json_text(key)}:[{",".join(keys)}]}}'
                                      for v, (ys, keys) in series.items()) + "}")
    scroll = encode_scroll({"from_key_value": str(points[-1][-2]) if points else None, "total": total,
                            "request": req.model_dump(mode="json", exclude={"scroll_id"})})
    return {"returned": len(points), "total": total, "scroll_id": scroll, "variants": variants}


def get_scalar_metric_data(call: Call, task_id: str, metric: str, scroll_id: str | None, no_scroll: bool,
                           model_events: bool) -> dict:
    """One metric's scalar events, newest iteration first, 500 a page (an Elasticsearch scroll); ``FFFF``
    once exhausted; ``total`` capped at 10,000."""
    if scroll_id == EMPTY_SCROLL:
        return {"events": [], "returned": 0, "total": 0, "scroll_id": None}
    _, company = target(call, task_id, model_events)
    where = "company=? AND task=? AND type='training_stats_scalar' AND metric=?"
    args = [company, task_id, metric]
    rows, total, scroll = scrolled(call, where, args, scroll_id, no_scroll)
    return {"events": raw_array(r[0] for r in rows), "returned": len(rows), "total": total, "scroll_id": scroll}


# -- for tasks.delete/reset(return_file_urls) ------------------------------------------------------------------
def event_file_urls(call: Call, task_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(debug image urls, plot image urls)`` of the tasks' events, as the real ``get_debug_image_urls`` and
    ``get_plot_image_urls`` (plots name their images in ``source_urls``)."""
    ids = list(task_ids)
    if not ids:
        return [], []
    where = f"company=? AND task IN ({','.join('?' * len(ids))})"
    conn = call.store.reader()
    images = [r[0] for r in conn.execute(
        f"SELECT DISTINCT json_extract(body, '$.url') u FROM events WHERE {where} AND type='training_debug_image' "
        "AND u IS NOT NULL ORDER BY u", [call.company, *ids])]
    plots = sorted({url for (urls,) in conn.execute(
        f"SELECT json_extract(body, '$.source_urls') FROM events WHERE {where} AND type='plot' "
        "AND json_extract(body, '$.source_urls') IS NOT NULL", [call.company, *ids]) for url in json.loads(urls)})
    return images, plots
