"""``events.*`` endpoints: task logs, scalars, plots and debug images in SQLite, paged without caps.

Follows the real server (``apiserver/services/events.py``, ``bll/event``): non-log events are
identified by (task, iter, metric, variant, key) so a re-report overwrites, scalars update the task's
``last_metrics``/``last_iteration``, ``get_task_log`` pages by timestamp and returns every event of the
boundary timestamp, ``get_task_events``/``scalar_metrics_iter_raw`` scroll by iteration. Scroll ids
are opaque; here they carry the exact (key, seq) position so no event is skipped or repeated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from collections import defaultdict
from typing import Any, Iterator

from starlette.responses import StreamingResponse

from .. import app
from ..registry import ApiError, Call, bad_request, endpoint
from ..queries import now_iso
from .common import ids_of

EVENT_TYPES = ("log", "training_stats_scalar", "training_stats_vector", "training_debug_image", "plot")
LOCKED = ("publishing", "published")
SKIP_ITERATION_METRICS = (":monitor:machine", ":monitor:gpu")
MIN_LONG, MAX_LONG = -(2 ** 63), 2 ** 63 - 1
NAMES: list[str] = []


def _events_endpoint(name: str):
    """Register an events handler that runs outside the document lock."""
    app.UNLOCKED.add(name)
    NAMES.append(name)
    return endpoint(name)


def _hash(name: str) -> str:
    return hashlib.md5(name.encode("utf-8")).hexdigest()


def _encode_scroll(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode_scroll(scroll_id: str) -> dict:
    try:
        return json.loads(base64.urlsafe_b64decode(scroll_id.encode()))
    except Exception:
        raise ApiError(400, 12, f"Invalid scroll id: {scroll_id[:40]}") from None


def _task_exists(call: Call, task_id: Any, model_events: bool = False) -> dict:
    collection, code = ("models", (201, "Invalid model id")) if model_events else ("tasks", (101, "Invalid task id"))
    if not isinstance(task_id, str):
        raise ApiError(400, code[0], f"{code[1]} (id={task_id!r})")
    with call.store.lock:
        doc = call.store.get(collection, task_id, call.company)
    if doc is None:
        raise ApiError(400, code[0], f"{code[1]} (id={task_id})")
    return doc


# -- writing ---------------------------------------------------------------------------------------
def _valid_entity(call: Call, entity_id: str, model: bool, allow_locked: bool) -> bool:
    doc = call.store.get("models" if model else "tasks", entity_id, call.company)
    if doc is None:
        return False
    if allow_locked:
        return True
    return not doc.get("ready") if model else doc.get("status") not in LOCKED


def add_events(call: Call, events: list[dict]) -> dict:
    """Validate, store and account for a batch of events."""
    if not events:
        raise ApiError(400, 17, "Batch request contains no items")
    errors: dict[str, int] = defaultdict(int)
    rows = []
    per_task_iter: dict[str, int] = {}
    scalars: dict[str, list[dict]] = defaultdict(list)
    now_ms = int(time.time() * 1000)
    with call.store.lock:
        valid: dict[tuple[str, bool], bool] = {}
        for raw in events:
            event = dict(raw)
            event.pop("method", None)
            model = bool(event.get("model_event", False))
            if model and event.get("model") is not None:
                event["task"] = event.pop("model")
            event["model_event"] = model
            allow_locked = bool(event.pop("allow_locked", False))
            etype = (event.get("type") or "").replace(" ", "_")
            if not etype:
                errors["Event must have a 'type' field"] += 1
                continue
            if etype not in EVENT_TYPES:
                errors[f"Invalid event type {etype}"] += 1
                continue
            if model and etype == "log":
                errors["Task log events are not supported for models"] += 1
                continue
            entity = event.get("task")
            if not entity:
                errors["Event must have a 'task' field"] += 1
                continue
            key = (entity, model)
            if key not in valid:
                valid[key] = _valid_entity(call, entity, model, allow_locked)
            if not valid[key]:
                errors[f"Invalid {'model' if model else 'task'} id {entity}"] += 1
                continue
            event["type"] = etype
            if "ts" in event:
                event["timestamp"] = event.pop("ts")
            event.setdefault("timestamp", now_ms)
            event.setdefault("worker", "")
            it = event.get("iter")
            if it is not None:
                try:
                    it = int(it)
                except (TypeError, ValueError):
                    errors["Iteration must be an integer"] += 1
                    continue
                if not MIN_LONG <= it <= MAX_LONG:
                    errors[f"Iteration number should not exceed {MAX_LONG}"] += 1
                    continue
                event["iter"] = it
            if "values" in event:
                event["value"] = event.pop("values")
            event["metric"] = event.get("metric") or ""
            event["variant"] = event.get("variant") or ""
            value = event.get("value")
            if etype == "training_stats_scalar":
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    # Elasticsearch refuses NaN/inf in a numeric field: the real server counts an error
                    errors[f"Invalid scalar value {value!r} for {event['metric']}/{event['variant']}"] += 1
                    continue
                if not model:
                    scalars[entity].append(event)
            if it is not None and event["metric"] not in SKIP_ITERATION_METRICS and not model:
                per_task_iter[entity] = max(it, per_task_iter.get(entity, it))
            ident = None
            if etype != "log":
                ident = _hash("|".join(str(event.get(f, "")) for f in ("task", "iter", "metric", "variant", "key"))
                             + f"|{etype}|{int(model)}")
            try:
                body = json.dumps(event, separators=(",", ":"), allow_nan=False)
            except ValueError:
                errors["Event contains NaN or infinite numbers"] += 1
                continue
            rows.append((call.company, entity, etype, int(event["timestamp"]), it if it is not None else 0,
                         event["metric"], event["variant"], value if etype == "training_stats_scalar" else None,
                         int(model), ident, body))
    if rows:
        with call.store.writing() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO events (company, task, type, ts, iter, metric, variant, value, "
                "model_event, ident, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        _update_tasks(call, {r[1] for r in rows if not r[8]}, per_task_iter, scalars)
    return {"added": len(rows), "errors": sum(errors.values()), "errors_info": dict(errors)}


def _update_tasks(call: Call, task_ids: set[str], iters: dict[str, int], scalars: dict[str, list[dict]]) -> None:
    with call.store.lock:
        for task_id in task_ids:
            doc = call.store.get("tasks", task_id, call.company)
            if doc is None:
                continue
            if task_id in iters:
                doc["last_iteration"] = max(doc.get("last_iteration") or 0, iters[task_id])
            metrics = doc.setdefault("last_metrics", {})
            for ev in scalars.get(task_id, []):
                last = metrics.setdefault(_hash(ev["metric"]), {}).setdefault(_hash(ev["variant"]), {})
                value, it, ts = ev["value"], ev.get("iter", 0), ev["timestamp"]
                last["metric"], last["variant"] = ev["metric"], ev["variant"]
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
            doc["last_update"] = now_iso()
            call.store.save("tasks", doc)


@_events_endpoint("events.add")
def add(call: Call) -> dict:
    """Add one event."""
    return add_events(call, [call.data])


@_events_endpoint("events.add_batch")
def add_batch(call: Call) -> dict:
    """Add events sent as JSON lines."""
    data = call.data if isinstance(call.data, list) else [call.data] if call.data else []
    return add_events(call, data)


# -- reading helpers -------------------------------------------------------------------------------
def _metric_clause(metrics: Any) -> tuple[str, list]:
    """SQL for ``metrics: [{metric, variants}]`` (the real MetricVariants filter)."""
    if not metrics:
        return "", []
    parts, args = [], []
    for m in metrics:
        if not isinstance(m, dict) or "metric" not in m:
            raise bad_request("metrics items need a metric")
        variants = m.get("variants") or []
        if variants:
            parts.append(f"(metric=? AND variant IN ({','.join('?' * len(variants))}))")
            args += [m["metric"], *variants]
        else:
            parts.append("metric=?")
            args.append(m["metric"])
    return " AND (" + " OR ".join(parts) + ")", args


def _rows(call: Call, sql: str, args: list) -> list[dict]:
    return [json.loads(r[0]) for r in call.store.reader().execute(sql, args)]


def _count(call: Call, where: str, args: list) -> int:
    return call.store.reader().execute(f"SELECT COUNT(*) FROM events WHERE {where}", args).fetchone()[0]


# -- logs --------------------------------------------------------------------------------------------
@_events_endpoint("events.get_task_log")
def get_task_log(call: Call) -> dict:
    """A page of log events by timestamp (all events of the boundary timestamp are included)."""
    task_id = call.require("task")
    _task_exists(call, task_id)
    data = call.data
    batch = int(data.get("batch_size") or 500)
    earlier = data.get("navigate_earlier", True)
    base = "company=? AND task=? AND type='log' AND model_event=0"
    args = [call.company, task_id]
    mclause, margs = _metric_clause(data.get("metrics"))
    where, wargs = base + mclause, args + margs
    direction = "DESC" if earlier else "ASC"
    sql = f"SELECT body, ts, seq FROM events WHERE {where}"
    qargs = list(wargs)
    if data.get("from_timestamp"):
        sql += " AND ts < ?" if earlier else " AND ts > ?"
        qargs.append(int(data["from_timestamp"]))
    sql += f" ORDER BY ts {direction}, seq {direction} LIMIT ?"
    rows = list(call.store.reader().execute(sql, qargs + [batch]))
    events = [json.loads(r[0]) for r in rows]
    if rows:
        last_ts, last_seq = rows[-1][1], rows[-1][2]
        op = "<" if earlier else ">"
        events += _rows(call, f"SELECT body FROM events WHERE {where} AND ts=? AND seq {op} ? "
                              f"ORDER BY seq {direction}", wargs + [last_ts, last_seq])
    order = data.get("order")
    if order and ((earlier and order == "asc") or (not earlier and order == "desc")):
        events.reverse()
    return {"events": events, "returned": len(events), "total": _count(call, where, wargs)}


@_events_endpoint("events.download_task_log")
def download_task_log(call: Call):
    """The whole log as a stream: JSON lines (default) or text lines in ``line_format``."""
    task_id = call.require("task")
    _task_exists(call, task_id)
    line_type = str(call.data.get("line_type", "json")).lower()
    line_format = str(call.data.get("line_format", "{asctime} {worker} {level} {msg}"))
    if line_type != "json":
        try:
            line_format.format(**dict.fromkeys(("asctime", "timestamp", "level", "worker", "msg"), ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise ApiError(400, 16, f"Invalid line format: {exc}") from None
        line_format = line_format.rstrip("\n") + "\n"
    return StreamingResponse(_ordered_log_stream(call.store, call.company, task_id, line_type, line_format),
                             media_type="text/plain",
                             headers={"Content-Disposition": f'attachment; filename="task_{task_id}.log"'})


def _ordered_log_stream(store, company: str, task_id: str, line_type: str, line_format: str) -> Iterator[bytes]:
    conn = store.connect()
    try:
        cursor = conn.execute("SELECT body FROM events WHERE company=? AND task=? AND type='log' AND model_event=0 "
                              "ORDER BY ts, seq", (company, task_id))
        while True:
            rows = cursor.fetchmany(5000)
            if not rows:
                return
            out = []
            for (body,) in rows:
                ev = json.loads(body)
                ev["asctime"] = ev.pop("timestamp", None)
                if line_type == "json":
                    ev.pop("type", None)
                    ev.pop("task", None)
                    out.append(json.dumps(ev) + "\n")
                else:
                    out.append(line_format.format_map(defaultdict(str, ev)))
            yield "".join(out).encode("utf-8")
    finally:
        conn.close()


@_events_endpoint("events.clear_task_log")
def clear_task_log(call: Call) -> dict:
    """Delete a task's log events (optionally only older than ``threshold_sec``)."""
    task_id = call.require("task")
    doc = _task_exists(call, task_id)
    if doc.get("status") in LOCKED and not call.data.get("allow_locked"):
        raise ApiError(400, 101, "Cannot update events for a published task")
    sql, args = "DELETE FROM events WHERE company=? AND task=? AND type='log'", [call.company, task_id]
    if call.data.get("threshold_sec"):
        sql += " AND ts < ?"
        args.append(int((time.time() - int(call.data["threshold_sec"])) * 1000))
    with call.store.writing() as conn:
        deleted = conn.execute(sql, args).rowcount
    return {"deleted": deleted}


