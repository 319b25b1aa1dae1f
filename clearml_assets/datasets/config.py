"""Build-time names and run configuration of the dataset assets."""

from dataclasses import dataclass, field

import dagster as dg
from pydantic import Field

from ..errors import ClearMLConfigError
from ..translator import ClearMLDatasetRef, DagsterClearMLTranslator, DatasetStage

DEFAULT_PROJECT = "clearml_assets_demo"


@dataclass(frozen=True)
class ClearMLDatasetNames:
    """Build-time defaults: the ClearML project and dataset names, the account, and the asset keys."""

    project: str = DEFAULT_PROJECT
    raw: str = "shapes_raw"
    curated: str = "shapes_curated"
    training_view: str = "shapes_training_view"
    account: str | None = None
    key_prefix: tuple[str, ...] = ("datasets",)
    translator: DagsterClearMLTranslator | None = field(default=None, compare=False)

    def key(self, name: str) -> dg.AssetKey:
        """Asset key ``<key_prefix>/<name>``."""
        return dg.AssetKey([*self.key_prefix, name])

    def ref(self, stage: DatasetStage) -> ClearMLDatasetRef:
        """The ClearML dataset behind a stage."""
        name = {"raw": self.raw, "raw_external": self.raw, "curated": self.curated,
                "training_view": self.training_view}[stage]
        return ClearMLDatasetRef(self.project, name, stage)

    def _translated(self) -> DagsterClearMLTranslator:
        return self.translator or DagsterClearMLTranslator(self.key_prefix)

    def stage_key(self, stage: DatasetStage) -> dg.AssetKey:
        """The asset key of a stage, as the translator maps it."""
        return self._translated().get_dataset_asset_key(self.ref(stage))

    def group(self, stage: DatasetStage, default: str) -> str:
        """The asset group of a stage: the translator's if one was given, else ``default``."""
        return self.translator.get_dataset_group_name(self.ref(stage)) if self.translator else default

    @property
    def raw_key(self) -> dg.AssetKey:
        return self.stage_key("raw")

    @property
    def raw_external_key(self) -> dg.AssetKey:
        return self.stage_key("raw_external")

    @property
    def curated_key(self) -> dg.AssetKey:
        return self.stage_key("curated")

    @property
    def training_view_key(self) -> dg.AssetKey:
        return self.stage_key("training_view")


class _DatasetConfig(dg.Config):
    dataset_project: str = Field(default="", description="ClearML project of the dataset; empty = the "
                                                          "project given to build_dataset_defs.")
    dataset_name: str = Field(default="", description="ClearML dataset name; empty = the name given to "
                                                      "build_dataset_defs.")
    account: str = Field(default="", description="ClearML account (a name known to the `clearml` resource); "
                                                 "empty = the resource's default account.")
    sdk_timeout_seconds: float = Field(default=1800.0, description="Upper bound for one ClearML SDK "
                                                                    "operation (create/upload/download).")


class ClearMLRawDatasetConfig(_DatasetConfig):
    """Configuration of the raw dataset asset.

    Run config goes under its op name, ``datasets__shapes_raw`` (the asset key joined by ``__``).
    """

    source_folder: str = Field(default="", description="Folder of images + YOLO labels (images/ and labels/, "
                                                       "or labels next to images) with a classes.txt. Empty = "
                                                       "$CLEARML_ASSETS_HOME/demo_data.")
    demo: bool = Field(default=True, description="If the source folder does not exist, write the demo "
                                                 "shapes data set there first. Set false for real data, so "
                                                 "a wrong path fails instead.")
    demo_images: int = Field(default=160, description="Images in the generated demo set.")
    demo_seed: int = Field(default=0, description="Seed of the generated demo set.")
    demo_image_size: int = Field(default=160, description="Side in pixels of the generated demo images.")
    class_names: list[str] = Field(default_factory=list, description="Class names by id; empty = read "
                                                                      "classes.txt in the source folder.")


class ClearMLCuratedDatasetConfig(_DatasetConfig):
    """Configuration of the curated dataset asset.

    Run config goes under its op name, ``datasets__shapes_curated`` (the asset key joined by ``__``).
    """

    raw_dataset_id: str = Field(default="", description="Raw version to curate; empty = the newest finalized "
                                                        "raw version in ClearML (made by Dagster or uploaded "
                                                        "outside it).")
    val_fraction: float = Field(default=0.2, description="Share of frames assigned to the val split (by a "
                                                         "hash of each image's content, so adding files "
                                                         "never moves existing ones).")
    seed: int = Field(default=0, description="Seed of the content-hash split.")
    on_invalid: str = Field(default="exclude", description="'exclude': report bad files (corrupt images, bad "
                                                           "labels, orphans, duplicates) and leave them out; "
                                                           "'fail': raise DatasetValidationError listing them.")


class ClearMLTrainingViewConfig(_DatasetConfig):
    """Configuration of the training view asset.

    Run config goes under its op name, ``datasets__shapes_training_view`` (the asset key joined by ``__``).
    """

    curated_dataset_id: str = Field(default="", description="Curated version to select from; empty = the one "
                                                            "the curated asset last materialized.")
    train_query: str = Field(default='split == "train"', description="Frame query selecting training frames from "
                                                                     "the manifest: ClearML's Lucene-style syntax, "
                                                                     "e.g. 'meta.split:\"train\" AND NOT "
                                                                     "rois.label:circle', or the pandas form, e.g. "
                                                                     "'split == \"train\" and n_triangle > 0'.")
    val_query: str = Field(default='split == "val"', description="Frame query selecting validation frames; "
                                                                 "must not overlap train_query.")



def check_dataset_names(project: str, name: str) -> None:
    """Fail before any work on names the ClearML server refuses (projects and tasks need 3+ characters).

    Raises:
        ClearMLConfigError: Naming the field to change.
    """
    for field, value in (("dataset_project", project), ("dataset_name", name)):
        if len(value.strip()) < 3:
            raise ClearMLConfigError(f"{field} {value!r} is too short: ClearML needs at least 3 characters; "
                                     f"set a longer {field} in the asset's config.")
