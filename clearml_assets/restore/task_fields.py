"""The copy's own record: the fields it is created with (the source's, its parent the parent's copy, the
provenance tags), the runtime it is edited with (the source's plus where it came from), its final status."""

from __future__ import annotations

from typing import Any, Callable

from . import system_tasks
from .copies import INCOMPLETE_TAG, PROVENANCE_PREFIX, RestoreResult, provenance_tag
from .reader import TaskArchive

FINAL_STATUSES = ("completed", "published", "stopped", "failed", "closed")


def create_task(client, archive: TaskArchive, project_id: str, result: RestoreResult,
                restored_copy: Callable[[str], dict | None]) -> tuple[str, list[str]]:
    """Create the copy (a report through ``reports.*``) tagged with its provenance and ``restore-incomplete``.

    Args:
        client: The target account's client.
        archive: The task archive.
        project_id: The project the copy goes into.
        result: Gets a note when the source's parent has no copy in the target.
        restored_copy: The finished copy of a source task in the target (its row), or None.

    Returns:
        ``(the copy's id, its system tags)``.
    """
    src = archive.task
    system_tags = [t for t in src.get("system_tags") or []
                   if not t.startswith(PROVENANCE_PREFIX) and t != INCOMPLETE_TAG]
    fields: dict[str, Any] = {
        "name": src.get("name") or archive.source_task_id, "type": src.get("type") or "training",
        "project": project_id, "comment": src.get("comment") or "", "tags": list(src.get("tags") or []),
        "system_tags": system_tags + [provenance_tag(archive.source_task_id), INCOMPLETE_TAG],
    }
    for key in ("script", "hyperparams", "configuration", "container"):
        if src.get(key):
            fields[key] = src[key]
    execution = {k: v for k, v in (src.get("execution") or {}).items() if k not in ("artifacts", "queue")}
    if execution:
        fields["execution"] = execution
    destination = (src.get("output") or {}).get("destination")
    if destination:
        fields["output_dest"] = destination
    parent = src.get("parent")
    if parent:
        mapped = restored_copy(parent)
        if mapped is not None:
            fields["parent"] = mapped["id"]
        else:
            result.notes.append(f"parent task {parent} is not restored in this account; the copy has no parent")
    if system_tasks.is_report(src):
        return system_tasks.create_report(client, src, project_id, fields["system_tags"]), \
            sorted({*system_tasks.REPORT_SYSTEM_TAGS, *fields["system_tags"]})
    task_id = client.tasks.create(**fields)
    return task_id, fields["system_tags"]


def runtime(archive: TaskArchive) -> dict[str, Any]:
    """The source task's runtime plus the provenance of the copy."""
    return {**(archive.task.get("runtime") or {}), "restore_source_account": archive.source_account,
            "restore_source_server": archive.source_server, "restore_source_task": archive.source_task_id,
            "restore_archive_sha256": str((archive.manifest.get("archive") or {}).get("sha256") or "")}


def dataset_fields(archive: TaskArchive, copy_of: Callable[[str], str | None]) -> dict[str, Any]:
    """The fields a dataset version's copy is edited with besides its runtime: its lineage naming the copies."""
    if not system_tasks.is_dataset_version(archive.task):
        return {}
    configuration = system_tasks.dataset_configuration(archive.task, copy_of)
    return {"configuration": configuration} if configuration else {}


def finish_status(client, task_id: str, src: dict) -> None:
    """Give the copy the source's final status (a task that was still running is stopped: its copy runs nowhere)."""
    status = src.get("status")
    message, reason = str(src.get("status_message") or ""), str(src.get("status_reason") or "")
    if status == "published":
        client.tasks.set_status(task_id, "completed")
        client.tasks.set_status(task_id, "published", message=message, reason=reason)
    elif status in FINAL_STATUSES:
        client.tasks.set_status(task_id, status, message=message, reason=reason)
    else:  # created / queued / in_progress in the archive: the copy runs nowhere
        client.tasks.set_status(task_id, "stopped", message=f"restored from a {status} task", reason=reason)
