"""``events.*`` endpoints (API 2.23 shapes) over the SQLite event table, without caps that drop data.

Request defaults, paging and result shapes follow the real server (``apiserver/services/events.py`` and
``bll/event``); the differences are deliberate and safe: scroll ids are opaque and carry the exact
position (so an iteration 0 boundary or more than 10,000 events on one key value never loops or skips),
and plots are stored uncompressed.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Iterator

from starlette.responses import StreamingResponse

from .. import app
from ..app import RawJSON
from ..events_store import (LOCKED, SINGLE_VALUE_ITER, add_events, count, decode_scroll, encode_scroll,
                            json_fields_verbatim, key_page, metric_clause)
from ..registry import ApiError, Call, bad_request, endpoint, missing_field
from .common import ids_of
from .events_iterators import register_iterators

EMPTY_SCROLL = "FFFF"
MAX_SAMPLE_BUCKETS = 6000
MAX_AGGS_ELEMENTS = 50


def events_endpoint(name: str):
    """Register an events handler that runs outside the document lock (it does its own SQLite I/O)."""
    app.UNLOCKED.add(name)
    return endpoint(name)


def entity(call: Call, entity_id: Any, model_events: bool = False) -> dict:
    """The task (or model) document, or the real server's 400 invalid id error."""
    collection, code, what = ("models", 201, "model") if model_events else ("tasks", 101, "task")
    if not isinstance(entity_id, str) or not entity_id:
        raise missing_field("model" if model_events else "task")
    with call.store.lock:
        doc = call.store.get(collection, entity_id, call.company)
    if doc is None:
        raise ApiError(400, code, f"Invalid {what} id: id={entity_id}")
    return dict(doc)


def _loads(rows) -> list[dict]:
    return [json.loads(r[0]) for r in rows]


def _raw_events(bodies: list[str]) -> RawJSON:
    """The stored event bodies as a JSON array, without decoding them."""
    return RawJSON("[" + ",".join(bodies) + "]")


def _int(data: dict, name: str, default: int | None) -> int | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise bad_request(f"Validation error (invalid value for {name}): {value!r}")
    return int(value)


# -- writing -----------------------------------------------------------------------------------------
@events_endpoint("events.add")
def add(call: Call) -> dict:
    """One event (JSON body)."""
    return add_events(call, [dict(call.data)])


@events_endpoint("events.add_batch")
def add_batch(call: Call) -> dict:
    """Events sent as JSON lines."""
    data = call.data if isinstance(call.data, list) else [call.data] if call.data else []
    if not data:
        raise ApiError(400, 17, "Batch request contains no items")
    if not all(isinstance(e, dict) for e in data):
        raise ApiError(400, 12, "json lines must contain objects")
    return add_events(call, [dict(e) for e in data])


# -- logs --------------------------------------------------------------------------------------------
@events_endpoint("events.get_task_log")
def get_task_log(call: Call) -> dict:
    """Up to ``batch_size`` (5000) log events before/after ``from_timestamp``, plus the rest of the last
    timestamp; ``order`` only flips the page."""
    data = call.data
    task_id = call.require("task")
    entity(call, task_id)
    batch = _int(data, "batch_size", 5000)
    earlier = bool(data.get("navigate_earlier", True))
    mclause, margs = metric_clause(data.get("metrics"))
    where = "company=? AND task=? AND type='log' AND model_event=0" + mclause
    args = [call.company, task_id, *margs]
    conn = call.store.reader()
    from_ts = _int(data, "from_timestamp", None)
    after = None
    if from_ts:  # like the real server, 0 means "from the start"
        after = [from_ts, -1] if earlier else [from_ts, 2 ** 62]
    rows, _ = key_page(conn, where, args, "ts", max(batch, 1), earlier, after) if batch else ([], None)
    bodies = [r[0] for r in rows]
    order = data.get("order")
    if order and ((earlier and order == "asc") or (not earlier and order == "desc")):
        bodies.reverse()
    return {"events": _raw_events(bodies), "returned": len(bodies), "total": count(conn, where, args)}


def _line_format(data: dict) -> str:
    line_format = str(data.get("line_format", "{asctime} {worker} {level} {msg}"))
    if not line_format:
        raise missing_field("line_format is required for plain text lines")
    fields = {"asctime", "timestamp", "level", "worker", "msg"}
    unknown: set[str] = set()
    while True:
        try:
            line_format.format(**dict.fromkeys(fields | unknown))
            break
        except KeyError as exc:
            unknown.add(exc.args[0])
        except Exception as exc:  # noqa: BLE001 - the real server reports any format error this way
            raise ApiError(400, 16, f"Invalid value for fields (invalid line format): error={exc}") from None
    if unknown:
        raise ApiError(400, 16, "Invalid value for fields (undefined placeholders in line format): "
                                f"placeholders=({', '.join(sorted(unknown))})")
    return line_format.rstrip("\n") + "\n"


