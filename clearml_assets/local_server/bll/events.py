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

import itertools
import json
import math
import os
import sqlite3
import warnings
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any, Iterable

import jwt

from ..events_store import SINGLE_VALUE_ITER, count, json_fields_verbatim, metric_clause, uncompress_plot
from ..registry import ApiError, Call, bad_request

try:
    from ..rawjson import RawJSON  # orjson.Fragment, once the server's response encoder is in
except ImportError:  # the encoder of app.py
    from ..app import RawJSON
from .events_models import (EventType, LogEventsRequest, ScalarMetricsIterRawRequest, TaskEventsRequest)

QUIRKS_ENV = "CLEARML_LOCAL_SERVER_QUIRKS"
SCROLL_RESTART_AT_ITER0 = "scroll_restart_at_iter0"
SCROLL_KEY = "1234567890"  # services.events.events_retrieval.scroll_id_key (the real default)
EMPTY_SCROLL = "FFFF"
ES_TOTAL_CAP = 10_000  # Elasticsearch's track_total_hits: hits.total.value stops counting here
KEY_VALUE_REST = 10_000  # events of the last key value fetched with a page
MAX_EVENTS_PAGE = 10_000  # max_raw_scalars_size for get_task_events
MAX_RAW_SCALARS = 200_000  # max_raw_scalars_size for scalar_metrics_iter_raw
MAX_METRICS, MAX_VARIANTS = 100, 100  # events_retrieval.max_metrics_count / max_variants_count
MAX_SAMPLE_BUCKETS = 6000
MAX_AGGS_ELEMENTS = 50
LOCKED = ("publishing", "published")


def quirk(call: Call, name: str) -> bool:
    """Whether the real-server bug ``name`` is switched on for this server.

    On through the environment variable ``CLEARML_LOCAL_SERVER_QUIRKS`` (comma separated names, read on every
    request) or a ``quirks`` collection on the server's store.
    """
    names = {n.strip() for n in os.environ.get(QUIRKS_ENV, "").split(",") if n.strip()}
    names |= set(getattr(call.store, "quirks", None) or ())
    return name in names


def version_at_least(call: Call, version: str) -> bool:
    """Whether the request asks for API ``version`` or later (the real server picks endpoint versions so)."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in str(text).split("."))
        except ValueError:
            return (0,)
    return parse(call.requested_version) >= parse(version)


# -- scroll ids ---------------------------------------------------------------------------------------
def encode_scroll(state: dict) -> str:
    """The real ``Scroll.get_scroll_id``: a JWT of the state (signed with the real default key)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real key is shorter than PyJWT recommends
        return jwt.encode(state, SCROLL_KEY, algorithm="HS256")


