"""``events.*`` endpoints (API 2.23): typed requests in, the ``bll`` layer's answers out.

Behaviour is the real server's (``apiserver/services/events.py`` and ``bll/event`` of clearml-server v1.9.2),
limits and quirks included; see :mod:`..bll.event.event_bll` for what a client meets and for the switchable
real-server bugs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterator

from starlette.responses import StreamingResponse

from ..apimodels import events as m
from ..bll.event import event_bll as bll
from ..bll.event import event_common as common
from ..bll.event import event_metrics as metrics
from ..bll.event.metric_events_iterator import STATES
from ..core import ApiError, Call, endpoint, missing_field
from ..store.event_writer import add_events


def events_endpoint(name: str, model: type | None = None, required: tuple[str, ...] = ()):
    """Register an events handler with its request model; it runs outside the document lock (it does its own
    SQLite I/O). ``required`` are the real ``required_fields`` (missing: 400/11 rather than 400/12)."""
    return endpoint(name, request_data_model=model, locked=False, required_fields=required)


def forward(name: str, model: type, body: Callable[[Call, Any], dict]) -> None:
    """Register ``name`` to ``body(call, request)``: an endpoint whose whole logic is in the ``bll`` layer."""
    events_endpoint(name, model)(lambda call: body(call, call.model))


# -- writing -----------------------------------------------------------------------------------------
@events_endpoint("events.add")
def add(call: Call) -> dict:
    """One event (JSON body); ``allow_locked`` is taken off the event first."""
    if not isinstance(call.data, dict):
        raise ApiError(400, 12, "Request body must be a JSON object")
    return add_events(call, [dict(call.data)])


@events_endpoint("events.add_batch")
def add_batch(call: Call) -> dict:
    """Events sent as JSON lines; the first event's ``allow_locked`` and ``model_event`` hold for all."""
    data = call.data if isinstance(call.data, list) else [call.data] if call.data else []
    if not data:
        raise ApiError(400, 17, "Batch request contains no items")
    if not all(isinstance(e, dict) for e in data):
        raise ApiError(400, 12, "json lines must contain objects")
    return add_events(call, [dict(e) for e in data])


# -- logs --------------------------------------------------------------------------------------------
forward("events.get_task_log", m.LogEventsRequest, bll.get_task_log)


def _line_format(line_format: object) -> str:
    line_format = str(line_format)
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


@events_endpoint("events.download_task_log", m.DownloadTaskLogRequest, ("task",))
def download_task_log(call: Call) -> StreamingResponse:
    """The whole log, oldest first, streamed: JSON lines (default) or ``line_format`` text lines."""
    req: m.DownloadTaskLogRequest = call.model
    _, company = common.target(call, req.task)
    is_json = str(req.line_type).lower() == "json"
    line_format = "" if is_json else _line_format(req.line_format)
    return StreamingResponse(_log_stream(call, company, req.task, is_json, line_format), media_type="text/plain",
                             headers={"Content-Disposition": f'attachment; filename="task_{req.task}.log"'})


def _log_stream(call: Call, company: str, task_id: str, is_json: bool, line_format: str) -> Iterator[bytes]:
    out: list[str] = []
    for ev in bll.log_lines(call.store, company, task_id):
        ev["asctime"] = ev.pop("timestamp", None)
        if is_json:
            ev.pop("type", None)
            ev.pop("task", None)
            out.append(common.json_text(ev) + "\n")
        else:
            out.append(line_format.format_map(defaultdict(str, ev)))
        if len(out) >= 1000:
            yield "".join(out).encode("utf-8", "surrogatepass")
            out = []
    if out:
        yield "".join(out).encode("utf-8", "surrogatepass")


@events_endpoint("events.clear_task_log", m.ClearTaskLogRequest)
def clear_task_log(call: Call) -> dict:
    """Delete a task's log events (older than ``threshold_sec``)."""
    req: m.ClearTaskLogRequest = call.model
    extra = req.model_extra or {}
    return {"deleted": bll.clear_task_log(call, req.task, req.allow_locked, req.threshold_sec,
                                          extra.get("include_metrics"), extra.get("exclude_metrics"))}


@events_endpoint("events.delete_for_task", m.DeleteForTaskRequest, ("task",))
def delete_for_task(call: Call) -> dict:
    """Delete every event of a task."""
    return {"deleted": bll.delete_events(call, call.model.task, call.model.allow_locked, False)}


@events_endpoint("events.delete_for_model", m.DeleteForModelRequest, ("model",))
def delete_for_model(call: Call) -> dict:
    """Delete every event of a model."""
    return {"deleted": bll.delete_events(call, call.model.model, call.model.allow_locked, True)}


# -- scrolled events -----------------------------------------------------------------------------------
forward("events.get_task_events", m.TaskEventsRequest, bll.get_task_events)
forward("events.scalar_metrics_iter_raw", m.ScalarMetricsIterRawRequest, bll.scalar_metrics_iter_raw)


