"""Typed request models of the local server's endpoints (clearml-server ``apiserver/apimodels``), one module per
service.

Each is a :class:`~..core.RequestModel` (unknown fields kept) handed to the handler as ``call.model``;
defaults are the real server's. Required fields missing are the real 400/11; a wrong type is 400/12.
"""

from .shared import (BatchRequest, MakePublicRequest, MoveRequest, TagsRequest)
from .projects import (GetParamsRequest, MultiProjectRequest, ProjectCreateRequest, ProjectDeleteRequest,
                       ProjectHyperparamValuesRequest, ProjectMergeRequest, ProjectModelMetadataValuesRequest,
                       ProjectMoveRequest, ProjectOrNoneRequest, ProjectRequest, ProjectTagsRequest,
                       ProjectTaskParentsRequest, ProjectUserNamesRequest, ProjectsGetRequest)
from .organization import (EntitiesCountRequest)
from .tasks import (AddOrUpdateArtifactsRequest, AddOrUpdateModelRequest, ArchiveRequest, Artifact, ArtifactId,
                    CloneRequest, CompletedRequest, ConfigurationItem, CreateTaskRequest, DeleteArtifactsRequest,
                    DeleteConfigurationRequest, DeleteHyperParamsRequest, DeleteManyRequest, DeleteModelsRequest,
                    DeleteRequest, EditConfigurationRequest, EditHyperParamsRequest, GetConfigurationNamesRequest,
                    GetConfigurationsRequest, GetHyperParamsRequest, HyperParamItem, ModelItemKey, PublishManyRequest,
                    PublishRequest, ResetFields, ResetManyRequest, ResetRequest, SetRequirementsRequest,
                    StatusNoteFields, StopManyRequest, TaskBatchRequest, TaskForceRequest, TaskOutputsFields,
                    TaskRequest, TaskUpdateFieldsRequest, TaskUpdateRequest)
from .models import (AddOrUpdateMetadataRequest, CreateModelRequest, DeleteMetadataRequest, DeleteModelRequest,
                     GetFrameworksRequest, MetadataItem, ModelRequest, ModelsDeleteManyRequest,
                     ModelsPublishManyRequest, PublishModelRequest)

__all__ = [
    "AddOrUpdateArtifactsRequest", "AddOrUpdateMetadataRequest", "AddOrUpdateModelRequest", "ArchiveRequest",
    "Artifact", "ArtifactId", "BatchRequest", "CloneRequest", "CompletedRequest", "ConfigurationItem",
    "CreateModelRequest", "CreateTaskRequest", "DeleteArtifactsRequest", "DeleteConfigurationRequest",
    "DeleteHyperParamsRequest", "DeleteManyRequest", "DeleteMetadataRequest", "DeleteModelRequest",
    "DeleteModelsRequest", "DeleteRequest", "EditConfigurationRequest", "EditHyperParamsRequest",
    "EntitiesCountRequest", "GetConfigurationNamesRequest", "GetConfigurationsRequest", "GetFrameworksRequest",
    "GetHyperParamsRequest", "GetParamsRequest", "HyperParamItem", "MakePublicRequest", "MetadataItem",
    "ModelItemKey", "ModelRequest", "ModelsDeleteManyRequest", "ModelsPublishManyRequest", "MoveRequest",
    "MultiProjectRequest", "ProjectCreateRequest", "ProjectDeleteRequest", "ProjectHyperparamValuesRequest",
    "ProjectMergeRequest", "ProjectModelMetadataValuesRequest", "ProjectMoveRequest", "ProjectOrNoneRequest",
    "ProjectRequest", "ProjectsGetRequest", "ProjectTagsRequest", "ProjectTaskParentsRequest",
    "ProjectUserNamesRequest", "PublishManyRequest", "PublishModelRequest", "PublishRequest", "ResetFields",
    "ResetManyRequest", "ResetRequest", "SetRequirementsRequest", "StatusNoteFields", "StopManyRequest",
    "TagsRequest", "TaskBatchRequest", "TaskForceRequest", "TaskOutputsFields", "TaskRequest",
    "TaskUpdateFieldsRequest", "TaskUpdateRequest"
]
