"""Event storage for the local server: validation on insert, task statistics, keyset paging.

Follows the real server's ``bll/event/event_bll.py``: non-log events are identified by
(task, iter, metric, variant, key) so a re-report overwrites; scalar values must be finite 32-bit
floats (Elasticsearch rejects others and the real server answers 500); the task's ``last_metrics``,
``last_iteration``, ``metric_stats`` and ``last_update`` follow each batch; plots of 100,000 characters
or more are stored compressed (``plot_data``, :mod:`.plots`). Reading is in the ``bll`` layer's ``event``.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..core import ApiError, Call, bad_request
from ..core.constants import EVENT_TYPES, LOCKED_STATUSES
from .event_stats import field_hash, update_model_stats, update_task_stats
from .plots import compress_plot
MIN_LONG, MAX_LONG = -(2 ** 63), 2 ** 63 - 1
FLOAT32_MAX = 3.4028234663852886e38
BULK_CHUNK = 500  # the real server indexes in chunks of 500 and stops at the first failing chunk
INVALID_ITERATION = f"Iteration number should not exceed {MAX_LONG}"
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def float32(value: float) -> float:
    """``value`` as Elasticsearch keeps a ``float`` field's doc value (aggregations use these)."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _es_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _scalar_error(value: Any) -> str | None:
    """Why Elasticsearch would refuse ``value`` in the ``float`` field ``value`` (None if it accepts it)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return f"failed to parse field [value] of type [float]. Preview of field's value: '{value}'"
    try:
        number = float(value)
    except ValueError:
        return f"failed to parse field [value] of type [float]. Preview of field's value: '{value}'"
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        shown = "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
        return f"[float] supports only finite values, but got [{shown}]"
    return None


def _valid_entities(call: Call, ids: dict[str, bool], model: bool) -> set[str]:
    valid = set()
    for entity_id, allow_locked in ids.items():
        doc = call.store.get("models" if model else "tasks", entity_id, call.company)
        if doc is None:
            continue
        if allow_locked or not (doc.get("ready") if model else doc.get("status") in LOCKED_STATUSES):
            valid.add(entity_id)
    return valid


def add_events(call: Call, events: list[dict], allow_locked: bool = False) -> dict:
    """Validate, store and account for a batch of events exactly as the real ``add_events``.

    ``model_event`` and ``allow_locked`` are per event (consistent per task/model, as the current server; the
    2.23 server took the first event's for the whole batch); a model event's ``iter`` is always 0 on 1.9.2 (API
    2.23), later releases keep it and update the model's ``last_iteration``/``last_metrics``; a scalar's
    ``x_axis_label`` goes to its series' ``last_metrics``; plots get ``plot_len`` (and ``source_urls``) and are
    compressed from ``PLOT_COMPRESSION_THRESHOLD`` characters on.

    Args:
        call: The API call (store, company, worker).
        events: The events, as sent (changed in place into what is stored).
        allow_locked: Default of each event's ``allow_locked``.

    Returns:
        ``added``, ``errors`` and ``errors_info`` as the real server answers.

    Raises:
        ApiError: 400 for an inconsistent batch or when nothing was added, 500 where Elasticsearch fails.
    """
    task_ids, model_ids = _entity_ids(events, allow_locked)
    with call.store.lock:
        valid_models = _valid_entities(call, model_ids, True)
        valid_tasks = _valid_entities(call, task_ids, False)
    batch = _Batch(now_ms=int(time.time() * 1000), es_now=_es_timestamp())
    for event in events:
        label = event.get("x_axis_label") if call.release.scalar_x_axis_labels else None
        try:
            etype, model, entity = _checked_event(event, valid_models, valid_tasks)
            it = _normalize_event(call, batch, event, etype, model)
        except _Rejected as exc:
            batch.errors[exc.reason] += 1
            continue
        _record_event(call, batch, event, etype, model, entity, it, label)
    return _commit_batch(call, batch)


class _Rejected(Exception):
    """An event the real server skips, counted in ``errors_info`` under ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Batch:
    """What ``add_events`` gathers while going through a batch.

    Attributes:
        now_ms: The batch's default event ``timestamp`` (epoch milliseconds).
        es_now: The batch's ``@timestamp``.
        errors: Skipped events per reason.
        rows: Rows to insert; None for an event Elasticsearch would refuse.
        failure: Index in ``rows`` and Elasticsearch's reason of the first refused event.
        task_iter: Each task's highest iteration in the batch.
        scalars: Each task's scalar events (with float values).
        stats: Task -> metric -> event type -> latest timestamp.
        used: Tasks that got events.
        used_models: Models that got events (releases after 1.9.2 update their statistics).
    """

    now_ms: int
    es_now: str
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows: list[tuple | None] = field(default_factory=list)
    failure: tuple[int, str] | None = None
    task_iter: dict[str, int] = field(default_factory=dict)
    scalars: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    stats: dict[str, dict[str, dict[str, int]]] = field(default_factory=lambda: defaultdict(dict))
    used: set[str] = field(default_factory=set)
    used_models: set[str] = field(default_factory=set)


def _entity_ids(events: list[dict], allow_locked: bool) -> tuple[dict[str, bool], dict[str, bool]]:
    """The batch's tasks and models, each with its ``allow_locked``; ``model`` becomes ``task``.

    Args:
        events: The events (their ``method``, ``model`` and ``allow_locked`` keys are consumed).
        allow_locked: Default of each event's ``allow_locked``.

    Returns:
        Task ids and model ids, each mapped to whether it may be locked.

    Raises:
        ApiError: 400 for a non-string id or inconsistent ``allow_locked`` / ``model_event`` settings.
    """
    task_ids: dict[str, bool] = {}
    model_ids: dict[str, bool] = {}
    for event in events:
        event.pop("method", None)  # the SDK's spurious key
        if event.get("model_event", False):
            model = event.pop("model", None)
            if model is not None:
                event["task"] = model
            entity_ids = model_ids
        else:
            event["model_event"] = False
            entity_ids = task_ids
        entity = event.get("task")
        entity_allow = bool(event.pop("allow_locked", allow_locked))
        if entity is None:
            continue
        if not isinstance(entity, str):
            raise bad_request(f"Validation error (invalid task id {entity!r})")
        if entity_ids.setdefault(entity, entity_allow) != entity_allow:
            raise bad_request(f"Validation error (Inconsistent allow_locked setting in the passed events for {entity})")
    both = set(task_ids) & set(model_ids)
    if both:
        raise bad_request("Validation error (Inconsistent model_event setting in the passed events: "
                          f"tasks=({', '.join(sorted(both))}))")
    return task_ids, model_ids


def _checked_event(event: dict, valid_models: set[str], valid_tasks: set[str]) -> tuple[str, bool, str]:
    """An event's type, whether it is a model event, and its task or model.

    Args:
        event: The event (``x_axis_label`` is dropped).
        valid_models: Models that may get events.
        valid_tasks: Tasks that may get events.

    Returns:
        The event type (spaces as underscores), the model flag and the entity id.

    Raises:
        _Rejected: The event lacks a valid type or entity.
    """
    event.pop("x_axis_label", None)
    etype = event.get("type")
    if etype is None:
        raise _Rejected("Event must have a 'type' field")
    etype = str(etype).replace(" ", "_")
    if etype not in EVENT_TYPES:
        raise _Rejected(f"Invalid event type {etype}")
    model = bool(event["model_event"])
    if model and etype == "log":
        raise _Rejected("Task log events are not supported for models")
    entity = event.get("task")
    if entity is None:
        raise _Rejected("Event must have a 'task' field")
    if entity not in (valid_models if model else valid_tasks):
        raise _Rejected(f"Invalid {'model' if model else 'task'} id {entity}")
    return etype, model, entity


def _normalize_event(call: Call, batch: _Batch, event: dict, etype: str, model: bool) -> int | None:
    """Fill in the stored form of an event: timestamps, worker, iteration, value, metric and variant.

    Args:
        call: The API call (its worker is the default ``worker``).
        batch: The batch (its timestamps).
        event: The event, changed in place.
        etype: Its checked type.
        model: Whether it is a model event.

    Returns:
        The event's iteration, or None when it has none.

    Raises:
        _Rejected: The iteration is out of the 64-bit range.
        ApiError: 500 for an iteration that is not an integer.
    """
    event["type"] = etype
    event["@timestamp"] = batch.es_now
    if "ts" in event:
        event["timestamp"] = event.pop("ts")
    if "timestamp" not in event:
        event["timestamp"] = batch.now_ms
    if "worker" not in event:
        event["worker"] = call.extra.get("worker", "")
    it = event.get("iter")
    if it is not None:
        it = _iteration(it, model and not call.release.model_events_keep_iterations)
        event["iter"] = it
    if "values" in event:
        event["value"] = event.pop("values")
    event["metric"] = event.get("metric") or ""
    event["variant"] = event.get("variant") or ""
    event["model_event"] = model
    if etype == "plot":
        compress_plot(event)
    return it


def _iteration(it: Any, at_zero: bool) -> int:
    """An event's ``iter`` as stored (``at_zero``: a model event on 1.9.2, which keeps one iteration of them).

    Raises:
        _Rejected: Out of the 64-bit range.
        ApiError: 500 when not an integer (the real server fails the same way).
    """
    if at_zero:
        return 0
    try:
        it = int(it)
    except (TypeError, ValueError):
        raise ApiError(500, 0, f"invalid literal for int() with base 10: {it!r}") from None
    if not MIN_LONG <= it <= MAX_LONG:
        raise _Rejected(INVALID_ITERATION)
    return it


def _encoded_event(event: dict, etype: str) -> tuple[str | None, int, str | None]:
    """An event's JSON body and timestamp, with why Elasticsearch would refuse it (None if it accepts it)."""
    reason = _scalar_error(event.get("value")) if etype == "training_stats_scalar" else None
    try:
        body = _encode(event)
    except ValueError:
        reason = reason or "[float] supports only finite values, but got [NaN]"
        body = None
    try:
        timestamp = int(event["timestamp"])
    except (TypeError, ValueError):
        reason = reason or f"failed to parse field [timestamp] of type [date]: '{event['timestamp']}'"
        timestamp = 0
    return body, timestamp, reason


def _record_event(call: Call, batch: _Batch, event: dict, etype: str, model: bool, entity: str,
                  it: int | None, label: Any = None) -> None:
    """Add a normalized event's row to the batch and account for it in its task's statistics.

    Args:
        call: The API call (its company).
        batch: The batch.
        event: The normalized event.
        etype: Its type.
        model: Whether it is a model event.
        entity: Its task or model.
        it: Its iteration (None when it has none).
        label: Its ``x_axis_label`` (scalars).
    """
    value = event.get("value")
    body, timestamp, reason = _encoded_event(event, etype)
    if reason:
        if batch.failure is None:
            batch.failure = (len(batch.rows), reason)
        batch.rows.append(None)
        return
    ident = None
    if etype != "log":
        ident = field_hash("-".join(str(event[f]) for f in ("task", "iter", "metric", "variant", "key")
                                    if f in event) + f"|{etype}|{int(model)}")
    number = float(value) if etype == "training_stats_scalar" and value is not None else None
    batch.rows.append((call.company, entity, etype, timestamp, it, event["metric"],
                       event["variant"], float32(number) if number is not None else None, int(model), ident, body))
    if model and not call.release.model_events_keep_iterations:
        return  # 1.9.2 leaves the model as it was
    if it is not None and event["metric"] not in (":monitor:machine", ":monitor:gpu"):
        batch.task_iter[entity] = max(it, batch.task_iter.get(entity, 0))
    if model:
        batch.used_models.add(entity)
        if number is not None:
            batch.scalars[entity].append({**event, "value": number, "x_axis_label": label})
    else:
        _account_task_event(batch, event, etype, entity, number, timestamp, label)


def _account_task_event(batch: _Batch, event: dict, etype: str, task: str, number: float | None,
                        timestamp: int, label: Any = None) -> None:
    """Note a stored task event for ``last_metrics`` and ``metric_stats``."""
    batch.used.add(task)
    if etype == "training_stats_scalar" and number is not None:
        batch.scalars[task].append({**event, "value": number, "x_axis_label": label})
    if event["metric"]:
        last = batch.stats[task].setdefault(event["metric"], {})
        if etype not in last or last[etype] < timestamp:
            last[etype] = timestamp


def _commit_batch(call: Call, batch: _Batch) -> dict:
    """Store the batch's rows and update its tasks, failing as Elasticsearch's bulk indexing would.

    Args:
        call: The API call.
        batch: The gathered batch.

    Returns:
        ``added``, ``errors`` and ``errors_info``.

    Raises:
        ApiError: 500 for a refused document or an out-of-range iteration, 400 when nothing was added.
    """
    errors, rows = batch.errors, batch.rows
    if batch.failure is not None:
        # Elasticsearch indexes the other documents of the failing chunk, then the bulk helper raises
        end = (batch.failure[0] // BULK_CHUNK + 1) * BULK_CHUNK
        _insert(call, [r for r in rows[:end] if r is not None])
        raise ApiError(500, 100, f"General data error: err=1 document(s) failed to index., "
                                 f"extra_info={batch.failure[1]}", {"extra_info": batch.failure[1]})
    added = len(rows)
    if rows:
        _insert(call, rows)
        update_task_stats(call, batch.used, batch.task_iter, batch.scalars, batch.stats)
        update_model_stats(call, batch.used_models, batch.task_iter, batch.scalars)
    if errors.get(INVALID_ITERATION):
        raise ApiError(500, 100, f"General data error: err={errors[INVALID_ITERATION]} document(s) failed to "
                                 f"index., extra_info=None")
    if not added:
        detail = ", ".join(f"{k}={v}" for k, v in errors.items())
        raise ApiError(400, 131, "Events not added" + (f": {detail}" if detail else ""), dict(errors))
    return {"added": added, "errors": sum(errors.values()), "errors_info": dict(errors)}


def _insert(call: Call, rows: list[tuple]) -> None:
    if not rows:
        return
    with call.store.writing() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO events (company, task, type, ts, iter, metric, variant, value, "
            "model_event, ident, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)