def decode_scroll(scroll_id: Any) -> dict:
    """The state of a scroll id (400/1104 ``invalid_scroll_id`` when it is not one)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = jwt.decode(str(scroll_id), SCROLL_KEY, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise ApiError(400, 1104, f"Invalid scroll id: scroll_id={scroll_id}") from None
    return state


# -- targets --------------------------------------------------------------------------------------------
def target(call: Call, entity_id: Any, model_events: bool = False) -> tuple[dict, str]:
    """The task (or model) and the company its events live in; public ones (company "") are readable."""
    collection, code, what = ("models", 201, "model") if model_events else ("tasks", 101, "task")
    with call.store.lock:
        doc = call.store.get(collection, entity_id, call.company) if isinstance(entity_id, str) else None
        if doc is None and isinstance(entity_id, str) and call.company:
            doc = call.store.get(collection, entity_id, "")
    if doc is None:
        raise ApiError(400, code, f"Invalid {what} id: id={entity_id}")
    return dict(doc), doc.get("company", call.company)


def targets(call: Call, ids: list[str], model_events: bool = False) -> dict[str, tuple[dict, str]]:
    """Every one of ``ids`` (400 naming the invalid ones otherwise)."""
    found, invalid = {}, []
    for entity_id in dict.fromkeys(ids):
        try:
            found[entity_id] = target(call, entity_id, model_events)
        except ApiError:
            invalid.append(entity_id)
    if invalid:
        code, what = (201, "model") if model_events else (101, "task")
        raise ApiError(400, code, f"Invalid {what} id: company={call.company}, ids=({', '.join(map(str, invalid))})")
    return found


def check_updatable(call: Call, entity_id: str, allow_locked: bool, model: bool = False) -> None:
    """The real ``_validate_task_state``/``_validate_model_state`` (own company; not published)."""
    collection, code, what = ("models", 201, "model") if model else ("tasks", 101, "task")
    with call.store.lock:
        doc = call.store.get(collection, entity_id, call.company)
    locked = doc is not None and not allow_locked and (doc.get("ready") if model else doc.get("status") in LOCKED)
    if doc is None or locked:
        extra = f" (or {what} published)" if not allow_locked else ""
        raise ApiError(400, code, f"Invalid {what} id{extra}: company={call.company}, id={entity_id}")


def raw_array(bodies: Iterable[str]):
    """Stored event bodies spliced into the response as a JSON array (they are JSON already)."""
    return RawJSON("[" + ",".join(bodies) + "]")


def _metric_variants(metrics: Any) -> Any:
    if not metrics:
        return None
    return [m.model_dump() if hasattr(m, "model_dump") else m for m in metrics]


# -- the real EventsIterator -------------------------------------------------------------------------------
def key_events(conn: sqlite3.Connection, where: str, args: list, key: str, batch: int, earlier: bool,
               after: Any, columns: str = "body") -> list[tuple]:
    """Rows ``(*columns, key, seq)`` of one page of the real ``EventsIterator._get_events``.

    ``batch`` rows sorted by ``key`` only (ties in insertion order of the direction, events without the key
    last), strictly after ``after`` (``search_after``; None starts at the end given by ``earlier``), plus the
    events sharing the last key value (at most 10,000 of them in all, in insertion order).
    """
    if batch <= 0:
        return []
    op, direction = ("<", "DESC") if earlier else (">", "ASC")
    select = f"SELECT {columns}, {key}, seq FROM events WHERE {where}"
    qargs = list(args)
    position = ""
    if after is not None:
        position = f" AND {key} {op} ?"
        qargs.append(after)
    # index order (key, seq) in one direction; events without the key after all others (+/- Long.MAX in ES)
    rows = conn.execute(f"{select} AND {key} IS NOT NULL{position} ORDER BY {key} {direction}, seq {direction} "
                        "LIMIT ?", qargs + [batch]).fetchall()
    if len(rows) < batch:
        rows += conn.execute(f"{select} AND {key} IS NULL ORDER BY seq LIMIT ?", list(args) + [batch - len(rows)]
                             ).fetchall()
    if not rows:
        return rows
    last = rows[-1][-2]
    if last is None or (key == "iter" and columns == "body" and "iter" not in json.loads(rows[-1][0])):
        raise ApiError(500, 0, f"'{key}'")  # the real events[-1][key.field] on an event without the key
    rest = conn.execute(f"SELECT {columns}, {key}, seq FROM events WHERE {where} AND {key} = ? ORDER BY seq LIMIT ?",
                        list(args) + [last, KEY_VALUE_REST]).fetchall()
    if len(rest) < 2:
        return rows
    present = {r[-1] for r in rows}
    return rows + [r for r in rest if r[-1] not in present]


def _position(call: Call, value: Any) -> Any:
    """``from_key_value`` as the real iterator uses it: with the quirk on, 0 means "from the start"."""
    if value is not None and not value and quirk(call, SCROLL_RESTART_AT_ITER0):
        return None
    return value


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
    mclause, margs = metric_clause(_metric_variants(req.metrics))
    where, args = where + mclause, args + margs
    conn = call.store.reader()
    if req.count_total and total is None:
        total = count(conn, where, args)
    rows = key_events(conn, where, args, "iter", min(req.batch_size, MAX_EVENTS_PAGE), req.order.value == "desc",
                      _position(call, from_key))
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
        rows = key_events(conn, where, args, column, min(batch, 10_000), False, _position(call, from_key), columns)
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
            variant, key_text, value_text = point[0], _json(event.get(field)), _json(event.get("value"))
        ys, keys = series.setdefault(variant, ([], []))
        ys.append(value_text or "null")
        keys.append(key_text or "null")
    variants = RawJSON("{" + ",".join(f'{_json(v)}:{{"y":[{",".join(ys)}],{_json(key)}:[{",".join(keys)}]}}'
                                      for v, (ys, keys) in series.items()) + "}")
    scroll = encode_scroll({"from_key_value": str(points[-1][-2]) if points else None, "total": total,
                            "request": req.model_dump(mode="json", exclude={"scroll_id"})})
    return {"returned": len(points), "total": total, "scroll_id": scroll, "variants": variants}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def get_scalar_metric_data(call: Call, task_id: str, metric: str, scroll_id: str | None, no_scroll: bool,
                           model_events: bool) -> dict:
    """One metric's scalar events, newest iteration first, 500 a page (an Elasticsearch scroll); ``FFFF``
    once exhausted; ``total`` capped at 10,000."""
    if scroll_id == EMPTY_SCROLL:
        return {"events": [], "returned": 0, "total": 0, "scroll_id": None}
    _, company = target(call, task_id, model_events)
    where = "company=? AND task=? AND type='training_stats_scalar' AND metric=?"
    args = [company, task_id, metric]
    rows, total, scroll = _scrolled(call, where, args, scroll_id, no_scroll)
    return {"events": raw_array(r[0] for r in rows), "returned": len(rows), "total": total, "scroll_id": scroll}


def _scrolled(call: Call, where: str, args: list, scroll_id: str | None, no_scroll: bool,
              size: int = 500) -> tuple[list[tuple], int, str | None]:
    """One page of an Elasticsearch scroll sorted by iteration (newest first)."""
    conn = call.store.reader()
    after = None
    if scroll_id:
        state = decode_scroll(scroll_id)
        after = state.get("after")
    sql = f"SELECT body, iter, seq FROM events WHERE {where}"
    qargs = list(args)
    if after is not None:
        sql += " AND (iter < ? OR (iter = ? AND seq > ?))"
        qargs += [after[0], after[0], after[1]]
    rows = conn.execute(sql + " ORDER BY iter DESC, seq LIMIT ?", qargs + [min(size, 10_000)]).fetchall()
    total = min(count(conn, where, args), ES_TOTAL_CAP)
    if no_scroll:
        return rows, total, None
    if not rows:
        return rows, total, EMPTY_SCROLL
    return rows, total, encode_scroll({"after": [rows[-1][1], rows[-1][2]]})


# -- plots ----------------------------------------------------------------------------------------------------
def _plot_events(rows: Iterable[tuple]) -> list[dict]:
    return [uncompress_plot(json.loads(r[0])) for r in rows]


VALID_PLOT = "(json_extract(body, '$.valid_plot') IS NULL OR json_extract(body, '$.valid_plot') = 1)"


def get_task_plots(call: Call, task_id: str, iters: int, metrics: Any, model_events: bool) -> dict:
    """The ``iters`` latest plots of each metric/variant (100 metrics, 100 // iters variants each)."""
    _, company = target(call, task_id, model_events)
    mclause, margs = metric_clause(_metric_variants(metrics))
    max_variants = max(1, MAX_VARIANTS // max(iters, 1))
    rows = call.store.reader().execute(
        f"SELECT body FROM (SELECT body, metric, variant, iter, seq, "
        f"ROW_NUMBER() OVER (PARTITION BY metric, variant ORDER BY iter DESC, seq) AS n, "
        f"DENSE_RANK() OVER (ORDER BY metric) AS m, DENSE_RANK() OVER (PARTITION BY metric ORDER BY variant) AS v "
        f"FROM events WHERE company=? AND task=? AND type='plot' AND {VALID_PLOT}{mclause}) "
        f"WHERE n <= ? AND m <= ? AND v <= ? ORDER BY metric, variant, iter DESC, seq",
        [company, task_id, *margs, iters, MAX_METRICS, max_variants]).fetchall()
    events = _plot_events(rows)
    return {"plots": events, "returned": len(events), "total": len(events), "scroll_id": None}


def get_multi_task_plots(call: Call, task_ids: list[str], iters: int, scroll_id: str | None, no_scroll: bool,
                         model_events: bool, per_metric: bool = False, metrics: Any = None) -> dict:
    """Plots of the last ``iters`` iterations of each task (the first 10 tasks Elasticsearch buckets), 500 a
    page of an Elasticsearch scroll, as ``{metric: {variant: {task: {iter: {name, plots}}}}}``.

    ``per_metric`` (API 2.26 ``last_iters_per_task_metric``): the last iterations of each task's metric."""
    if isinstance(task_ids, str):
        task_ids = [task_ids]
    docs = targets(call, list(task_ids), model_events)
    names = {t: doc.get("name") for t, (doc, _) in docs.items()}
    companies = sorted({c for _, c in docs.values()})
    if scroll_id == EMPTY_SCROLL:
        return {"plots": {}, "returned": 0, "total": 0, "scroll_id": None}
    state = decode_scroll(scroll_id) if scroll_id else {}
    conn = call.store.reader()
    if scroll_id:
        where, args = state["where"], state["args"]
    else:
        marks = ",".join("?" * len(companies))
        mclause, margs = metric_clause(_metric_variants(metrics))
        base = f"company IN ({marks}) AND type='plot' AND task IN ({','.join('?' * len(docs))}){mclause}"
        base_args = [*companies, *docs, *margs]
        if model_events:
            where, args = base, base_args
        elif per_metric:
            last_pm = _last_iters_per_metric(conn, base, base_args, iters, len(docs))
            if not last_pm:
                return {"plots": {}, "returned": 0, "total": 0, "scroll_id": None}
            where = base + " AND (" + " OR ".join(
                f"(task=? AND metric=? AND iter IN ({','.join('?' * len(its))}))" for its in last_pm.values()) + ")"
            args = base_args + [v for (t, mt), its in last_pm.items() for v in (t, mt, *its)]
        else:
            last = _last_iters(conn, base, base_args, iters)
            if not last:
                return {"plots": {}, "returned": 0, "total": 0, "scroll_id": None}
            where = base + " AND (" + " OR ".join(
                f"(task=? AND iter IN ({','.join('?' * len(its))}))" for its in last.values()) + ")"
            args = base_args + [v for t, its in last.items() for v in (t, *its)]
    rows, total, next_scroll = _scrolled(call, where, args, scroll_id, no_scroll)
    if next_scroll not in (None, EMPTY_SCROLL):
        next_scroll = encode_scroll({**decode_scroll(next_scroll), "where": where, "args": args})
    grouped = top_iter_unique_events_per_task(_plot_events(rows), iters, names)
    return {"plots": grouped, "returned": len(grouped), "total": total, "scroll_id": next_scroll}


def _last_iters(conn: sqlite3.Connection, where: str, args: list, iters: int) -> dict[str, list[int]]:
    """The real ``get_last_iters``: the ``iters`` highest iterations of each task (10 task buckets, by count)."""
    tasks = [r[0] for r in conn.execute(f"SELECT task FROM events WHERE {where} GROUP BY task "
                                        "ORDER BY COUNT(*) DESC, task LIMIT 10", args)]
    return {t: [r[0] for r in conn.execute(f"SELECT DISTINCT iter FROM events WHERE {where} AND task=? "
                                           "AND iter IS NOT NULL ORDER BY iter DESC LIMIT ?", [*args, t, iters])]
            for t in tasks}


def _last_iters_per_metric(conn: sqlite3.Connection, where: str, args: list, iters: int,
                           tasks: int) -> dict[tuple[str, str], list[int]]:
    """The later server's ``get_last_iters_per_metric``: the ``iters`` highest iterations of each task metric."""
    max_metrics = max(1, 10_000 // (min(tasks, 1000) * max(iters, 1)))
    out: dict[tuple[str, str], list[int]] = {}
    for task, metric in conn.execute(
            f"SELECT task, metric FROM (SELECT task, metric, ROW_NUMBER() OVER (PARTITION BY task ORDER BY COUNT(*) "
            f"DESC, metric) n FROM events WHERE {where} GROUP BY task, metric) WHERE n <= ?", [*args, max_metrics]):
        out[(task, metric)] = [r[0] for r in conn.execute(
            f"SELECT DISTINCT iter FROM events WHERE {where} AND task=? AND metric=? AND iter IS NOT NULL "
            "ORDER BY iter DESC LIMIT ?", [*args, task, metric, iters])]
    return {k: v for k, v in out.items() if v}


def top_iter_unique_events_per_task(events: list[dict], max_iters: int, names: dict[str, str]) -> dict:
    """The real ``_get_top_iter_unique_events_per_task``."""
    key = itemgetter("metric", "variant", "task", "iter")
    unique = itertools.chain.from_iterable(
        itertools.islice(group, max_iters) for _, group in itertools.groupby(sorted(events, key=key, reverse=True),
                                                                             key=key))

    def collect(evs: Iterable[dict], fields: tuple) -> dict:
        if not fields:
            evs = list(evs)
            return {"name": names.get(evs[0].get("task")), "plots": evs}
        return {str(k): collect(group, fields[1:]) for k, group in itertools.groupby(evs, key=itemgetter(fields[0]))}

    fields = ("metric", "variant", "task", "iter")
    return collect(sorted(unique, key=itemgetter(*fields), reverse=True), fields)


# -- summaries ---------------------------------------------------------------------------------------------------
def _floor_to(col: str, interval: int) -> str:
    return col if interval == 1 else f"({col} - ((({col} % {interval}) + {interval}) % {interval}))"


def scalar_histogram(call: Call, task_id: str, company: str, samples: int, key: str, metrics: Any) -> dict:
    """``{metric: {variant: {name, x, y}}}`` averaged into at most ``samples`` buckets per series; single values
    left out. Buckets and 32-bit averages as Elasticsearch's histogram."""
    column = "iter" if key == "iter" else "ts"
    mclause, margs = metric_clause(_metric_variants(metrics))
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
    mclause, margs = metric_clause(_metric_variants(metrics))
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
