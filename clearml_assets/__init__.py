"""clearml_assets: Dagster assets for ClearML."""

from .errors import (
    ArchiveError,
    ClearMLAssetsError,
    ClearMLConfigError,
    ClearMLConnectionError,
    ClearMLRequestError,
    DatasetValidationError,
    TrainingError,
)

__all__ = [
    "ArchiveError", "ClearMLAssetsError", "ClearMLConfigError", "ClearMLConnectionError",
    "ClearMLRequestError", "DatasetValidationError", "TrainingError",
]
__version__ = "0.1.0"
