"""Dataset versions as Dagster assets: raw -> curated -> training view, each a ClearML dataset version.

Names are imported on first use, so the SDK child that runs ``datasets.sdk_ops`` never loads Dagster.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "ClearMLCuratedDatasetConfig": ".config", "ClearMLDatasetNames": ".config", "ClearMLRawDatasetConfig": ".config",
    "ClearMLTrainingViewConfig": ".config", "latest_dataset_id": ".checks", "build_dataset_defs": ".defs",
    "FrameQueryError": ".frame_query", "select_frames": ".frame_query", "generate_demo_dataset": ".shapes",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
