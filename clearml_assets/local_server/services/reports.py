"""``reports.*``: reports as clearml-server keeps them (hidden ``report`` tasks in hidden ``.reports`` projects;
see :mod:`..bll.report`), and the data a report embeds from other tasks (``reports.get_task_data``)."""

from __future__ import annotations

from ..bll.event.event_metrics import multi_task_histogram, single_value_metrics
from ..bll.event.event_plots import get_multi_task_plots
from ..bll.event.metric_events_iterator import DEBUG_IMAGES
from ..apimodels.events import MetricEventsRequest
from ..bll.project import with_subprojects
from ..bll.report import REPORT_SYSTEM_TAGS, REPORTS_PROJECT, drop_if_empty, get_report, reports_project, update_fields
from ..bll.task import change_status, check_name, move_task, new_task_doc, save_task, set_archived
from ..core import ApiError, Call, endpoint, missing_field, now_iso
from ..store.queries import get_all
from .models import MODEL_QUERY
from .tasks import TASK_QUERY


@endpoint("reports.create", required_fields=("name",), min_version="2.23")
def create(call: Call) -> dict:
    """A draft report in the ``.reports`` project of ``project`` (the top-level one without)."""
    project_id = reports_project(call, call.data.get("project"))
    doc = new_task_doc(call, {"name": check_name(call.data["name"]), "type": "report", "project": project_id,
                              "tags": call.data.get("tags") or [], "comment": call.data.get("comment") or "",
                              "system_tags": list(REPORT_SYSTEM_TAGS)})
    save_task(call, doc)
    return {"id": doc["id"], "project_id": project_id}


@endpoint("reports.update", required_fields=("task",), min_version="2.23")
def update(call: Call) -> dict:
    """Name, tags, comment, the report text and its assets (only the first three once published)."""
    doc = get_report(call, call.data["task"])
    fields = update_fields(call, doc, call.data)
    if fields:
        save_task(call, doc)
    return {"updated": int(bool(fields)), "fields": fields}


@endpoint("reports.move", required_fields=("task",), min_version="2.23")
def move(call: Call) -> dict:
    """Into the ``.reports`` project of another project (by id, by name, or the top level for ``project: null``);
    the ``.reports`` project it leaves goes when emptied."""
    if "project" not in call.data and not call.data.get("project_name"):
        raise missing_field("project or project_name is required")
    doc = get_report(call, call.data["task"])
    old = doc.get("project")
    project_id = reports_project(call, call.data.get("project"), call.data.get("project_name") or None)
    move_task(call, doc["id"], project_id)
    drop_if_empty(call, old)
    return {"project_id": project_id}


@endpoint("reports.publish", required_fields=("task",), min_version="2.23")
def publish(call: Call) -> dict:
    """Publish a report (any status)."""
    doc = get_report(call, call.data["task"])
    call.data["status_message"] = call.data.get("message") or ""
    return change_status(call, doc, "published", force=True, published=now_iso())


def _archiving(archived: bool):
    def handler(call: Call) -> dict:
        """Add (or remove) the report's ``archived`` system tag."""
        doc = get_report(call, call.data["task"])
        call.data.update(status_message=call.data.get("message") or "", status_reason="")
        return {"archived" if archived else "unarchived": int(set_archived(call, doc["id"], archived))}
    return handler


endpoint("reports.archive", required_fields=("task",), min_version="2.23")(_archiving(True))
endpoint("reports.unarchive", required_fields=("task",), min_version="2.23")(_archiving(False))


@endpoint("reports.delete", required_fields=("task",), min_version="2.23")
def delete(call: Call) -> dict:
    """Delete a draft or archived report (any report with ``force``); its emptied ``.reports`` project goes."""
    doc = get_report(call, call.data["task"])
    if doc.get("status") != "created" and "archived" not in (doc.get("system_tags") or []) \
            and not call.data.get("force"):
        raise ApiError(400, 123, f"task cannot be deleted: due to status, use force=True (task={doc['id']}, "
                                 f"expected=created, current={doc.get('status')})")
    call.store.delete("tasks", doc["id"])
    drop_if_empty(call, doc.get("project"))
    return {"deleted": 1}