@_events_endpoint("events.delete_for_task")
def delete_for_task(call: Call) -> dict:
    """Delete every event of a task."""
    task_id = call.require("task")
    doc = _task_exists(call, task_id)
    if doc.get("status") in LOCKED and not call.data.get("allow_locked"):
        raise ApiError(400, 101, "Cannot update events for a published task")
    with call.store.writing() as conn:
        deleted = conn.execute("DELETE FROM events WHERE company=? AND task=? AND model_event=0",
                               (call.company, task_id)).rowcount
    return {"deleted": deleted}


# -- scrolled events ---------------------------------------------------------------------------------
def _keyset_page(call: Call, where: str, args: list, batch: int, desc: bool, after: list | None) -> list[tuple]:
    direction = "DESC" if desc else "ASC"
    sql = f"SELECT body, iter, seq FROM events WHERE {where}"
    qargs = list(args)
    if after is not None:
        sql += " AND (iter, seq) < (?, ?)" if desc else " AND (iter, seq) > (?, ?)"
        qargs += after
    sql += f" ORDER BY iter {direction}, seq {direction} LIMIT ?"
    return list(call.store.reader().execute(sql, qargs + [batch]))


@_events_endpoint("events.get_task_events")
def get_task_events(call: Call) -> dict:
    """Events of a task by iteration, scrolled with ``scroll_id`` (every event, none repeated)."""
    data = dict(call.data)
    state = _decode_scroll(data["scroll_id"]) if data.get("scroll_id") else None
    request = state["request"] if state else {k: data.get(k) for k in
                                              ("task", "event_type", "metrics", "order", "batch_size",
                                               "model_events", "count_total")}
    if data.get("batch_size"):
        request["batch_size"] = data["batch_size"]
    task_id = request.get("task")
    if not task_id:
        raise ApiError(400, 11, "Validation error (missing required fields): task")
    _task_exists(call, task_id, bool(request.get("model_events")))
    if state and state.get("after") is None and state.get("done"):
        return {"events": [], "returned": 0, "total": state.get("total"), "scroll_id": data["scroll_id"]}
    where = "company=? AND task=? AND model_event=?"
    args: list = [call.company, task_id, int(bool(request.get("model_events")))]
    if request.get("event_type"):
        where += " AND type=?"
        args.append(request["event_type"])
    mclause, margs = _metric_clause(request.get("metrics"))
    where += mclause
    args += margs
    total = state.get("total") if state else None
    if total is None and request.get("count_total") is not False:  # the real server counts by default
        total = _count(call, where, args)
    batch = min(int(request.get("batch_size") or 500), 10_000)
    desc = request.get("order") == "desc"
    rows = _keyset_page(call, where, args, batch, desc, state.get("after") if state else None)
    after = [rows[-1][1], rows[-1][2]] if rows else (state.get("after") if state else None)
    scroll = _encode_scroll({"request": request, "after": after, "total": total, "done": not rows})
    events = [json.loads(r[0]) for r in rows]
    return {"events": events, "returned": len(events), "total": total, "scroll_id": scroll}


