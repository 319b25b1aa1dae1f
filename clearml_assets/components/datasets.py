"""``ClearMLDatasetsComponent``: ClearML dataset versions raw -> curated -> training view."""

from __future__ import annotations


import dagster as dg
from pydantic import Field

from ..datasets.config import (DEFAULT_PROJECT, ClearMLCuratedDatasetConfig, ClearMLRawDatasetConfig,
                               ClearMLTrainingViewConfig)
from ..datasets.defs import build_dataset_defs
from .base import ClearMLComponent, run_config_field
from .scaffold import scaffolded_with_example

_EXAMPLE = """\
  # project: clearml_assets_demo     # ClearML project of the three datasets
  # source_folder: /data/shapes      # images/ + labels/ (YOLO) + classes.txt; default: a generated demo set
  # demo: false                      # with a real source_folder: a wrong path fails instead of writing demo data
  # val_fraction: 0.2
  # train_query: 'split == "train" and n_triangle > 0'
  # val_query: 'split == "val"'
  # key_prefix: [datasets]
  # group_name: datasets
"""


@scaffolded_with_example("ClearML dataset versions (raw -> curated -> training view) on account '{account}'.",
                         _EXAMPLE)
class ClearMLDatasetsComponent(ClearMLComponent):
    """ClearML dataset versions as assets: raw -> curated (validated, split, per-frame manifest) -> training view.

    Builds ``<key_prefix>/<raw_name>``, ``<key_prefix>/<raw_name>_clearml_latest`` (the newest raw version in
    ClearML, uploaded by anyone), ``<key_prefix>/<curated_name>`` and ``<key_prefix>/<training_view_name>`` with
    the training view's checks: what ``build_definitions`` builds, through ``build_dataset_defs``. Each
    materialization is a ClearML dataset version (a child of the previous stage's), reused when its content is
    unchanged. The training view's version is what ``ClearMLYoloModelComponent`` trains on.
    """

    account: str = Field(default="", description="ClearML account of the datasets: 'local' (the embedded server) "
                                                 "or a lower-case name whose keys are in the environment; empty: "
                                                 "the resource's default account.")
    project: str = Field(default=DEFAULT_PROJECT, description="ClearML project of the three datasets.")
    raw_name: str = Field(default="shapes_raw", description="ClearML dataset (and asset) name of the raw stage.")
    curated_name: str = Field(default="shapes_curated", description="ClearML dataset name of the curated stage.")
    training_view_name: str = Field(default="shapes_training_view", description="ClearML dataset name of the "
                                                                                "training view.")
    key_prefix: list[str] = Field(default_factory=lambda: ["datasets"], description="Asset key prefix.")
    group_name: str = Field(default="datasets", description="Asset group of the dataset assets.")
    source_folder: str = run_config_field(ClearMLRawDatasetConfig, "source_folder")
    demo: bool = run_config_field(ClearMLRawDatasetConfig, "demo")
    val_fraction: float = run_config_field(ClearMLCuratedDatasetConfig, "val_fraction")
    train_query: str = run_config_field(ClearMLTrainingViewConfig, "train_query")
    val_query: str = run_config_field(ClearMLTrainingViewConfig, "val_query")
    min_class_fraction: float = Field(default=0.05, ge=0, le=1, description="Class balance check: the least "
                                                                            "frequent class's share at least this.")
    observe_interval_minutes: int | None = Field(default=None, ge=1, description="Observe the newest raw version "
                                                                                 "in ClearML this often (a "
                                                                                 "schedule); null: no schedule.")

    def build_clearml_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The dataset assets, the raw observation and the training view checks."""
        defaults = {"raw": {"source_folder": self.source_folder, "demo": self.demo},
                    "curated": {"val_fraction": self.val_fraction},
                    "training_view": {"train_query": self.train_query, "val_query": self.val_query}}
        return build_dataset_defs(
            dataset_project=self.project, raw_name=self.raw_name, curated_name=self.curated_name,
            training_view_name=self.training_view_name, account=self.account or None, key_prefix=self.key_prefix,
            group_name=self.group_name, min_class_fraction=self.min_class_fraction,
            observe_interval_minutes=self.observe_interval_minutes, config_defaults=defaults)
