"""``tasks.*`` status changes: started, stopped, failed, completed, published, reset, deleted, archived,
enqueued and dequeued (the logic is in :mod:`..bll.task`)."""

from __future__ import annotations

from .. import apimodels as req
from ..bll.access import run_batch
from ..bll.task import (change_status, delete_task, dequeue, dequeue_any, dequeue_one, enqueue_one, get_task,
                        publish_task, reset_task, set_archived, stop_task, with_pipeline_steps)
from ..bll.workers import live_workers
from ..core import ApiError, Call, endpoint, ids_of, now_iso, required


@endpoint("tasks.started", request_data_model=req.TaskUpdateRequest)
def started(call: Call) -> dict:
    """Mark a task started (``in_progress``)."""
    doc = get_task(call)
    extra = {"started": now_iso()} if not doc.get("started") else {}
    return {**change_status(call, doc, "in_progress", force=call.model.force, **extra), "started": 1}


@endpoint("tasks.stopped", request_data_model=req.TaskUpdateRequest)
def stopped(call: Call) -> dict:
    """Mark a task stopped (the real server also sets ``completed``)."""
    return change_status(call, get_task(call), "stopped", force=call.model.force, completed=now_iso())


@endpoint("tasks.failed", request_data_model=req.TaskUpdateRequest)
def failed(call: Call) -> dict:
    """Mark a task failed (a queued one leaves its queue)."""
    doc = get_task(call)
    dequeue(call, doc)
    return change_status(call, doc, "failed", force=call.model.force)


@endpoint("tasks.close", request_data_model=req.TaskUpdateRequest)
def close(call: Call) -> dict:
    """Mark a stopped task closed."""
    return change_status(call, get_task(call), "closed", force=call.model.force)


@endpoint("tasks.completed", request_data_model=req.CompletedRequest)
def completed(call: Call) -> dict:
    """Mark a task completed (and published with ``publish``)."""
    doc = get_task(call)
    result = change_status(call, doc, "completed", force=call.model.force, completed=now_iso())
    if call.model.publish:
        result = publish_task(call, doc["id"], force=call.model.force, publish_models=True)
        return {**result, "published": 1}
    return {**result, "published": 0}


@endpoint("tasks.publish", request_data_model=req.PublishRequest)
def publish(call: Call) -> dict:
    """Publish a task (its output model becomes ready too unless ``publish_model`` is false)."""
    return publish_task(call, call.model.task, force=call.model.force, publish_models=call.model.publish_model)


@endpoint("tasks.publish_many", request_data_model=req.PublishManyRequest)
def publish_many(call: Call) -> dict:
    """Publish several tasks (per-id results)."""
    force, models = call.model.force, call.model.publish_model
    return run_batch(call.model.ids, lambda i: {
        "updated": publish_task(call, i, force=force, publish_models=models)["updated"]})


@endpoint("tasks.stop", request_data_model=req.TaskUpdateRequest)
def stop(call: Call) -> dict:
    """Ask a running task to stop."""
    return with_pipeline_steps(call, call.model.task, lambda t: stop_task(call, t, call.model.force),
                               lambda t: stop_task(call, t, True))


@endpoint("tasks.stop_many", request_data_model=req.StopManyRequest)
def stop_many(call: Call) -> dict:
    """Stop several tasks (per-id results)."""
    return run_batch(call.model.ids, lambda i: {"updated": with_pipeline_steps(
        call, i, lambda t: stop_task(call, t, call.model.force), lambda t: stop_task(call, t, True))["updated"]})


def _reset_args(call: Call) -> dict:
    m = call.model
    return dict(force=m.force, clear_all=m.clear_all, delete_output_models=m.delete_output_models,
                return_file_urls=m.return_file_urls)


@endpoint("tasks.reset", request_data_model=req.ResetRequest)
def reset(call: Call) -> dict:
    """Reset one task (see :func:`reset_task`)."""
    result = reset_task(call, call.model.task, **_reset_args(call))
    if result["urls"] is None:
        result.pop("urls")
    return result