@endpoint("reports.get_all_ex", min_version="2.23")
def get_all_ex(call: Call) -> dict:
    """Reports filtered like ``tasks.get_all_ex`` (hidden ones included); ``project`` means the ``.reports``
    projects under (or being) those projects."""
    data = with_subprojects(call, {**call.data, "type": ["report"]})
    if "project" in data:
        wanted = data["project"] if isinstance(data["project"], list) else [data["project"]]
        projects = [p["id"] for p in call.store.all("projects", call.company, allow_public=True)
                    if p.get("basename") == REPORTS_PROJECT and (p.get("parent") in wanted or p["id"] in wanted)]
        if not projects:
            return {"tasks": []}
        data["project"] = projects
    docs = call.store.all("tasks", call.company, allow_public=bool(call.data.get("allow_public", True)))
    return get_all(call, "tasks", "tasks", data=data, docs=docs, expand=True, **TASK_QUERY)


@endpoint("reports.get_tags", min_version="2.23")
def get_tags(call: Call) -> dict:
    """The tags the company's reports use, sorted."""
    reports = (t for t in call.store.all("tasks", call.company) if t.get("type") == "report")
    return {"tags": sorted({tag for t in reports for tag in t.get("tags") or []})}


@endpoint("reports.get_task_data", min_version="2.23")
def get_task_data(call: Call) -> dict:
    """Tasks (or models, ``model_events``) as ``get_all_ex`` finds them, and on request their debug images,
    plots, scalar histograms and single values: what a report embeds."""
    model_events = bool(call.data.get("model_events"))
    collection, query = ("models", MODEL_QUERY) if model_events else ("tasks", TASK_QUERY)
    data = with_subprojects(call, dict(call.data))
    docs = call.store.all(collection, call.company, allow_public=bool(call.data.get("allow_public", True)))
    if collection == "tasks" and not data.get("search_hidden") and not data.get("id"):
        docs = [d for d in docs if "hidden" not in (d.get("system_tags") or [])]
    result = get_all(call, collection, "tasks", data=data, docs=docs, expand=True, **query)
    ids = [row["id"] for row in result["tasks"]]
    if ids:
        result.update(_events_of(call, ids, model_events))
    return result


def _events_of(call: Call, ids: list[str], model_events: bool) -> dict:
    """The event sections asked for (``debug_images``, ``plots``, ``scalar_metrics_iter_histogram``,
    ``single_value_metrics``) over the tasks ``ids``."""
    out: dict = {}
    images = call.data.get("debug_images")
    if images is not None:
        out["debug_images"] = _debug_images(call, ids, images, model_events)
    plots = call.data.get("plots")
    if plots is not None:
        out["plots"] = get_multi_task_plots(call, ids, int(plots.get("iters") or 1), None, True, model_events,
                                            bool(plots.get("last_iters_per_task_metric", True)),
                                            plots.get("metrics"))["plots"]
    histogram = call.data.get("scalar_metrics_iter_histogram")
    if histogram is not None:
        out["scalar_metrics_iter_histogram"] = multi_task_histogram(
            call, ids, int(histogram.get("samples") or 5000), histogram.get("key") or "iter", model_events,
            histogram.get("metrics"))
    values = call.data.get("single_value_metrics")
    if values is not None:
        out["single_value_metrics"] = single_value_metrics(call, ids, model_events, values.get("metrics"))
    return out


def _debug_images(call: Call, ids: list[str], spec: dict, model_events: bool) -> list[dict]:
    """The last ``iters`` iterations of each task's debug images (of the metrics asked; all without)."""
    asked = spec.get("metrics") or [{"metric": None}]
    metrics = [{"task": task, "metric": m.get("metric"), "variants": m.get("variants")} for task in ids
               for m in asked]
    request = MetricEventsRequest.model_validate({"metrics": metrics, "iters": int(spec.get("iters") or 1),
                                                   "refresh": True, "model_events": model_events})
    return DEBUG_IMAGES.metric_events(call, request).get("metrics", [])
