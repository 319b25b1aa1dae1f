"""Project logic (clearml-server ``bll/project``): names and the tree, statistics and tags, moves, deletion."""

from .project_bll import get_readable, merge_project, move_project, rename
from .project_cleanup import delete_project, validate_delete
from .project_queries import (STATUSES, active_user_projects, archived, dataset_children_stats, dataset_stats,
                              entity_tags, entity_users, hyperparam_values, model_metadata_keys, model_metadata_values,
                              own_contents, own_datasets, project_stats,
                              project_tags, selected_children, task_parents)
from .sub_projects import (INVALID, MAX_DEPTH, children, ensure_project, find_by_name, ids_with_children,
                           target_project, touch, validate_name, with_subprojects)

__all__ = ["INVALID", "MAX_DEPTH", "STATUSES", "active_user_projects", "archived", "children",
           "dataset_children_stats", "dataset_stats", "delete_project", "ensure_project", "entity_tags",
           "entity_users", "find_by_name", "get_readable", "hyperparam_values", "ids_with_children", "merge_project",
           "model_metadata_keys", "model_metadata_values", "move_project", "own_contents", "own_datasets",
           "project_stats", "project_tags", "rename", "selected_children", "target_project", "task_parents", "touch",
           "validate_delete", "validate_name", "with_subprojects"]
