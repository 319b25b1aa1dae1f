"""``pipelines.*`` (clearml-server ``services/pipelines.py``): start a pipeline run from its controller task (what
the web app's "Run" does) and delete runs. A run is a ``controller`` task with the ``pipeline`` system tag in the
pipeline's project; its steps are the tasks whose parent it is."""

from __future__ import annotations

import re

from ..bll.access import run_batch
from ..bll.task import clone_task, delete_task, enqueue_one, get_task_readable, new_task_doc, save_task
from ..bll.task import with_pipeline_steps
from ..bll.workers import live_workers
from ..core import ApiError, Call, endpoint, ids_of, required


@endpoint("pipelines.start_pipeline", required_fields=("task",), min_version="2.17")
def start_pipeline(call: Call) -> dict:
    """A new run: the controller cloned (``args`` into its ``Args`` section), named ``<pipeline> #<n>``, and
    enqueued (``verify_watched_queue``: whether a live worker serves the queue)."""
    source = get_task_readable(call, call.data["task"])
    args = {str(a["name"]): {"section": "Args", "name": str(a["name"]), "value": str(a.get("value"))}
            for a in call.data.get("args") or [] if isinstance(a, dict) and "name" in a}
    hyperparams = {**(source.get("hyperparams") or {}), **({"Args": args} if args else {})}
    doc = new_task_doc(call, {"name": source["name"], "type": source["type"]})
    doc, _ = clone_task(call, source, doc, {"new_task_hyperparams": hyperparams})
    doc["name"] = _run_name(call, doc)
    save_task(call, doc)
    call.data.update(status_message="Starting pipeline", status_reason="")
    result = enqueue_one(call, doc["id"], call.data.get("queue"), call.data.get("queue_name"))
    out = {"pipeline": doc["id"], "enqueued": bool(result.get("queued"))}
    if call.data.get("verify_watched_queue") and out["enqueued"]:
        queue = result["fields"]["execution.queue"]
        out["queue_watched"] = any(queue in (w.get("queues") or []) for w in live_workers(call))
    return out


def _run_name(call: Call, doc: dict) -> str:
    """The real ``_update_task_name``: the pipeline project's name, numbered after the runs already there."""
    project = call.store.get("projects", doc.get("project"), call.company) if doc.get("project") else None
    if project is None:
        return doc["name"]
    prefix = project["name"].rpartition("/")[2]
    mask = re.compile(rf"{re.escape(prefix)}( #\d+)?$")
    count = sum(1 for t in call.store.all("tasks", call.company)
                if t.get("project") == doc["project"] and "pipeline" in (t.get("system_tags") or [])
                and mask.search(t.get("name") or ""))
    return f"{prefix} #{count}" if count > 0 else prefix


@endpoint("pipelines.delete_runs", min_version="2.26")
def delete_runs(call: Call) -> dict:
    """Delete pipeline runs (controllers of the project among ``ids``) with their steps; the last run stays."""
    project = required(call, "project")
    wanted = set(ids_of(required(call, "ids")))
    runs = {t["id"] for t in call.store.all("tasks", call.company)
            if t.get("project") == project and t.get("type") == "controller"}
    if not runs - wanted:
        raise ApiError(400, 160, f"at least one pipeline run should be left (project={project})")
    call.data["include_pipeline_steps"] = True
    args = dict(force=True, delete_output_models=True, return_file_urls=False)
    result = run_batch(sorted(runs & wanted), lambda i: with_pipeline_steps(
        call, i, lambda t: delete_task(call, t, **args)))
    for row in result["succeeded"]:
        row.setdefault("deleted", True)
    return result
