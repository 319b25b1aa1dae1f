"""Typed requests of the ``events.*`` service, as clearml-server's ``apimodels/events.py`` at API 2.23.

Defaults and limits are the real ones (``schema/services/events.conf``): an out-of-range or wrongly typed
field is the real 400/12 validation error, a missing required one 400/11.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..core import RequestModel as _BaseRequest


class RequestModel(_BaseRequest):
    """Events requests: ``model_*`` field names allowed; an explicit null means the field's default."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items()
                    if v is not None or k not in cls.model_fields or cls.model_fields[k].is_required()
                    or cls.model_fields[k].default is None}
        return data


class EventType(str, Enum):
    """Event types (``EventType``); ``*`` is every type."""

    scalar = "training_stats_scalar"
    vector = "training_stats_vector"
    image = "training_debug_image"
    plot = "plot"
    log = "log"
    all = "*"


class ScalarKey(str, Enum):
    """The x axis of scalar reads (``ScalarKeyEnum``)."""

    iter = "iter"
    timestamp = "timestamp"
    iso_time = "iso_time"


class Order(str, Enum):
    """``LogOrderEnum``."""

    asc = "asc"
    desc = "desc"


class MetricVariants(RequestModel):
    """One metric and (optionally) some of its variants."""

    metric: str = Field(description="Metric name")
    variants: Optional[list[str]] = Field(default=None, description="Variants (all when empty)")


class TaskMetric(RequestModel):
    """A task with an optional metric and variants (``TaskMetric``)."""

    task: str = Field(description="Task (or model) id")
    metric: Optional[str] = Field(default=None, description="Metric (every metric when missing)")
    variants: Optional[list[str]] = Field(default=None, description="Variants (all when empty)")


class TaskRequest(RequestModel):
    """Requests naming one task."""

    task: str = Field(description="Task (or model) id")


class ModelEventsMixin(RequestModel):
    """``model_events``: read the events of a model instead of a task."""

    model_events: bool = Field(default=False, description="Model events instead of task events")


class LogEventsRequest(TaskRequest):
    """``events.get_task_log`` (2.9+)."""

    batch_size: int = Field(default=5000, description="Events a page (plus the rest of the last timestamp)")
    navigate_earlier: bool = Field(default=True, description="Page towards earlier events")
    from_timestamp: Optional[int] = Field(default=None, description="Start after this timestamp (0/None: the end)")
    order: Optional[Order] = Field(default=None, description="Order of the returned page")


class DownloadTaskLogRequest(TaskRequest):
    """``events.download_task_log``."""

    line_type: str = Field(default="json", description="json or text")
    line_format: Any = Field(default="{asctime} {worker} {level} {msg}", description="Format of text lines")


class TaskEventsRequest(TaskRequest, ModelEventsMixin):
    """``events.get_task_events``."""

    batch_size: int = Field(default=500, description="Events a page (at most 10,000)")
    metrics: Optional[list[MetricVariants]] = Field(default=None, description="Metrics filter")
    event_type: EventType = Field(default=EventType.all, description="Event type (* for every type)")
    order: Order = Field(default=Order.asc, description="Iteration order")
    scroll_id: Optional[str] = Field(default=None, description="Scroll id of the previous page")
    count_total: bool = Field(default=True, description="Count the total on the first call")

    @field_validator("order", mode="before")
    @classmethod
    def _default_order(cls, value: Any) -> Any:
        return Order.asc if value is None else value


class ScalarMetricsIterRawRequest(TaskRequest, ModelEventsMixin):
    """``events.scalar_metrics_iter_raw`` (2.16+)."""

    batch_size: Optional[int] = Field(default=None, description="Points a call (10,000; at most 200,000)")
    key: Optional[ScalarKey] = Field(default=ScalarKey.iter, description="x axis")
    metric: MetricVariants = Field(description="The metric (and variants) to read")
    count_total: bool = Field(default=False, description="Count the total on the first call")
    scroll_id: Optional[str] = Field(default=None, description="Scroll id of the previous call")


class ScalarMetricDataRequest(TaskRequest, ModelEventsMixin):
    """``events.get_scalar_metric_data``."""

    metric: str = Field(description="Metric name")
    scroll_id: Optional[str] = Field(default=None, description="Scroll id of the previous page")
    no_scroll: bool = Field(default=False, description="No scroll id")


class HistogramRequestBase(RequestModel):
    """Sampled scalar histograms."""

    samples: int = Field(default=2000, ge=1, le=6000, description="Buckets per series")
    key: ScalarKey = Field(default=ScalarKey.iter, description="x axis")


class ScalarMetricsIterHistogramRequest(HistogramRequestBase, TaskRequest, ModelEventsMixin):
    """``events.scalar_metrics_iter_histogram``."""

    metrics: Optional[list[MetricVariants]] = Field(default=None, description="Metrics filter")


