"""``organization.*`` requests."""

from __future__ import annotations

from typing import Any, Optional

from ..core import RequestModel


class EntitiesCountRequest(RequestModel):
    """Each of projects/tasks/models/pipelines/datasets/reports is a get_all-style query (counted if given)."""

    projects: Optional[dict[str, Any]] = None
    tasks: Optional[dict[str, Any]] = None
    models: Optional[dict[str, Any]] = None
    pipelines: Optional[dict[str, Any]] = None
    datasets: Optional[dict[str, Any]] = None
    reports: Optional[dict[str, Any]] = None
    active_users: Optional[list[str]] = None
    search_hidden: bool = False
    allow_public: bool = True