@events_endpoint("events.download_task_log")
def download_task_log(call: Call) -> StreamingResponse:
    """The whole log, oldest first, streamed: JSON lines (default) or ``line_format`` text lines."""
    task_id = call.require("task")
    entity(call, task_id)
    is_json = str(call.data.get("line_type", "json")).lower() == "json"
    line_format = "" if is_json else _line_format(call.data)
    return StreamingResponse(_log_stream(call.store, call.company, task_id, is_json, line_format),
                             media_type="text/plain",
                             headers={"Content-Disposition": f'attachment; filename="task_{task_id}.log"'})


def _log_stream(store, company: str, task_id: str, is_json: bool, line_format: str) -> Iterator[bytes]:
    conn = store.connect()  # a connection of its own: the stream outlives the request thread
    try:
        cursor = conn.execute("SELECT body FROM events WHERE company=? AND task=? AND type='log' AND model_event=0 "
                              "ORDER BY ts, seq", (company, task_id))
        while rows := cursor.fetchmany(2000):
            out = []
            for (body,) in rows:
                ev = json.loads(body)
                ev["asctime"] = ev.pop("timestamp", None)
                if is_json:
                    ev.pop("type", None)
                    ev.pop("task", None)
                    out.append(json.dumps(ev, separators=(",", ":")) + "\n")
                else:
                    out.append(line_format.format_map(defaultdict(str, ev)))
            yield "".join(out).encode("utf-8", "surrogatepass")
    finally:
        conn.close()


def _validate_for_update(call: Call, task_id: Any, allow_locked: bool) -> None:
    doc = entity(call, task_id)
    if not allow_locked and doc.get("status") in LOCKED:
        raise ApiError(400, 101, f"Cannot update events for a published task: company={call.company}, id={task_id}")


@events_endpoint("events.clear_task_log")
def clear_task_log(call: Call) -> dict:
    """Delete a task's log events (older than ``threshold_sec``; by metric include/exclude lists)."""
    task_id = call.require("task")
    _validate_for_update(call, task_id, bool(call.data.get("allow_locked")))
    sql, args = "DELETE FROM events WHERE company=? AND task=? AND type='log'", [call.company, task_id]
    if call.data.get("threshold_sec"):
        sql += " AND ts < ?"
        args.append(int((time.time() - int(call.data["threshold_sec"])) * 1000))
    for name, op in (("include_metrics", "IN"), ("exclude_metrics", "NOT IN")):
        if call.data.get(name):
            sql += f" AND metric {op} ({','.join('?' * len(call.data[name]))})"
            args += list(call.data[name])
    with call.store.writing() as conn:
        return {"deleted": conn.execute(sql, args).rowcount}


@events_endpoint("events.delete_for_task")
def delete_for_task(call: Call) -> dict:
    """Delete every event of a task."""
    task_id = call.require("task")
    _validate_for_update(call, task_id, bool(call.data.get("allow_locked")))
    with call.store.writing() as conn:
        return {"deleted": conn.execute("DELETE FROM events WHERE company=? AND task=? AND model_event=0",
                                        (call.company, task_id)).rowcount}


@events_endpoint("events.delete_for_model")
def delete_for_model(call: Call) -> dict:
    """Delete every event of a model."""
    model_id = call.require("model")
    doc = entity(call, model_id, True)
    if not call.data.get("allow_locked") and doc.get("ready"):
        raise ApiError(400, 201, f"Cannot update events for a published model: company={call.company}, "
                                 f"id={model_id}")
    with call.store.writing() as conn:
        return {"deleted": conn.execute("DELETE FROM events WHERE company=? AND task=? AND model_event=1",
                                        (call.company, model_id)).rowcount}


