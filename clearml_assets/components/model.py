"""``ClearMLYoloModelComponent``: the YOLO model trained on the training view's exact version, here or on a queue."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from ..automation.jobs import CLEARML_TRAINING_JOB, build_clearml_training_job
from ..automation.schedules import build_clearml_retraining_schedule
from ..training.config import ClearMLTrainingConfig
from ..training.defs import build_training_defs
from .base import ClearMLComponent, run_config_field
from .scaffold import scaffolded_with_example

_EXAMPLE = """\
  # execution: queue                 # local (default): trains here; queue: a ClearML agent on `queue` trains it
  # queue: gpu
  # device: "0"                      # torch device: cpu (default), 0, 0,1, mps
  # epochs: 50
  # imgsz: 640
  # training_view_key: datasets/shapes_training_view
  # project: clearml_assets_demo     # ClearML project of the training tasks and models
  # retraining_cron: "0 3 * * 0"     # retrain on the latest training view (default: no schedule)
"""


@scaffolded_with_example("The YOLO model trained on the training view, on ClearML account '{account}'.", _EXAMPLE)
class ClearMLYoloModelComponent(ClearMLComponent):
    """An Ultralytics YOLO detector as an asset, trained on the exact ClearML dataset version of the training view.

    Builds ``<key_prefix>/<model_name>`` (downstream of ``training_view_key``) with its ``main_metric_floor``
    check, the job ``clearml_training_job`` (dataset versions and model) and, if ``retraining_cron`` is set, the
    retraining schedule: what ``build_definitions`` builds, through ``build_training_defs``. Each run is a ClearML
    training task (full logging, weights registered as an output model, promoted to ``champion`` only when its main
    metric beats the current champion's), run here (``execution: local``) or by a ClearML agent on ``queue``.
    """

    account: str = Field(default="", description="ClearML account to train on: 'local' (the embedded server) or a "
                                                 "lower-case name whose keys are in the environment; empty: the "
                                                 "resource's default account.")
    project: str = Field(default="clearml_assets_demo", description="ClearML project of the training tasks and "
                                                                    "models (the champion's scope).")
    model_name: str = Field(default="shapes_yolo", description="Registered output model name and asset key name.")
    key_prefix: list[str] = Field(default_factory=lambda: ["training"], description="Asset key prefix.")
    group_name: str = Field(default="training", description="Asset group of the model asset.")
    training_view_key: str = Field(default="datasets/shapes_training_view", description="Asset key (a/b) of the "
                                                                                        "training view it trains "
                                                                                        "on.")
    execution: Literal["local", "queue"] = run_config_field(ClearMLTrainingConfig, "execution")
    queue: str = run_config_field(ClearMLTrainingConfig, "queue")
    # a device written 0 (or "0": Dagster renders attribute strings and reads "0" back as a number) is device 0
    device: str | int = run_config_field(ClearMLTrainingConfig, "device")
    epochs: int = run_config_field(ClearMLTrainingConfig, "epochs")
    imgsz: int = run_config_field(ClearMLTrainingConfig, "imgsz")
    batch: int = run_config_field(ClearMLTrainingConfig, "batch")
    model_yaml: str = run_config_field(ClearMLTrainingConfig, "model_yaml")
    main_metric: str = run_config_field(ClearMLTrainingConfig, "main_metric")
    metric_floor: float = Field(default=0.3, description="The main_metric_floor check fails below this.")
    dataset_group: str = Field(default="datasets", description="Asset group of the dataset assets the training job "
                                                               "materializes before the model.")
    training_job_name: str | None = Field(default=CLEARML_TRAINING_JOB, description="Name of the job materializing "
                                                                                    "the datasets and the model; "
                                                                                    "null: no job.")
    retraining_cron: str | None = Field(default=None, description="When to retrain on the latest training view "
                                                                  "(cron); null: no schedule.")

    def build_clearml_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The model asset and its check, the training job and the optional retraining schedule."""
        defaults = {"execution": self.execution, "queue": self.queue, "device": str(self.device), "epochs": self.epochs,
                    "imgsz": self.imgsz, "batch": self.batch, "model_yaml": self.model_yaml,
                    "main_metric": self.main_metric}
        training = build_training_defs(
            project=self.project, model_name=self.model_name, account=self.account or None,
            training_view_key=dg.AssetKey.from_user_string(self.training_view_key), key_prefix=self.key_prefix,
            group_name=self.group_name, metric_floor=self.metric_floor, config_defaults=defaults)
        jobs = ([build_clearml_training_job(self.dataset_group, self.group_name, name=self.training_job_name)]
                if self.training_job_name else [])
        schedules = ([build_clearml_retraining_schedule(cron_schedule=self.retraining_cron,
                                                        training_group=self.group_name)]
                     if self.retraining_cron else [])
        return dg.Definitions.merge(training, dg.Definitions(jobs=jobs, schedules=schedules))
