"""``models.*`` requests."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from ..core import RequestModel
from .shared import BatchRequest


class ModelRequest(RequestModel):
    model: str


class CreateModelRequest(RequestModel):
    """``models.create``: ``ready`` defaults to true and ``metadata`` is an object keyed by item key, as the
    real CreateModelRequest (a list of items is accepted too)."""

    name: str
    uri: str
    labels: Optional[dict[str, int | str]] = None
    tags: Optional[list[str]] = None
    system_tags: Optional[list[str]] = None
    comment: Optional[str] = None
    public: bool = False
    project: Optional[str] = None
    parent: Optional[str] = None
    framework: Optional[str] = None
    design: Optional[dict[str, Any]] = None
    ready: bool = True
    ui_cache: Optional[dict[str, Any]] = None
    task: Optional[str] = None
    metadata: Optional[dict[str, dict[str, Any]] | list[dict[str, Any]]] = None


class PublishModelRequest(ModelRequest):
    force_publish_task: bool = False
    publish_task: bool = True


class ModelsPublishManyRequest(BatchRequest):
    force_publish_task: bool = False
    publish_task: bool = True


class DeleteModelRequest(ModelRequest):
    force: bool = False


class ModelsDeleteManyRequest(BatchRequest):
    force: bool = False


class GetFrameworksRequest(RequestModel):
    projects: Optional[list[str]] = None


class MetadataItem(RequestModel):
    key: str
    type: Optional[str] = None
    value: Optional[str] = None


class AddOrUpdateMetadataRequest(ModelRequest):
    metadata: list[MetadataItem] = Field(min_length=1)
    replace_metadata: bool = False


class DeleteMetadataRequest(ModelRequest):
    keys: list[str] = Field(min_length=1)
