"""Plot and debug image endpoints of the ``events`` service (the logic is in :mod:`..bll.event`)."""

from __future__ import annotations

from ..apimodels import events as m
from ..bll.event import history_iterators as history
from ..bll.event.event_common import version_at_least
from ..bll.event.event_plots import get_multi_task_plots as multi_task_plots
from ..bll.event.event_plots import get_task_plots as task_plots
from ..bll.event.metric_events_iterator import DEBUG_IMAGES, PLOTS
from ..core import Call
from .events import events_endpoint, forward

# Per task, ``iters`` iterations a call, navigated with a server-side scroll state.
forward("events.debug_images", m.MetricEventsRequest, DEBUG_IMAGES.metric_events)
forward("events.plots", m.MetricEventsRequest, PLOTS.metric_events)
# One variant's debug image / one metric's plots at an iteration, then the next/previous, from a state.
forward("events.get_debug_image_sample", m.GetVariantSampleRequest, history.get_debug_image_sample)
forward("events.next_debug_image_sample", m.NextHistorySampleRequest, history.next_debug_image_sample)
forward("events.get_plot_sample", m.GetMetricSamplesRequest, history.get_plot_sample)
forward("events.next_plot_sample", m.NextHistorySampleRequest, history.next_plot_sample)


@events_endpoint("events.get_task_plots", m.TaskPlotsRequest)
def get_task_plots(call: Call) -> dict:
    """The ``iters`` latest plots of every metric/variant of a task, in one response."""
    req: m.TaskPlotsRequest = call.model
    return task_plots(call, req.task, req.iters, req.metrics, req.model_events)


@events_endpoint("events.get_multi_task_plots", m.MultiTaskPlotsRequest, ("tasks",))
def get_multi_task_plots(call: Call) -> dict:
    """Latest plots of several tasks as ``{metric: {variant: {task: {iter: {name, plots}}}}}``."""
    req: m.MultiTaskPlotsRequest = call.model
    extra = req.model_extra or {}
    per_metric = extra.get("last_iters_per_task_metric", version_at_least(call, "2.26"))
    return multi_task_plots(call, req.tasks, req.iters, req.scroll_id, req.no_scroll, req.model_events,
                                    bool(per_metric), extra.get("metrics"))