@_events_endpoint("events.scalar_metrics_iter_raw")
def scalar_metrics_iter_raw(call: Call) -> dict:
    """Every point of one metric's variants, scrolled: ``variants: {v: {"y": [...], "<key>": [...]}}``."""
    data = dict(call.data)
    state = _decode_scroll(data["scroll_id"]) if data.get("scroll_id") else None
    request = state["request"] if state else {k: data.get(k) for k in
                                              ("task", "metric", "key", "batch_size", "count_total",
                                               "model_events")}
    if data.get("batch_size"):
        if int(data["batch_size"]) < 0:
            raise bad_request("batch_size should be non negative number")
        request["batch_size"] = data["batch_size"]
    task_id, metric = request.get("task"), request.get("metric")
    if not task_id or not metric:
        raise ApiError(400, 11, "Validation error (missing required fields): task, metric")
    _task_exists(call, task_id, bool(request.get("model_events")))
    key = request.get("key") or "iter"
    if key not in ("iter", "timestamp", "iso_time"):
        raise bad_request(f"Invalid key {key!r}")
    where = "company=? AND task=? AND model_event=? AND type='training_stats_scalar'"
    args: list = [call.company, task_id, int(bool(request.get("model_events")))]
    mclause, margs = _metric_clause([metric])
    where += mclause
    args += margs
    total = state.get("total") if state else None
    if total is None and request.get("count_total"):
        total = _count(call, where, args)
    if state and state.get("done"):
        return {"variants": {}, "returned": 0, "total": total, "scroll_id": data["scroll_id"]}
    batch = min(int(request.get("batch_size") or 10_000), 200_000)
    rows = _keyset_page(call, where, args, batch, False, state.get("after") if state else None)
    variants: dict[str, dict[str, list]] = {}
    for body, _, _ in rows:
        ev = json.loads(body)
        x = ev.get("iter") if key == "iter" else ev.get("timestamp")
        if key == "iso_time":
            x = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(x / 1000)) + f".{int(x) % 1000:03d}+00:00"
        series = variants.setdefault(ev["variant"], {"y": [], key: []})
        series["y"].append(ev.get("value"))
        series[key].append(x)
    after = [rows[-1][1], rows[-1][2]] if rows else (state.get("after") if state else None)
    scroll = _encode_scroll({"request": request, "after": after, "total": total, "done": not rows})
    return {"variants": variants, "returned": len(rows), "total": total, "scroll_id": scroll}


