"""Plot and debug image endpoints of the ``events`` service (the logic is in :mod:`..bll.events_iterators`)."""

from __future__ import annotations

from ..bll import events as bll
from ..bll import events_iterators as iterators
from ..bll import events_models as m
from ..registry import Call
from .events import events_endpoint


@events_endpoint("events.debug_images", m.MetricEventsRequest)
def debug_images(call: Call) -> dict:
    """Debug images per task, ``iters`` iterations a call, navigated with a server-side scroll state."""
    return iterators.metric_events(call, iterators.DEBUG_IMAGES, call.model)


@events_endpoint("events.plots", m.MetricEventsRequest)
def plots(call: Call) -> dict:
    """Plots per task, ``iters`` iterations a call, navigated with a server-side scroll state."""
    return iterators.metric_events(call, iterators.PLOTS, call.model)


@events_endpoint("events.get_task_plots", m.TaskPlotsRequest)
def get_task_plots(call: Call) -> dict:
    """The ``iters`` latest plots of every metric/variant of a task, in one response."""
    req: m.TaskPlotsRequest = call.model
    return bll.get_task_plots(call, req.task, req.iters, req.metrics, req.model_events)


@events_endpoint("events.get_multi_task_plots", m.MultiTaskPlotsRequest, ("tasks",))
def get_multi_task_plots(call: Call) -> dict:
    """Latest plots of several tasks as ``{metric: {variant: {task: {iter: {name, plots}}}}}``."""
    req: m.MultiTaskPlotsRequest = call.model
    extra = req.model_extra or {}
    per_metric = extra.get("last_iters_per_task_metric", bll.version_at_least(call, "2.26"))
    return bll.get_multi_task_plots(call, req.tasks, req.iters, req.scroll_id, req.no_scroll, req.model_events,
                                    bool(per_metric), extra.get("metrics"))


@events_endpoint("events.get_debug_image_sample", m.GetVariantSampleRequest)
def get_debug_image_sample(call: Call) -> dict:
    """The debug image of a variant at an iteration (or the latest), with a navigation state."""
    return iterators.get_debug_image_sample(call, call.model)


@events_endpoint("events.next_debug_image_sample", m.NextHistorySampleRequest)
def next_debug_image_sample(call: Call) -> dict:
    """The next/previous debug image from a navigation state."""
    return iterators.next_debug_image_sample(call, call.model)


@events_endpoint("events.get_plot_sample", m.GetMetricSamplesRequest)
def get_plot_sample(call: Call) -> dict:
    """The plots of a metric at an iteration (or the latest), with a navigation state."""
    return iterators.get_plot_sample(call, call.model)


@events_endpoint("events.next_plot_sample", m.NextHistorySampleRequest)
def next_plot_sample(call: Call) -> dict:
    """The next/previous plots from a navigation state."""
    return iterators.next_plot_sample(call, call.model)