class MultiTaskScalarMetricsIterHistogramRequest(HistogramRequestBase, ModelEventsMixin):
    """``events.multi_task_scalar_metrics_iter_histogram`` (1 to 100 tasks)."""

    tasks: list[str] | str = Field(description="Task ids (list or comma separated)")

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: Any) -> Any:
        count = len(value) if isinstance(value, list) else 1
        if not 1 <= count <= 100:
            raise ValueError("tasks: between 1 and 100 items")
        return value


class MultiTasksRequest(ModelEventsMixin):
    """Requests naming at least one task."""

    tasks: list[str] = Field(min_length=1, description="Task ids")


class SingleValueMetricsRequest(MultiTasksRequest):
    """``events.get_task_single_value_metrics``."""


class TaskMetricsRequest(MultiTasksRequest):
    """``events.get_task_metrics``."""

    event_type: EventType = Field(description="Event type (* for every type)")


class MultiTaskMetricsRequest(MultiTasksRequest):
    """``events.get_multi_task_metrics`` (later API, served for the web UI)."""

    event_type: Optional[EventType] = Field(default=None, description="Event type")


class MetricsAndVariantsRequest(TaskRequest, ModelEventsMixin):
    """``events.get_scalar_metrics_and_variants`` / ``get_vector_metrics_and_variants``."""


class MetricRequest(TaskRequest, ModelEventsMixin):
    """Requests naming one metric of a task."""

    metric: str = Field(description="Metric")


class MetricVariantRequest(MetricRequest):
    """Requests naming one metric/variant of a task."""

    variant: str = Field(description="Variant")


class VectorHistogramRequest(MetricVariantRequest):
    """``events.vector_metrics_iter_histogram``."""


class LatestScalarValuesRequest(TaskRequest):
    """``events.get_task_latest_scalar_values``."""


class TaskPlotsRequest(TaskRequest, ModelEventsMixin):
    """``events.get_task_plots`` (1.8+)."""

    iters: int = Field(default=1, description="Latest iterations per plot")
    scroll_id: Optional[str] = Field(default=None, description="Unused by the real server")
    no_scroll: bool = Field(default=False, description="Unused by the real server")
    metrics: Optional[list[MetricVariants]] = Field(default=None, description="Metrics filter")


class MultiTaskPlotsRequest(ModelEventsMixin):
    """``events.get_multi_task_plots`` (1.8+)."""

    tasks: list[str] = Field(description="Task ids")
    iters: int = Field(default=1, description="Latest iterations per task")
    scroll_id: Optional[str] = Field(default=None, description="Scroll id of the previous page")
    no_scroll: bool = Field(default=False, description="No scroll id")


class MetricEventsRequest(RequestModel):
    """``events.plots`` / ``events.debug_images`` (2.7+)."""

    metrics: list[TaskMetric] = Field(min_length=1, description="Tasks (and metrics)")
    iters: int = Field(default=1, ge=1, description="Iterations a call")
    navigate_earlier: bool = Field(default=True, description="Towards earlier iterations")
    refresh: bool = Field(default=False, description="Refresh the scroll state")
    scroll_id: Optional[str] = Field(default=None, description="Scroll state id")
    model_events: Optional[bool] = Field(default=None, description="Model events")


class SampleStateFields(RequestModel):
    """Where a ``get_*_sample`` call starts and the navigation state it makes or reuses.

    Listed first among a request's bases so that these fields follow the task, metric and variant (pydantic
    orders fields base first, and the first invalid field is the one reported).
    """

    iteration: Optional[int] = Field(default=None, description="At or before this iteration (latest if none)")
    refresh: bool = Field(default=False, description="Refresh the state")
    scroll_id: Optional[str] = Field(default=None, description="Sample state id")
    navigate_current_metric: bool = Field(default=True, description="Navigate within the metric only")


class GetVariantSampleRequest(SampleStateFields, MetricVariantRequest):
    """``events.get_debug_image_sample`` (2.12+)."""


class GetMetricSamplesRequest(SampleStateFields, MetricRequest):
    """``events.get_plot_sample``."""


class NextHistorySampleRequest(TaskRequest, ModelEventsMixin):
    """``events.next_debug_image_sample`` / ``events.next_plot_sample``."""

    scroll_id: Optional[str] = Field(default=None, description="Sample state id")
    navigate_earlier: bool = Field(default=True, description="Towards earlier samples")
    next_iteration: bool = Field(default=False, description="Jump to another iteration")


class ClearScrollRequest(RequestModel):
    """``events.clear_scroll`` (2.18+)."""

    scroll_id: Optional[str] = Field(default=None, description="Scroll id")


class ClearTaskLogRequest(TaskRequest):
    """``events.clear_task_log``."""

    threshold_sec: Optional[int] = Field(default=None, description="Only events older than this")
    allow_locked: bool = Field(default=False, description="Allow on published tasks")


class DeleteForTaskRequest(TaskRequest):
    """``events.delete_for_task``."""

    allow_locked: bool = Field(default=False, description="Allow on published tasks")


class DeleteForModelRequest(RequestModel):
    """``events.delete_for_model``."""

    model: str = Field(description="Model id")
    allow_locked: bool = Field(default=False, description="Allow on published models")