@_events_endpoint("events.get_scalar_metric_data")
def get_scalar_metric_data(call: Call) -> dict:
    """Scalar events of one metric, scrolled."""
    task_id, metric = call.require("task"), call.require("metric")
    _task_exists(call, task_id, bool(call.data.get("model_events")))
    state = _decode_scroll(call.data["scroll_id"]) if call.data.get("scroll_id") else {}
    where = "company=? AND task=? AND type='training_stats_scalar' AND metric=?"
    args = [call.company, task_id, metric]
    batch = MAX_LONG if call.data.get("no_scroll") else 10_000
    rows = _keyset_page(call, where, args, min(batch, 10_000_000), False, state.get("after"))
    after = [rows[-1][1], rows[-1][2]] if rows else state.get("after")
    return {"events": [json.loads(r[0]) for r in rows], "returned": len(rows), "total": _count(call, where, args),
            "scroll_id": _encode_scroll({"after": after})}


# -- summaries ---------------------------------------------------------------------------------------
@_events_endpoint("events.scalar_metrics_iter_histogram")
def scalar_metrics_iter_histogram(call: Call) -> dict:
    """Scalars per series, averaged into at most ``samples`` buckets (default 6000) like the real server."""
    task_id = call.require("task")
    model_events = bool(call.data.get("model_events"))
    _task_exists(call, task_id, model_events)
    samples = int(call.data.get("samples") or 6000)
    key = call.data.get("key") or "iter"
    xcol = "iter" if key == "iter" else "ts"
    mclause, margs = _metric_clause(call.data.get("metrics"))
    conn = call.store.reader()
    base = "company=? AND task=? AND model_event=? AND type='training_stats_scalar'" + mclause
    args = [call.company, task_id, int(model_events), *margs]
    result: dict[str, dict[str, dict]] = {}
    series = conn.execute(f"SELECT metric, variant, COUNT(*), MIN({xcol}), MAX({xcol}) FROM events WHERE {base} "
                          "GROUP BY metric, variant ORDER BY metric, variant", args).fetchall()
    for metric, variant, count, lo, hi in series:
        if count < samples or samples <= 0:
            rows = conn.execute(f"SELECT {xcol}, AVG(value) FROM events WHERE {base} AND metric=? AND variant=? "
                                f"GROUP BY {xcol} ORDER BY {xcol}", [*args, metric, variant]).fetchall()
        else:
            interval = max(1, math.ceil((hi - lo + 1) / samples))
            rows = conn.execute(f"SELECT ({xcol} / ?) * ?, AVG(value) FROM events WHERE {base} AND metric=? "
                                f"AND variant=? GROUP BY {xcol} / ? ORDER BY 1",
                                [interval, interval, *args, metric, variant, interval]).fetchall()
        xs = [r[0] for r in rows]
        if key == "iso_time":
            xs = [time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(x / 1000)) for x in xs]
        result.setdefault(metric, {})[variant] = {"name": variant, "x": xs, "y": [r[1] for r in rows]}
    return result


