"""Run configuration of the YOLO model asset."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from .records import METRIC_KEYS, short_metric_name  # noqa: F401  (re-exported)


class ClearMLTrainingConfig(dg.Config):
    """How one training run of the YOLO model asset trains, logs and decides promotion.

    Run config goes under its op name, ``training__shapes_yolo`` (the asset key joined by ``__``).
    """

    dataset_id: str = Field(default="", description="ClearML dataset version to train on; empty = the "
                                                    "dataset_id of the upstream training view asset's latest "
                                                    "materialization.")
    epochs: int = Field(default=20, ge=1, description="Training epochs.")
    imgsz: int = Field(default=128, ge=32, description="Training and validation image size in pixels "
                                                       "(a multiple of 32).")
    batch: int = Field(default=16, ge=1, description="Images per batch.")
    model_yaml: str = Field(default="yolov8n.yaml", description="Ultralytics model definition to build "
                                                                  "from scratch (no download needed).")
    pretrained_weights: str = Field(default="", description="Optional local .pt file to start from instead "
                                                            "of random weights; weights are never downloaded.")
    seed: int = Field(default=0, description="Random seed (training is deterministic for a given seed).")
    device: str = Field(default="cpu", description="Torch device: 'cpu', '0', '0,1', 'mps'.")
    workers: int = Field(default=0, ge=0, description="Data loader worker processes (0 = load in the "
                                                      "training process; best on small CPU machines).")
    close_mosaic: int = Field(default=10, ge=0, description="Turn mosaic augmentation off for the last N "
                                                            "epochs.")
    project: str = Field(default="", description="ClearML project of the training tasks and models; empty = "
                                                 "the project given to build_training_defs.")
    task_name: str = Field(default="", description="ClearML task name; empty = '<model name> training'.")
    model_name: str = Field(default="", description="Name of the registered output model; empty = the name "
                                                    "given to build_training_defs.")
    main_metric: str = Field(default="mAP50-95", description="Metric that decides promotion and the floor "
                                                             "check: precision, recall, mAP50 or mAP50-95.")
    promotion_rule: Literal["greater", "less"] = Field(
        default="greater", description="'greater': a higher main metric is better; 'less': lower is better.")
    min_delta: float = Field(default=0.0, ge=0.0, description="The challenger must beat the champion by more "
                                                              "than this to be promoted.")
    account: str = Field(default="", description="ClearML account (a name known to the `clearml` resource); "
                                                 "empty = the account given to build_training_defs, else the "
                                                 "resource's default.")
    timeout_seconds: float = Field(default=7200.0, gt=0, description="Upper bound for the whole training "
                                                                     "task (queued and running); then it is "
                                                                     "stopped and marked failed.")
    execution: Literal["local", "queue"] = Field(
        default="local", description="'local': the training task runs here in a subprocess; 'queue': it is "
                                     "enqueued on `queue` and a ClearML agent (e.g. on a GPU machine) runs it.")
    queue: str = Field(default="default", description="ClearML queue for execution 'queue'; the run fails at once "
                                                      "if no live agent serves it.")
