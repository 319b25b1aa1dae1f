"""Requests shared by several services: batches of ids, moves, publicity, tags."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from ..core import RequestModel


class BatchRequest(RequestModel):
    """Any ``*_many`` call."""

    ids: list[str] = Field(min_length=1, description="ids of the objects to act on")


class MakePublicRequest(RequestModel):
    ids: list[str] = Field(description="ids to make public or private")


class MoveRequest(RequestModel):
    """``tasks.move``/``models.move``: to a project by id or by name, or to the root."""

    ids: list[str]
    project: Optional[str] = None
    project_name: Optional[str] = None


class TagsRequest(RequestModel):
    include_system: bool = False
    filter: Optional[dict[str, Any]] = Field(default=None, description="tags/system_tags conditions")