@_events_endpoint("events.get_scalar_metrics_and_variants")
def get_scalar_metrics_and_variants(call: Call) -> dict:
    """``{metric: [variants]}`` of a task's scalars."""
    task_id = call.require("task")
    model_events = bool(call.data.get("model_events"))
    _task_exists(call, task_id, model_events)
    metrics: dict[str, list[str]] = {}
    for metric, variant in call.store.reader().execute(
            "SELECT DISTINCT metric, variant FROM events WHERE company=? AND task=? AND model_event=? "
            "AND type='training_stats_scalar' ORDER BY metric, variant", (call.company, task_id, int(model_events))):
        metrics.setdefault(metric, []).append(variant)
    return {"metrics": metrics}


@_events_endpoint("events.get_task_metrics")
def get_task_metrics(call: Call) -> dict:
    """Metric names per task for an event type."""
    out = []
    for task_id in ids_of(call.require("tasks")):
        _task_exists(call, task_id, bool(call.data.get("model_events")))
        sql = "SELECT DISTINCT metric FROM events WHERE company=? AND task=?"
        args = [call.company, task_id]
        if call.data.get("event_type"):
            sql += " AND type=?"
            args.append(call.data["event_type"])
        out.append({"task": task_id, "metrics": [r[0] for r in call.store.reader().execute(sql + " ORDER BY metric",
                                                                                           args)]})
    return {"metrics": out}


