"""``projects.*`` requests."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from ..core import RequestModel
from .shared import TagsRequest


class ProjectRequest(RequestModel):
    project: str


class ProjectCreateRequest(RequestModel):
    name: str
    description: Optional[str] = None
    tags: Optional[list[str]] = None
    system_tags: Optional[list[str]] = None
    default_output_destination: Optional[str] = None


class ProjectDeleteRequest(ProjectRequest):
    force: bool = False
    delete_contents: bool = False


class ProjectMoveRequest(ProjectRequest):
    new_location: Optional[str] = None


class ProjectMergeRequest(ProjectRequest):
    destination_project: Optional[str] = None


class ProjectsGetRequest(RequestModel):
    """``projects.get_all_ex`` options beyond the shared query fields."""

    include_dataset_stats: bool = False
    include_stats: bool = False
    include_stats_filter: Optional[dict[str, Any]] = None
    stats_with_children: bool = True
    stats_for_state: Optional[Literal["active", "archived"]] = "active"
    active_users: Optional[list[str]] = None
    check_own_contents: bool = False
    shallow_search: bool = False
    search_hidden: Optional[bool] = False
    allow_public: bool = True
    children_type: Optional[Literal["pipeline", "report", "dataset"]] = None
    """Only projects holding (at any depth) pipelines, reports or datasets (API 2.24)."""
    children_tags: Optional[list[Optional[str]]] = None
    """...whose tags match this list query (API 2.24)."""
    children_tags_filter: Optional[dict[str, Any]] = None
    """...or this list filter (``{"any": {"include": [...]}}``, API 2.27)."""


class ProjectTagsRequest(TagsRequest):
    projects: Optional[list[str]] = None


class MultiProjectRequest(RequestModel):
    projects: Optional[list[str]] = None
    include_subprojects: bool = True


class ProjectTaskParentsRequest(MultiProjectRequest):
    tasks_state: Optional[Literal["active", "archived"]] = None
    task_name: Optional[str] = None
    """Parents whose name matches this pattern only (API 2.25)."""


class ProjectHyperparamValuesRequest(MultiProjectRequest):
    section: str
    name: str
    allow_public: bool = True
    pattern: Optional[str] = None
    """Values matching this case-insensitive pattern only (API 2.26)."""
    page: int = Field(default=0, ge=0)
    page_size: int = Field(default=500, ge=1)


class ProjectModelMetadataValuesRequest(MultiProjectRequest):
    key: str
    allow_public: bool = True
    page: int = Field(default=0, ge=0)
    page_size: int = Field(default=500, ge=1)


class ProjectUserNamesRequest(RequestModel):
    projects: Optional[list[str]] = None
    include_subprojects: bool = True
    entity: Literal["task", "model"] = "task"


class ProjectOrNoneRequest(RequestModel):
    project: Optional[str] = None
    include_subprojects: bool = True


class GetParamsRequest(ProjectOrNoneRequest):
    page: int = Field(default=0, ge=0)
    page_size: int = Field(default=500, ge=1)
