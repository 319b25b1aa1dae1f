"""Reports (clearml-server ``services/reports.py``): a report is a task of type ``report`` with the system tags
``hidden`` and ``reports``, kept in a hidden ``.reports`` project under the project it belongs to (``.reports`` at
the top for reports of no project); an emptied ``.reports`` project goes with its last report."""

from __future__ import annotations

import textwrap
from typing import Any

from ...core import ApiError, Call, now_iso
from ...core.constants import INVALID_PROJECT
from ..access import get_for_writing
from ..project.sub_projects import ensure_project
from ..task import get_task

REPORTS_PROJECT = ".reports"
REPORTS_TAG = "reports"
REPORT_SYSTEM_TAGS = [REPORTS_TAG, "hidden"]
UPDATABLE = ("name", "tags", "comment", "report", "report_assets")
ANY_STATUS = {"tags", "name", "comment"}
"""What a published report may still change."""


def get_report(call: Call, task_id: str) -> dict:
    """The report for writing; any other task is 400/150 (operation supported on reports only)."""
    doc = get_task(call, task_id)
    if doc.get("type") != "report":
        raise ApiError(400, 150, f"passed task is not report (id={task_id})")
    return doc


def reports_project(call: Call, project_id: str | None = None, project_name: str | None = None) -> str:
    """The id of the ``.reports`` project under ``project_id`` (or the project named ``project_name``, created if
    missing; neither: the top-level one), created hidden with the ``reports`` tag if missing."""
    if project_name is None:
        project_name = get_for_writing(call, "projects", project_id, INVALID_PROJECT)["name"] if project_id else ""
    name = project_name.strip("/")
    if name.rpartition("/")[2] != REPORTS_PROJECT:
        name = f"{name}/{REPORTS_PROJECT}" if name else REPORTS_PROJECT
    return ensure_project(call, name, description="Reports project", system_tags=list(REPORT_SYSTEM_TAGS))["id"]


def drop_if_empty(call: Call, project_id: str | None) -> None:
    """Delete a ``.reports`` project that holds no task any more."""
    doc = call.store.get("projects", project_id, call.company) if project_id else None
    if doc is None or doc.get("basename") != REPORTS_PROJECT:
        return
    if not any(t.get("project") == project_id for t in call.store.all("tasks", call.company)):
        call.store.delete("projects", project_id)


def update_fields(call: Call, doc: dict, data: dict[str, Any]) -> dict:
    """``reports.update``: the given fields of ``UPDATABLE``; on a report that is not a draft only the name,
    tags and comment (else 400/110). Returns the real response's ``fields`` (tags sorted, report shortened)."""
    fields = {k: v for k, v in data.items() if k in UPDATABLE}
    if not fields:
        return {}
    if doc.get("status") != "created" and not set(fields) <= ANY_STATUS:
        raise ApiError(400, 110, f"Invalid task status (expected=created, status={doc.get('status')})")
    doc.update(fields)
    doc.update(last_change=now_iso(), last_changed_by=call.user)
    shown = dict(fields)
    if fields.get("tags"):
        shown["tags"] = sorted(fields["tags"])
    if fields.get("report"):
        shown["report"] = textwrap.shorten(fields["report"], width=100)
    return shown