@_events_endpoint("events.get_task_single_value_metrics")
def get_task_single_value_metrics(call: Call) -> dict:
    """Single values (``iter`` -2^31) per task."""
    out = []
    for task_id in ids_of(call.require("tasks")):
        doc = _task_exists(call, task_id, bool(call.data.get("model_events")))
        values = [{"metric": e["metric"], "variant": e["variant"], "value": e.get("value"),
                   "timestamp": e.get("timestamp")}
                  for e in _rows(call, "SELECT body FROM events WHERE company=? AND task=? AND "
                                       "type='training_stats_scalar' AND iter=? ORDER BY metric, variant",
                                 [call.company, task_id, -(2 ** 31)])]
        out.append({"task": task_id, "task_name": doc.get("name"), "values": values})
    return {"tasks": out}


@_events_endpoint("events.get_task_latest_scalar_values")
def get_task_latest_scalar_values(call: Call) -> dict:
    """The last value of every scalar series of a task."""
    task_id = call.require("task")
    _task_exists(call, task_id)
    metrics: dict[str, list] = {}
    for metric, variant, value, it in call.store.reader().execute(
            "SELECT metric, variant, value, iter FROM events e WHERE company=? AND task=? AND "
            "type='training_stats_scalar' AND seq = (SELECT seq FROM events WHERE company=e.company AND "
            "task=e.task AND type=e.type AND metric=e.metric AND variant=e.variant ORDER BY iter DESC, seq DESC "
            "LIMIT 1) ORDER BY metric, variant", (call.company, task_id)):
        metrics.setdefault(metric, []).append({"name": variant, "last_value": value, "last_100_value": value,
                                               "iter": it})
    return {"metrics": [{"name": m, "variants": v} for m, v in metrics.items()]}


# -- plots and debug images ------------------------------------------------------------------------------
def _top_iter_events(events: list[dict], max_iters: int) -> list[dict]:
    """Per (metric, variant), the events of its ``max_iters`` latest iterations (events sorted by iter desc)."""
    seen: dict[tuple, set] = defaultdict(set)
    out = []
    for ev in events:
        key = (ev.get("metric"), ev.get("variant"))
        iters = seen[key]
        if ev.get("iter") in iters or len(iters) < max_iters:
            iters.add(ev.get("iter"))
            out.append(ev)
    return out


@_events_endpoint("events.get_task_plots")
def get_task_plots(call: Call) -> dict:
    """Plots of the latest ``iters`` iterations per metric/variant, 10,000 events a scroll page."""
    task_id = call.require("task")
    _task_exists(call, task_id, bool(call.data.get("model_events")))
    state = _decode_scroll(call.data["scroll_id"]) if call.data.get("scroll_id") else {}
    where = "company=? AND task=? AND type='plot' AND model_event=?"
    args = [call.company, task_id, int(bool(call.data.get("model_events")))]
    mclause, margs = _metric_clause(call.data.get("metrics"))
    where, args = where + mclause, args + margs
    size = MAX_LONG if call.data.get("no_scroll") else 10_000
    rows = _keyset_page(call, where, args, min(size, 1_000_000), True, state.get("after"))
    events = _top_iter_events([json.loads(r[0]) for r in rows], int(call.data.get("iters") or 1))
    after = [rows[-1][1], rows[-1][2]] if rows else state.get("after")
    return {"plots": events, "returned": len(events), "total": _count(call, where, args),
            "scroll_id": _encode_scroll({"after": after})}


