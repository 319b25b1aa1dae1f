"""``tasks.*`` requests."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from ..core import RequestModel
from .shared import BatchRequest


class CreateTaskRequest(RequestModel):
    """``tasks.create``/``tasks.validate``: the schema's field types (extra fields kept)."""

    name: str
    type: str
    comment: Optional[str] = None
    tags: Optional[list[str]] = None
    system_tags: Optional[list[str]] = None
    project: Optional[str] = None
    parent: Optional[str] = None
    output_dest: Optional[str] = None
    script: Optional[dict[str, Any]] = None
    execution: Optional[dict[str, Any]] = None
    hyperparams: Optional[dict[str, dict[str, Any]]] = None
    configuration: Optional[dict[str, Any]] = None
    models: Optional[dict[str, Optional[list[dict[str, Any]]]]] = None
    container: Optional[dict[str, Any]] = None
    runtime: Optional[dict[str, Any]] = None


class CloneRequest(RequestModel):
    task: str
    new_task_name: Optional[str] = None
    new_task_comment: Optional[str] = None
    new_task_tags: Optional[list[str]] = None
    new_task_system_tags: Optional[list[str]] = None
    new_task_parent: Optional[str] = None
    new_task_project: Optional[str] = None
    new_task_hyperparams: Optional[dict[str, dict[str, Any]]] = None
    new_task_configuration: Optional[dict[str, Any]] = None
    new_task_container: Optional[dict[str, Any]] = None
    new_task_input_models: Optional[list[dict[str, Any]]] = None
    execution_overrides: Optional[dict[str, Any]] = None
    validate_references: bool = False
    new_project_name: Optional[str] = None



class TaskRequest(RequestModel):
    task: str


class TaskForceRequest(TaskRequest):
    force: bool = False


# Field sets shared by a task call and its ``*_many`` twin. A set is listed first among the bases so that its
# fields follow the other base's (pydantic orders fields base first, and the first invalid field is reported).
class StatusNoteFields(RequestModel):
    """The note a status change leaves on the task."""

    status_reason: Optional[str] = None
    status_message: Optional[str] = None


class TaskOutputsFields(RequestModel):
    """What resetting or deleting a task does with its outputs."""

    return_file_urls: bool = False
    delete_output_models: bool = True
    delete_external_artifacts: bool = True


class ResetFields(TaskOutputsFields):
    """What ``tasks.reset``/``reset_many`` (and ``delete_many``) clear besides the outputs."""

    clear_all: bool = False


class TaskUpdateRequest(StatusNoteFields, TaskForceRequest):
    """Status changes (``tasks.started``/``stopped``/``failed``/``close``/``stop``...)."""


class CompletedRequest(TaskUpdateRequest):
    publish: bool = False


class PublishRequest(TaskUpdateRequest):
    publish_model: bool = True


class ResetRequest(ResetFields, TaskUpdateRequest):
    pass


class DeleteRequest(TaskOutputsFields, TaskUpdateRequest):
    move_to_trash: bool = False


class TaskBatchRequest(StatusNoteFields, BatchRequest):
    pass


class StopManyRequest(TaskBatchRequest):
    force: bool = False


class PublishManyRequest(StopManyRequest):
    publish_model: bool = True


class ResetManyRequest(ResetFields, StopManyRequest):
    pass


class DeleteManyRequest(ResetManyRequest):
    move_to_trash: bool = False


class ArchiveRequest(RequestModel):
    tasks: list[str]
    status_reason: Optional[str] = None
    status_message: Optional[str] = None


class TaskUpdateFieldsRequest(TaskRequest):
    """``tasks.update``: the few fields that may change in any status."""

    name: Optional[str] = None
    comment: Optional[str] = None
    tags: Optional[list[str]] = None
    system_tags: Optional[list[str]] = None
    project: Optional[str] = None
    status_message: Optional[str] = None
    created: Optional[str] = None


class SetRequirementsRequest(TaskRequest):
    requirements: dict[str, Any]


class HyperParamItem(RequestModel):
    section: str
    name: Optional[str] = None
    value: Optional[str] = None
    type: Optional[str] = None
    description: Optional[str] = None


class EditHyperParamsRequest(TaskForceRequest):
    hyperparams: list[HyperParamItem]
    replace_hyperparams: Literal["none", "section", "all"] = "none"


class DeleteHyperParamsRequest(TaskForceRequest):
    hyperparams: list[HyperParamItem]


class ConfigurationItem(RequestModel):
    name: str
    value: Optional[str] = None
    type: Optional[str] = None
    description: Optional[str] = None


class EditConfigurationRequest(TaskForceRequest):
    configuration: list[ConfigurationItem]
    replace_configuration: bool = False


class DeleteConfigurationRequest(TaskForceRequest):
    configuration: list[str]


class GetHyperParamsRequest(RequestModel):
    tasks: list[str]


class GetConfigurationsRequest(RequestModel):
    tasks: list[str]
    names: Optional[list[str]] = None


class GetConfigurationNamesRequest(RequestModel):
    tasks: list[str]
    skip_empty: bool = True


class Artifact(RequestModel):
    key: str
    type: str
    mode: Literal["input", "output"] = "output"


class ArtifactId(RequestModel):
    key: str
    mode: Literal["input", "output"] = "output"


class AddOrUpdateArtifactsRequest(TaskForceRequest):
    artifacts: list[Artifact] = Field(min_length=1)


class DeleteArtifactsRequest(TaskForceRequest):
    artifacts: list[ArtifactId] = Field(min_length=1)


class AddOrUpdateModelRequest(TaskRequest):
    name: str
    model: str
    type: Literal["input", "output"]
    iteration: Optional[int] = None


class ModelItemKey(RequestModel):
    name: str
    type: Literal["input", "output"]


class DeleteModelsRequest(TaskRequest):
    models: list[ModelItemKey]
