"""The seed's DataView over the project's ClearML dataset versions (see README, "The seed's DataView").

``from clearml_assets import dataview as allegroai`` lets code written for ClearML's ``allegroai.DataView`` run:
``DataView()``, ``add_query(dataset_name=..., version_name=..., frame_query=...)``, ``prefetch_files()``,
``to_list()``, ``frame["image"].get_local_source()``.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "DataView": ".view", "FrameGroup": ".frames", "SingleFrame": ".frames", "ROI": ".frames",
    "DataViewError": ".errors", "DataViewFetchError": ".errors", "dataview_account": ".account",
    "FrameQueryError": "..datasets.frame_query",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
