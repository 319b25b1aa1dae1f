"""The models of a copy: each found again by its provenance tag or created (its file uploaded, its parent the copy
of the source's), its events sent while it is not ready, and linked to the copy as the source task linked it."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ..archives.server_release import collapsed_iterations_note
from .copies import PROVENANCE_PREFIX, CopyWrite, provenance_tag
from .events import batches
from .uploads import basename, part, upload


def restore_models(write: CopyWrite) -> None:
    """Create (or find again) every model the archive holds and link those the source task used or made."""
    src, result = write.archive.task, write.result
    refs = {(kind, ref.get("name"), ref.get("model")) for kind in ("input", "output")
            for ref in ((src.get("models") or {}).get(kind) or [])}
    planned = _plan(write)
    for record, model_id, future in planned:
        model = record["model"]
        ready = False
        if model_id is None:
            model_id = _create_model(write, model, future.result() if future else model.get("uri"))
            result.count("model_files", future is not None)
        else:
            ready = bool(write.client.models.get(model_id).raw.get("ready"))
        if not ready:  # a ready (published) model takes no events: they go first
            _send_model_events(write, record, model_id)
            if model.get("ready"):
                write.client.models.edit(model_id, ready=True)
        if (record["role"], record.get("name"), record["id"]) in refs:
            write.client.tasks.add_model(write.task_id, record.get("name") or model.get("name"), model_id,
                                         record["role"])
    result.counts["models"] = len(planned)


def _plan(write: CopyWrite) -> list[tuple[dict, str | None, Future | None]]:
    """``(record, id of its existing copy or None, its file being uploaded or None)`` of each model the archive
    holds (a model missing on the source is a note)."""
    planned = []
    for record, path in write.archive.models():
        model = record.get("model")
        if not model or record.get("missing"):
            write.result.notes.append(f"model {record.get('id')} was not in the archive (missing on the source)")
            continue
        found = write.client.models.find_by_system_tag(provenance_tag(model["id"]))
        if found:
            if model.get("task") == write.archive.source_task_id and found[0].get("task") != write.task_id:
                write.client.models.edit(found[0]["id"], task=write.task_id)  # detached by a reset
            planned.append((record, found[0]["id"], None))
            continue
        future = None
        if path is not None:
            future = upload(write, f"models/{part(model['id'])}/{basename(model.get('uri'), path.name)}", path)
        planned.append((record, None, future))
    return planned


def _send_model_events(write: CopyWrite, record: dict, model_id: str) -> None:
    iterations: set[Any] = set()
    events = ({**event, "task": model_id, "model_event": True} for event in write.archive.model_events(record))
    for batch in batches(events, write.batch_events, write.batch_bytes):
        write.client.events.add_batch(batch)
        iterations.update(event.get("iter") for event in batch)
        write.result.count("model_events", len(batch))
    note = collapsed_iterations_note(write.client, iterations)
    if note:
        write.result.notes.append(f"model {record.get('id')}: {note}")


def _create_model(write: CopyWrite, model: dict, uri: str | None) -> str:
    """A new model copying ``model`` (its file at ``uri``), owned by the copy when the source task made it."""
    system_tags = [t for t in model.get("system_tags") or [] if not t.startswith(PROVENANCE_PREFIX)]
    fields: dict[str, Any] = {
        "name": model.get("name") or "model", "uri": uri or "", "comment": model.get("comment") or "",
        "tags": list(model.get("tags") or []), "system_tags": system_tags + [provenance_tag(model["id"])],
        "framework": model.get("framework"), "design": model.get("design") or {},
        "labels": model.get("labels") or {}, "ready": False, "project": write.project_id}
    if model.get("task") == write.archive.source_task_id:
        fields["task"] = write.task_id
    metadata = model.get("metadata")
    if metadata:  # stored as {key: item}, sent as a list of items (models.create 2.13+)
        fields["metadata"] = list(metadata.values()) if isinstance(metadata, dict) else metadata
    parent = model.get("parent")
    if parent:
        found = write.client.models.find_by_system_tag(provenance_tag(parent))
        if found:
            fields["parent"] = found[0]["id"]
    return write.client.models.create(**{k: v for k, v in fields.items() if v is not None})
