"""Training capability: the YOLO model asset, its ClearML task and the champion/challenger registry."""

from .assets import ClearMLTrainingNames, build_training_assets
from .checks import build_model_checks
from .config import ClearMLTrainingConfig
from .defs import build_training_defs
from .registry import (
    CHAMPION_TAG,
    ClearMLModelRecord,
    ClearMLPromotionDecision,
    decide_promotion,
    find_champions,
    promote_model,
)

__all__ = [
    "CHAMPION_TAG",
    "ClearMLModelRecord",
    "ClearMLPromotionDecision",
    "ClearMLTrainingConfig",
    "ClearMLTrainingNames",
    "build_model_checks",
    "build_training_assets",
    "build_training_defs",
    "decide_promotion",
    "find_champions",
    "promote_model",
]
