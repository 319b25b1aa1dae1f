"""The dataset assets: raw -> curated -> training view, each materialization a ClearML dataset version.

Their names and run configuration are in :mod:`.config`, publishing and reading versions in :mod:`.publish`.
"""

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from ..errors import ClearMLConfigError, DatasetValidationError
from ..resource import AccountChoice, ClearMLResource
from ..run_config import check_ops_config_keys, config_with_defaults
from .checks import dataset_id_for_account
from .config import (
    ClearMLCuratedDatasetConfig, ClearMLDatasetNames, ClearMLRawDatasetConfig, ClearMLTrainingViewConfig,
    _DatasetConfig, check_dataset_names,
)
from .curation import link_or_copy, write_curated_folder
from .frame_query import frame_query_mask
from .layout import DATA_YAML, write_training_view
from .manifest import class_counts, preview_markdown, read_manifest, split_counts
from .publish import _staging, download_version, newest_version_id, publish_folder, version_metadata
from .shapes import generate_demo_dataset
from .validation import read_class_names, scan_source

StageDefaults = Mapping[str, Mapping[str, Any]]


def default_demo_folder(clearml: ClearMLResource) -> Path:
    """Where the raw asset writes the demo data when no source folder is configured (``<home>/demo_data``)."""
    return clearml.home_dir() / "demo_data"


def _resolve_source(clearml: ClearMLResource, config: ClearMLRawDatasetConfig, log: Any) -> Path:
    folder = Path(config.source_folder).expanduser() if config.source_folder else default_demo_folder(clearml)
    if not folder.exists() and config.demo:
        log.info(f"Source folder {folder} missing: writing the demo shapes set ({config.demo_images} images)")
        generate_demo_dataset(folder, images=config.demo_images, seed=config.demo_seed, size=config.demo_image_size)
    return folder


def _manifest_metadata(manifest, class_names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "frames": len(manifest),
        "class_counts": dg.MetadataValue.json(class_counts(manifest, class_names)),
        "split_counts": dg.MetadataValue.json(split_counts(manifest)),
        "manifest_preview": dg.MetadataValue.md(preview_markdown(manifest)),
    }


def _scan_class_counts(scan) -> dict[str, int]:
    """Objects per class over the valid frames of a scan (raw has no split yet)."""
    counts = dict.fromkeys(scan.class_names, 0)
    for frame in scan.frames:
        for box in frame.boxes:
            counts[scan.class_names[box[0]]] += 1
    return counts


def build_dataset_assets(names: ClearMLDatasetNames, group_name: str = "datasets",
                         config_defaults: StageDefaults | None = None) -> list[dg.AssetsDefinition]:
    """The raw, curated and training view assets (see ``build_dataset_defs``).

    Args:
        names: Build-time project, dataset names, account and keys.
        group_name: Asset group (without a translator).
        config_defaults: Run-config defaults by stage (``raw``, ``curated``, ``training_view``), e.g.
            ``{"raw": {"source_folder": "/data/shapes"}}``.
    """
    defaults = config_defaults or {}
    unknown = sorted(set(defaults) - {"raw", "curated", "training_view"})
    if unknown:
        raise ClearMLConfigError(f"config_defaults names no dataset stage {unknown}: use raw, curated, training_view.")
    return [
        _raw_asset(names, group_name, config_with_defaults(ClearMLRawDatasetConfig, defaults.get("raw"))),
        _curated_asset(names, group_name, config_with_defaults(ClearMLCuratedDatasetConfig, defaults.get("curated"))),
        _training_view_asset(names, group_name,
                             config_with_defaults(ClearMLTrainingViewConfig, defaults.get("training_view"))),
    ]


def _target(context: dg.AssetExecutionContext, names: ClearMLDatasetNames, clearml: ClearMLResource,
            config: _DatasetConfig, default_name: str) -> tuple[str, str, AccountChoice]:
    """The run's ClearML project, dataset name and account (run config over the build-time names); run config
    under a name Dagster would ignore fails first."""
    check_ops_config_keys(context)
    project, name = config.dataset_project or names.project, config.dataset_name or default_name
    check_dataset_names(project, name)
    return project, name, clearml.choose_account(config.account, names.account)


def _raw_asset(names: ClearMLDatasetNames, group_name: str, config_cls: type[ClearMLRawDatasetConfig]
              ) -> dg.AssetsDefinition:
    @dg.asset(key=names.raw_key, group_name=names.group("raw", group_name), kinds={"clearml"},
              description="Images + YOLO labels ingested as-is from the source folder into a ClearML dataset "
                          "version (child of the previous version, so only changed files are uploaded).",
              check_specs=[dg.AssetCheckSpec("labels_valid", asset=names.raw_key,
                                             description="Files that curation will leave out (warning).")])
    def raw(context: dg.AssetExecutionContext, config: config_cls, clearml: ClearMLResource
            ) -> dg.MaterializeResult:
        project, name, choice = _target(context, names, clearml, config, names.raw)
        account = choice.name
        source = _resolve_source(clearml, config, context.log)
        scan = scan_source(source, tuple(config.class_names) or None)
        with _staging(clearml, "raw_") as stage:
            shutil.copytree(source, stage / "data", copy_function=lambda s, d: link_or_copy(Path(s), Path(d)))
            if config.class_names and not read_class_names(stage / "data"):
                (stage / "data" / "classes.txt").write_text("".join(f"{n}\n" for n in config.class_names))
            published = publish_folder(
                clearml, account, project=project, name=name, folder=stage / "data",
                parents=None, reuse_any=False, timeout=config.sdk_timeout_seconds, log=context.log,
                description=f"Raw images and YOLO labels from {source} (Dagster run {context.run.run_id}).")
        metadata = version_metadata(clearml, choice, project, published)
        metadata.update({"source_folder": str(source), "valid_frames": len(scan.frames),
                         "invalid_files": len(scan.issues),
                         "class_counts": dg.MetadataValue.json(_scan_class_counts(scan))})
        check = dg.AssetCheckResult(
            check_name="labels_valid", passed=not scan.issues, severity=dg.AssetCheckSeverity.WARN,
            metadata={"files_at_fault": dg.MetadataValue.md(
                "\n".join(f"- {i}" for i in scan.issues[:100]) or "none"), "issues": len(scan.issues)})
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.content_hash),
                                    check_results=[check])

    return raw


