"""Typed request models of the local server's endpoints (clearml-server ``apiserver/apimodels``).

Each is a :class:`~.registry.RequestModel` (unknown fields kept) handed to the handler as ``call.model``;
defaults are the real server's. Required fields missing are the real 400/11; a wrong type is 400/12.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from .registry import RequestModel


# -- shared ----------------------------------------------------------------------------------------------
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


# -- projects --------------------------------------------------------------------------------------------
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
    search_hidden: bool = False
    allow_public: bool = True


class ProjectTagsRequest(TagsRequest):
    projects: Optional[list[str]] = None


class MultiProjectRequest(RequestModel):
    projects: Optional[list[str]] = None
    include_subprojects: bool = True


class ProjectTaskParentsRequest(MultiProjectRequest):
    tasks_state: Optional[Literal["active", "archived"]] = None


class ProjectHyperparamValuesRequest(MultiProjectRequest):
    section: str
    name: str
    allow_public: bool = True


class ProjectOrNoneRequest(RequestModel):
    project: Optional[str] = None
    include_subprojects: bool = True


class GetParamsRequest(ProjectOrNoneRequest):
    page: int = Field(default=0, ge=0)
    page_size: int = Field(default=500, ge=1)


# -- organization ----------------------------------------------------------------------------------------
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


# -- tasks -----------------------------------------------------------------------------------------------
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


# -- models ----------------------------------------------------------------------------------------------
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
