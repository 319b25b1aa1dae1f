"""Training capability: the YOLO model asset, its ClearML task and the champion/challenger registry."""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .assets import ClearMLTrainingNames, build_training_assets
    from .checks import build_model_checks
    from .config import ClearMLTrainingConfig
    from .defs import build_training_defs
    from .records import DatasetRef, EpochProgress, TrainingRequest, TrainingResult
    from .registry import (
        CHAMPION_TAG,
        ClearMLModelRecord,
        ClearMLPromotionDecision,
        decide_promotion,
        find_champions,
        promote_model,
    )

# Imported on first use: the training child imports ``.yolo`` through this package and needs none
# of the Dagster asset modules (nor the datasets package they pull in).
_EXPORTS = {
    "ClearMLTrainingNames": ".assets", "build_training_assets": ".assets", "build_model_checks": ".checks",
    "ClearMLTrainingConfig": ".config", "build_training_defs": ".defs",
    **{name: ".records" for name in ("DatasetRef", "EpochProgress", "TrainingRequest", "TrainingResult")},
    **{name: ".registry" for name in ("CHAMPION_TAG", "ClearMLModelRecord", "ClearMLPromotionDecision",
                                      "decide_promotion", "find_champions", "promote_model")},
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "CHAMPION_TAG",
    "ClearMLModelRecord",
    "ClearMLPromotionDecision",
    "ClearMLTrainingConfig",
    "ClearMLTrainingNames",
    "DatasetRef",
    "EpochProgress",
    "TrainingRequest",
    "TrainingResult",
    "build_model_checks",
    "build_training_assets",
    "build_training_defs",
    "decide_promotion",
    "find_champions",
    "promote_model",
]