# -- scrolled events -----------------------------------------------------------------------------------
@events_endpoint("events.get_task_events")
def get_task_events(call: Call) -> dict:
    """Events by iteration (``order`` asc by default), ``batch_size`` (500, at most 10,000) a page plus the rest
    of the last iteration; the scroll id carries the request, position and total."""
    data = dict(call.data)
    if data.get("scroll_id"):
        state = decode_scroll(data["scroll_id"])
        if state.get("after") is None:
            return {"returned": 0, "total": state.get("total"), "scroll_id": data["scroll_id"], "events": []}
        request = state["request"]
        request["batch_size"] = data.get("batch_size") or request["batch_size"]
        total, after = state.get("total"), state["after"]
    else:
        request = {"task": data.get("task"), "batch_size": _int(data, "batch_size", 500),
                   "metrics": data.get("metrics"), "event_type": data.get("event_type") or "all",
                   "order": data.get("order") or "asc", "count_total": data.get("count_total", True),
                   "model_events": bool(data.get("model_events", False))}
        if request["order"] not in ("asc", "desc"):
            raise bad_request(f"Validation error (invalid order): {request['order']}")
        total, after = None, None
    task_id = request["task"]
    if not task_id:
        raise missing_field("task")
    entity(call, task_id, request["model_events"])
    where = "company=? AND task=? AND model_event=?"
    args: list = [call.company, task_id, int(request["model_events"])]
    if request["event_type"] != "all":
        where += " AND type=?"
        args.append(request["event_type"])
    mclause, margs = metric_clause(request["metrics"])
    where, args = where + mclause, args + margs
    conn = call.store.reader()
    if request["count_total"] and total is None:
        total = count(conn, where, args)
    batch = min(int(request["batch_size"]), 10_000)
    rows, position = key_page(conn, where, args, "iter", max(batch, 1), request["order"] == "desc", after)
    scroll = encode_scroll({"request": request, "total": total, "after": position if rows else None})
    return {"returned": len(rows), "total": total, "scroll_id": scroll, "events": _raw_events([r[0] for r in rows])}


@events_endpoint("events.scalar_metrics_iter_raw")
def scalar_metrics_iter_raw(call: Call) -> dict:
    """Every point of one metric's variants by ``key`` (iter/timestamp/iso_time); ``batch_size`` (10,000,
    at most 200,000) is fetched in 10,000-event steps, each with the rest of its last key value."""
    data = dict(call.data)
    if data.get("batch_size") is not None and _int(data, "batch_size", None) < 0:
        raise bad_request("Validation error (batch_size should be non negative number)")
    if data.get("scroll_id"):
        state = decode_scroll(data["scroll_id"])
        if state.get("after") is None:
            return {"returned": 0, "total": state.get("total"), "scroll_id": data["scroll_id"], "variants": {}}
        request = state["request"]
        request["batch_size"] = data.get("batch_size") or request["batch_size"]
        total, after = state.get("total"), state["after"]
    else:
        request = {"task": data.get("task"), "metric": data.get("metric"), "key": data.get("key") or "iter",
                   "batch_size": data.get("batch_size") or 10_000, "count_total": bool(data.get("count_total")),
                   "model_events": bool(data.get("model_events", False))}
        total, after = None, None
    key = request["key"]
    if key not in ("iter", "timestamp", "iso_time"):
        raise bad_request(f"Validation error (invalid key): {key}")
    if not request["task"]:
        raise missing_field("task")
    if not isinstance(request["metric"], dict):
        raise missing_field("metric")
    entity(call, request["task"], request["model_events"])
    mclause, margs = metric_clause([request["metric"]])
    where = "company=? AND task=? AND model_event=? AND type='training_stats_scalar'" + mclause
    args = [call.company, request["task"], int(request["model_events"]), *margs]
    conn = call.store.reader()
    if request["count_total"] and total is None:
        total = count(conn, where, args)
    batch = min(int(request["batch_size"]), 200_000)
    column, field = ("iter", "iter") if key == "iter" else ("ts", "timestamp")
    verbatim = json_fields_verbatim(conn)
    # (variant, key JSON, value JSON) read from the stored JSON when SQLite gives its text back verbatim
    columns = f"variant, body -> '$.{field}', body -> '$.value'" if verbatim else "body"
    points: list[tuple] = []
    for _ in range(math.ceil(batch / 10_000)):
        rows, position = key_page(conn, where, args, column, max(min(batch, 10_000), 1), False, after, columns)
        if not rows:
            break
        if verbatim:
            points += rows
        else:
            points += [(ev["variant"], _json(ev.get(field)), _json(ev.get("value"))) for ev in _loads(rows)]
        after = position
    series: dict[str, tuple[list[str], list[str]]] = {}
    for variant, key_text, value_text in (p[:3] for p in points):
        ys, keys = series.setdefault(variant, ([], []))
        ys.append(value_text or "null")
        keys.append(key_text or "null")
    variants = RawJSON("{" + ",".join(f'{_json(v)}:{{"y":[{",".join(ys)}],{_json(key)}:[{",".join(keys)}]}}'
                                      for v, (ys, keys) in series.items()) + "}")
    scroll = encode_scroll({"request": request, "total": total, "after": after if points else None})
    return {"returned": len(points), "total": total, "scroll_id": scroll, "variants": variants}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