def _curated_asset(names: ClearMLDatasetNames, group_name: str, config_cls: type[ClearMLCuratedDatasetConfig]
                  ) -> dg.AssetsDefinition:
    @dg.asset(key=names.curated_key, group_name=names.group("curated", group_name), kinds={"clearml"},
              deps=[names.raw_key, names.raw_external_key],
              description="The raw version validated and cleaned (bad files reported and left out), split "
                          "train/val by content hash, with a frames manifest (manifest.parquet + csv). A "
                          "ClearML child version of the raw version.")
    def curated(context: dg.AssetExecutionContext, config: config_cls, clearml: ClearMLResource
                ) -> dg.MaterializeResult:
        project, name, choice = _target(context, names, clearml, config, names.curated)
        account = choice.name
        raw_id = config.raw_dataset_id or newest_version_id(clearml, account, project, names.raw, names.raw_key)
        with _staging(clearml, "curated_") as stage:
            raw_copy = download_version(clearml, account, raw_id, stage / "raw", config, "raw")
            scan = scan_source(raw_copy)
            result = write_curated_folder(scan, stage / "curated", val_fraction=config.val_fraction,
                                          seed=config.seed, source=raw_id, on_invalid=config.on_invalid)
            published = publish_folder(
                clearml, account, project=project, name=name, folder=stage / "curated", parents=[raw_id],
                reuse_any=True, timeout=config.sdk_timeout_seconds, log=context.log,
                description=f"Curated from raw version {raw_id}: val_fraction={config.val_fraction}, "
                            f"seed={config.seed} (Dagster run {context.run.run_id}).")
        metadata = version_metadata(clearml, choice, project, published)
        metadata.update(_manifest_metadata(result.manifest, scan.class_names))
        rejected = result.rejected
        metadata.update({
            "raw_dataset_id": raw_id, "rejected_files": len(rejected),
            "rejected": dg.MetadataValue.md(
                "\n".join(f"- {r.path}: {r.problem} ({r.detail})" for r in rejected.head(100).itertuples())
                or "none"),
            "val_fraction": config.val_fraction, "split_seed": config.seed,
        })
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.content_hash))

    return curated


def _training_view_asset(names: ClearMLDatasetNames, group_name: str, config_cls: type[ClearMLTrainingViewConfig]
                        ) -> dg.AssetsDefinition:
    @dg.asset(key=names.training_view_key, group_name=names.group("training_view", group_name),
              kinds={"clearml"}, deps=[names.curated_key],
              description="Frames of the curated version selected by frame queries on the manifest, laid out "
                          "for Ultralytics (images/{train,val}, labels/{train,val}, data.yaml). Train with "
                          "Dataset.get(dataset_id=<metadata dataset_id>).get_local_copy() + '/data.yaml'.")
    def training_view(context: dg.AssetExecutionContext, config: config_cls,  # type: ignore[valid-type]
                      clearml: ClearMLResource) -> dg.MaterializeResult:
        project, name, choice = _target(context, names, clearml, config, names.training_view)
        account = choice.name
        curated_id = (dataset_id_for_account(context.instance, names.curated_key, account, config.curated_dataset_id)
                      or newest_version_id(clearml, account, project, names.curated, names.curated_key))
        with _staging(clearml, "view_") as stage:
            copy = download_version(clearml, account, curated_id, stage / "curated", config, "curated")
            manifest = read_manifest(copy)
            class_names = read_class_names(copy)
            if not class_names:
                raise DatasetValidationError(f"Curated version {curated_id} has no classes.txt; re-materialize "
                                             f"{names.curated_key.to_user_string()}.")
            train_mask = frame_query_mask(manifest, config.train_query)
            val_mask = frame_query_mask(manifest, config.val_query)
            info = {"curated_dataset_id": curated_id, "train_query": config.train_query,
                    "val_query": config.val_query}
            view = write_training_view(copy, manifest, train_mask, val_mask, class_names, stage / "view",
                                       view_info=info)
            published = publish_folder(
                clearml, account, project=project, name=name, folder=stage / "view", parents=[curated_id],
                reuse_any=True, timeout=config.sdk_timeout_seconds, log=context.log,
                description=f"Training view of curated version {curated_id}: train={config.train_query!r}, "
                            f"val={config.val_query!r} (Dagster run {context.run.run_id}).")
        metadata = version_metadata(clearml, choice, project, published)
        metadata.update(_manifest_metadata(view.manifest, class_names))
        metadata.update({"curated_dataset_id": curated_id, "train_query": config.train_query,
                         "val_query": config.val_query, "data_yaml": DATA_YAML,
                         "class_names": dg.MetadataValue.json(list(class_names)),
                         "query": json.dumps({"train": config.train_query, "val": config.val_query})})
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.content_hash))

    return training_view