@endpoint("tasks.reset_many", request_data_model=req.ResetManyRequest)
def reset_many(call: Call) -> dict:
    """Reset several tasks (per-id results)."""
    args = _reset_args(call)

    def one(task_id: str) -> dict:
        res = reset_task(call, task_id, **args)
        res["dequeued"] = bool(res["dequeued"].get("removed"))
        if res["urls"] is None:
            res.pop("urls")
        return res
    return run_batch(call.model.ids, one)


def _delete_args(call: Call) -> dict:
    m = call.model
    return dict(force=m.force, delete_output_models=m.delete_output_models, return_file_urls=m.return_file_urls)


@endpoint("tasks.delete", request_data_model=req.DeleteRequest)
def delete(call: Call) -> dict:
    """Delete a task (``created`` or archived unless ``force``), its events and its draft output models."""
    args = _delete_args(call)
    return with_pipeline_steps(call, call.model.task, lambda t: delete_task(call, t, **args),
                               lambda t: delete_task(call, t, **{**args, "force": True}))


@endpoint("tasks.delete_many", request_data_model=req.DeleteManyRequest)
def delete_many(call: Call) -> dict:
    """Delete several tasks (per-id results)."""
    args = _delete_args(call)
    return run_batch(call.model.ids, lambda i: with_pipeline_steps(
        call, i, lambda t: delete_task(call, t, **args), lambda t: delete_task(call, t, **{**args, "force": True})))


@endpoint("tasks.archive", request_data_model=req.ArchiveRequest)
def archive(call: Call) -> dict:
    """Add the ``archived`` system tag to tasks (every id must exist)."""
    ids = call.model.tasks
    for task_id in ids:
        get_task(call, task_id)
    return {"archived": sum(with_pipeline_steps(call, task_id, lambda t: set_archived(call, t, True))
                            for task_id in ids)}


@endpoint("tasks.enqueue")
def enqueue_task(call: Call) -> dict:
    """Put a task on a queue (by id, by name creating it, or the default queue)."""
    result = enqueue_one(call, required(call, "task"), call.data.get("queue"), call.data.get("queue_name"),
                         bool(call.data.get("force")))
    if call.data.get("verify_watched_queue"):
        queue_id = result["fields"]["execution.queue"]
        result["queue_watched"] = any(queue_id in (w.get("queues") or []) for w in live_workers(call))
    return result


@endpoint("tasks.dequeue")
def dequeue_task(call: Call) -> dict:
    """Take a queued task off its queue (after 1.9.2 any task, to ``new_status`` when given)."""
    if call.release.lenient_dequeue:
        return dequeue_any(call, required(call, "task"), call.data.get("new_status"),
                           bool(call.data.get("remove_from_all_queues")))
    return dequeue_one(call, required(call, "task"))


def _batch(call: Call, func, key: str) -> dict:
    succeeded, failed = [], []
    for task_id in ids_of(required(call, "ids")):
        try:
            res = func(task_id)
            succeeded.append({"id": task_id, key: bool(res.get(key)), **{k: v for k, v in res.items() if k != key}})
        except ApiError as exc:
            failed.append({"id": task_id, "error": {"codes": [exc.code, exc.subcode], "msg": exc.msg,
                                                    "data": exc.data}})
    return {"succeeded": succeeded, "failed": failed}


@endpoint("tasks.enqueue_many")
def enqueue_many(call: Call) -> dict:
    """``tasks.enqueue`` for each of ``ids``."""
    return _batch(call, lambda t: enqueue_one(call, t, call.data.get("queue"), call.data.get("queue_name")),
                  "queued")


@endpoint("tasks.dequeue_many")
def dequeue_many(call: Call) -> dict:
    """``tasks.dequeue`` for each of ``ids``."""
    if call.release.lenient_dequeue:
        return _batch(call, lambda t: dequeue_any(call, t, call.data.get("new_status"),
                                                  bool(call.data.get("remove_from_all_queues"))), "dequeued")
    return _batch(call, lambda t: dequeue_one(call, t), "dequeued")