@events_endpoint("events.get_scalar_metric_data")
def get_scalar_metric_data(call: Call) -> dict:
    """One metric's scalar events, newest iteration first, 500 a page; ``FFFF`` once exhausted."""
    data = call.data
    if data.get("scroll_id") == EMPTY_SCROLL:
        return {"events": [], "returned": 0, "total": 0, "scroll_id": None}
    task_id, metric = call.require("task"), call.require("metric")
    entity(call, task_id, bool(data.get("model_events")))
    state = decode_scroll(data["scroll_id"]) if data.get("scroll_id") else {}
    where = "company=? AND task=? AND type='training_stats_scalar' AND metric=?"
    args = [call.company, task_id, metric]
    conn = call.store.reader()
    after = state.get("after")
    sql = f"SELECT body, iter, seq FROM events WHERE {where}"
    if after is not None:
        sql += " AND (iter, seq) < (?, ?)"
    rows = conn.execute(sql + " ORDER BY iter DESC, seq DESC LIMIT 500",
                        args + (list(after) if after is not None else [])).fetchall()
    events = _loads(rows)
    if data.get("no_scroll"):
        scroll = None
    elif not rows:
        scroll = EMPTY_SCROLL
    else:
        scroll = encode_scroll({"after": [rows[-1][1], rows[-1][2]]})
    return {"events": events, "returned": len(events), "total": count(conn, where, args), "scroll_id": scroll}


# -- summaries -----------------------------------------------------------------------------------------
def _floor_to(col: str, interval: int) -> str:
    return col if interval == 1 else f"({col} - ((({col} % {interval}) + {interval}) % {interval}))"


@events_endpoint("events.scalar_metrics_iter_histogram")
def scalar_metrics_iter_histogram(call: Call) -> dict:
    """``{metric: {variant: {name, x, y}}}`` averaged into at most ``samples`` (2000, 1..6000) buckets per
    series; single values are left out. Buckets and 32-bit averages as Elasticsearch's histogram."""
    data = call.data
    task_id = call.require("task")
    model_events = bool(data.get("model_events", False))
    samples = _int(data, "samples", 2000)
    if not 1 <= samples <= MAX_SAMPLE_BUCKETS:
        raise bad_request(f"Validation error (samples must be between 1 and {MAX_SAMPLE_BUCKETS}): {samples}")
    key = data.get("key") or "iter"
    if key not in ("iter", "timestamp", "iso_time"):
        raise bad_request(f"Validation error (invalid key): {key}")
    entity(call, task_id, model_events)
    column = "iter" if key == "iter" else "ts"
    mclause, margs = metric_clause(data.get("metrics"))
    where = (f"company=? AND task=? AND model_event=? AND type='training_stats_scalar' AND iter > {SINGLE_VALUE_ITER}"
             + mclause)
    args = [call.company, task_id, int(model_events), *margs]
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


@events_endpoint("events.get_scalar_metrics_and_variants")
def get_scalar_metrics_and_variants(call: Call) -> dict:
    """``{metric: [variants]}`` of a task's scalars (sorted)."""
    return _metrics_and_variants(call, "training_stats_scalar")


@events_endpoint("events.get_vector_metrics_and_variants")
def get_vector_metrics_and_variants(call: Call) -> dict:
    """``{metric: [variants]}`` of a task's vectors (sorted)."""
    return _metrics_and_variants(call, "training_stats_vector")


def _metrics_and_variants(call: Call, event_type: str) -> dict:
    task_id = call.require("task")
    model_events = bool(call.data.get("model_events"))
    entity(call, task_id, model_events)
    metrics: dict[str, list[str]] = {}
    for metric, variant in call.store.reader().execute(
            "SELECT DISTINCT metric, variant FROM events WHERE company=? AND task=? AND type=? AND model_event=? "
            "ORDER BY metric, variant", (call.company, task_id, event_type, int(model_events))):
        metrics.setdefault(metric, []).append(variant)
    return {"metrics": metrics}