@events_endpoint("events.get_scalar_metric_data", m.ScalarMetricDataRequest, ("task", "metric"))
def get_scalar_metric_data(call: Call) -> dict:
    """One metric's scalar events, newest iteration first, 500 a page."""
    req: m.ScalarMetricDataRequest = call.model
    return bll.get_scalar_metric_data(call, req.task, req.metric, req.scroll_id, req.no_scroll, req.model_events)


@events_endpoint("events.clear_scroll", m.ClearScrollRequest)
def clear_scroll(call: Call) -> dict:
    """Forget a scroll state (scroll ids of the JWT kind need nothing)."""
    if call.model.scroll_id and call.model.scroll_id != common.EMPTY_SCROLL:
        STATES.delete(call.model.scroll_id)
    return {}


# -- summaries -----------------------------------------------------------------------------------------
@events_endpoint("events.scalar_metrics_iter_histogram", m.ScalarMetricsIterHistogramRequest)
def scalar_metrics_iter_histogram(call: Call) -> dict:
    """``{metric: {variant: {name, x, y}}}`` sampled into at most ``samples`` buckets per series."""
    req: m.ScalarMetricsIterHistogramRequest = call.model
    doc, company = common.target(call, req.task, req.model_events)
    histogram = metrics.scalar_histogram(call, req.task, company, req.samples, req.key.value, req.metrics)
    return metrics.with_x_axis_labels(histogram, doc) if call.release.scalar_x_axis_labels else histogram


@events_endpoint("events.multi_task_scalar_metrics_iter_histogram", m.MultiTaskScalarMetricsIterHistogramRequest)
def multi_task_scalar_metrics_iter_histogram(call: Call) -> dict:
    """``{metrics: {metric: {variant: {task: {name, x, y}}}}}`` over 1 to 100 tasks."""
    req: m.MultiTaskScalarMetricsIterHistogramRequest = call.model
    tasks = [s.strip() for s in req.tasks.split(",")] if isinstance(req.tasks, str) else req.tasks
    return {"metrics": metrics.multi_task_histogram(call, tasks, req.samples, req.key.value, req.model_events,
                                                (req.model_extra or {}).get("metrics"))}


@events_endpoint("events.get_scalar_metrics_and_variants", m.MetricsAndVariantsRequest, ("task",))
def get_scalar_metrics_and_variants(call: Call) -> dict:
    """``{metric: [variants]}`` of a task's scalars (sorted)."""
    req = call.model
    return {"metrics": metrics.metrics_and_variants(call, req.task, "training_stats_scalar", req.model_events)}


@events_endpoint("events.get_vector_metrics_and_variants", m.MetricsAndVariantsRequest, ("task",))
def get_vector_metrics_and_variants(call: Call) -> dict:
    """``{metric: [variants]}`` of a task's vectors (sorted)."""
    req = call.model
    return {"metrics": metrics.metrics_and_variants(call, req.task, "training_stats_vector", req.model_events)}


@events_endpoint("events.vector_metrics_iter_histogram", m.VectorHistogramRequest, ("task", "metric", "variant"))
def vector_metrics_iter_histogram(call: Call) -> dict:
    """One vector metric/variant: ``vectors`` and their ``iterations``."""
    req: m.VectorHistogramRequest = call.model
    return metrics.vector_histogram(call, req.task, req.metric, req.variant, req.model_events)


@events_endpoint("events.get_task_metrics", m.TaskMetricsRequest)
def get_task_metrics(call: Call) -> dict:
    """Metric names of each task for one ``event_type``."""
    req: m.TaskMetricsRequest = call.model
    return {"metrics": metrics.task_metrics(call, req.tasks, req.event_type.value, req.model_events)}


@events_endpoint("events.get_multi_task_metrics", m.MultiTaskMetricsRequest)
def get_multi_task_metrics(call: Call) -> dict:
    """``[{metric, variants}]`` reported by any of the tasks."""
    req: m.MultiTaskMetricsRequest = call.model
    event_type = req.event_type.value if req.event_type else None
    return {"metrics": metrics.multi_task_metrics(call, req.tasks, event_type, req.model_events)}


@events_endpoint("events.get_task_single_value_metrics", m.SingleValueMetricsRequest)
def get_task_single_value_metrics(call: Call) -> dict:
    """Single values (iteration -2^31) of the tasks that have any."""
    return {"tasks": metrics.single_value_metrics(call, call.model.tasks, call.model.model_events,
                                              (call.model.model_extra or {}).get("metrics"))}


@events_endpoint("events.get_task_latest_scalar_values", m.LatestScalarValuesRequest, ("task",))
def get_task_latest_scalar_values(call: Call) -> dict:
    """The last value of each scalar series, the last iteration, name, status and last write time."""
    return metrics.latest_scalar_values(call, call.model.task)

