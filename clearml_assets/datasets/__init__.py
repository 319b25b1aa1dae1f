"""Dataset versions as Dagster assets: raw -> curated -> training view, each a ClearML dataset version."""

from .assets import (
    ClearMLCuratedDatasetConfig,
    ClearMLDatasetNames,
    ClearMLRawDatasetConfig,
    ClearMLTrainingViewConfig,
)
from .checks import latest_dataset_id
from .defs import build_dataset_defs
from .frame_query import FrameQueryError, select_frames
from .shapes import generate_demo_dataset

__all__ = [
    "ClearMLCuratedDatasetConfig", "ClearMLDatasetNames", "ClearMLRawDatasetConfig", "ClearMLTrainingViewConfig",
    "FrameQueryError", "build_dataset_defs", "generate_demo_dataset", "latest_dataset_id", "select_frames",
]