@_events_endpoint("events.get_multi_task_plots")
def get_multi_task_plots(call: Call) -> dict:
    """Latest plots of several tasks, grouped ``{metric: {variant: {task: event}}}``."""
    plots: dict = {}
    for task_id in ids_of(call.require("tasks")):
        doc = _task_exists(call, task_id)
        rows = _keyset_page(call, "company=? AND task=? AND type='plot' AND model_event=0",
                            [call.company, task_id], 10_000, True, None)
        for ev in _top_iter_events([json.loads(r[0]) for r in rows], int(call.data.get("iters") or 1)):
            ev["name"] = doc.get("name")
            plots.setdefault(ev["metric"], {}).setdefault(ev["variant"], {})[task_id] = ev
    return {"plots": plots, "returned": sum(len(v) for m in plots.values() for v in m.values()), "total": None,
            "scroll_id": None}


@_events_endpoint("events.debug_images")
def debug_images(call: Call) -> dict:
    """Debug images per task/metric, ``iters`` iterations a call, newest first (``navigate_earlier``)."""
    state = _decode_scroll(call.data["scroll_id"]) if call.data.get("scroll_id") and not call.data.get("refresh") \
        else {}
    metrics = call.data.get("metrics")
    if not metrics:
        task = call.require("task")
        metrics = [{"task": task, "metric": m} for m in _distinct_image_metrics(call, task)]
    iters = int(call.data.get("iters") or 1)
    earlier = call.data.get("navigate_earlier", True)
    out, positions = [], dict(state.get("positions") or {})
    for item in metrics:
        task_id, metric = item.get("task"), item.get("metric")
        _task_exists(call, task_id)
        pos_key = f"{task_id}|{metric}"
        where = "company=? AND task=? AND type='training_debug_image' AND model_event=0"
        args = [call.company, task_id]
        if metric is not None:
            where += " AND metric=?"
            args.append(metric)
        last = positions.get(pos_key)
        op = "<" if earlier else ">"
        sql = f"SELECT DISTINCT iter FROM events WHERE {where}" + (f" AND iter {op} ?" if last is not None else "")
        sql += f" ORDER BY iter {'DESC' if earlier else 'ASC'} LIMIT ?"
        its = [r[0] for r in call.store.reader().execute(sql, args + ([last] if last is not None else []) + [iters])]
        iterations = []
        for it in its:
            events = _rows(call, f"SELECT body FROM events WHERE {where} AND iter=? ORDER BY variant, seq", args + [it])
            iterations.append({"iter": it, "events": events})
        if its:
            positions[pos_key] = its[-1]
        out.append({"task": task_id, "metric": metric, "iterations": iterations})
    return {"metrics": out, "scroll_id": _encode_scroll({"positions": positions})}


def _distinct_image_metrics(call: Call, task_id: str) -> list[str]:
    return [r[0] for r in call.store.reader().execute(
        "SELECT DISTINCT metric FROM events WHERE company=? AND task=? AND type='training_debug_image' "
        "ORDER BY metric", (call.company, task_id))]


@_events_endpoint("events.get_debug_image_sample")
def get_debug_image_sample(call: Call) -> dict:
    """The newest debug image of a task/metric/variant (optionally at ``iteration``)."""
    task_id, metric, variant = call.require("task"), call.require("metric"), call.require("variant")
    _task_exists(call, task_id)
    sql = ("SELECT body FROM events WHERE company=? AND task=? AND type='training_debug_image' AND metric=? "
           "AND variant=?")
    args = [call.company, task_id, metric, variant]
    if call.data.get("iteration") is not None:
        sql += " AND iter=?"
        args.append(int(call.data["iteration"]))
    rows = _rows(call, sql + " ORDER BY iter DESC, seq DESC LIMIT 1", args)
    return {"scroll_id": None, "event": rows[0] if rows else None, "min_iteration": None, "max_iteration": None}