@events_endpoint("events.get_task_metrics")
def get_task_metrics(call: Call) -> dict:
    """Metric names (sorted, single values left out) of each task for one ``event_type``."""
    task_ids = ids_of(call.require("tasks"))
    event_type = call.require("event_type")
    model_events = bool(call.data.get("model_events"))
    for task_id in task_ids:
        entity(call, task_id, model_events)
    out = []
    for task_id in task_ids:
        sql = (f"SELECT DISTINCT metric FROM events WHERE company=? AND task=? AND iter > {SINGLE_VALUE_ITER}"
               " AND model_event=?")
        args: list = [call.company, task_id, int(model_events)]
        if event_type != "all":
            sql += " AND type=?"
            args.append(event_type)
        out.append({"task": task_id, "metrics": [r[0] for r in call.store.reader().execute(sql + " ORDER BY metric",
                                                                                           args)]})
    return {"metrics": out}


@events_endpoint("events.get_multi_task_metrics")
def get_multi_task_metrics(call: Call) -> dict:
    """``[{metric, variants}]`` reported by any of the tasks (sorted)."""
    task_ids = [t for t in ids_of(call.require("tasks")) if _exists(call, t, bool(call.data.get("model_events")))]
    if not task_ids:
        return {"metrics": []}
    sql = (f"SELECT DISTINCT metric, variant FROM events WHERE company=? AND task IN "
           f"({','.join('?' * len(task_ids))}) AND model_event=?")
    args: list = [call.company, *task_ids, int(bool(call.data.get("model_events")))]
    event_type = call.data.get("event_type") or "all"
    if event_type != "all":
        sql += " AND type=?"
        args.append(event_type)
    metrics: dict[str, list[str]] = {}
    for metric, variant in call.store.reader().execute(sql + " ORDER BY metric, variant", args):
        metrics.setdefault(metric, []).append(variant)
    return {"metrics": [{"metric": m, "variants": v} for m, v in metrics.items()]}


def _exists(call: Call, task_id: str, model_events: bool) -> bool:
    with call.store.lock:
        return call.store.get("models" if model_events else "tasks", task_id, call.company) is not None


@events_endpoint("events.get_task_single_value_metrics")
def get_task_single_value_metrics(call: Call) -> dict:
    """Single values (iteration -2^31) of the tasks that have any."""
    model_events = bool(call.data.get("model_events"))
    docs = {t: entity(call, t, model_events) for t in ids_of(call.require("tasks")) if _exists(call, t, model_events)}
    mclause, margs = metric_clause(call.data.get("metrics"))
    out = []
    for task_id, doc in docs.items():
        rows = call.store.reader().execute(
            f"SELECT body FROM events WHERE company=? AND task=? AND type='training_stats_scalar' AND iter=?{mclause} "
            "ORDER BY metric, variant, seq", [call.company, task_id, SINGLE_VALUE_ITER, *margs])
        values = [{k: ev.get(k) for k in ("metric", "variant", "value", "timestamp")} for ev in _loads(rows)]
        if values:
            out.append({"task": task_id, "task_name": doc.get("name"), "values": values})
    return {"tasks": out}


@events_endpoint("events.get_task_latest_scalar_values")
def get_task_latest_scalar_values(call: Call) -> dict:
    """Per metric/variant the value of the highest iteration (of the events with a value > 0, as the real
    server's query), plus the task's last iteration, name, status and last event write time."""
    task_id = call.require("task")
    doc = entity(call, task_id)
    conn = call.store.reader()
    metrics: dict[str, list] = {}
    last_ts = 0
    for metric, variant, value, written in conn.execute(
            "SELECT metric, variant, value, (SELECT MAX(json_extract(body, '$.\"@timestamp\"')) FROM events b "
            "WHERE b.company=e.company AND b.task=e.task AND b.type=e.type AND b.metric=e.metric "
            "AND b.variant=e.variant AND b.value > 0) FROM events e WHERE company=? AND task=? "
            "AND type='training_stats_scalar' AND value > 0 AND seq = (SELECT seq FROM events x WHERE "
            "x.company=e.company AND x.task=e.task AND x.type=e.type AND x.metric=e.metric AND x.variant=e.variant "
            "AND x.value > 0 ORDER BY iter DESC, seq DESC LIMIT 1) ORDER BY metric, variant", (call.company, task_id)):
        metrics.setdefault(metric, []).append({"name": variant, "last_value": value, "last_10_value": value})
        if written:
            stamp = datetime.strptime(written, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            last_ts = max(last_ts, int(stamp.timestamp() * 1000))
    last_iter = conn.execute("SELECT MAX(iter) FROM events WHERE company=? AND task=? AND model_event=0",
                             (call.company, task_id)).fetchone()[0]
    return {"metrics": [{"name": m, "variants": v} for m, v in metrics.items()], "last_iter": last_iter or 0,
            "name": doc.get("name"), "status": doc.get("status"), "last_timestamp": last_ts}


register_iterators(events_endpoint, entity)
