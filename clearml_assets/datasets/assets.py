"""The dataset assets: raw -> curated -> training view, each materialization a ClearML dataset version."""


import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
from pydantic import Field

from ..client import ClearMLClient
from ..errors import ClearMLAssetsError, ClearMLConfigError, DatasetValidationError
from ..resource import AccountChoice, ClearMLResource
from ..translator import ClearMLDatasetRef, DagsterClearMLTranslator, DatasetStage
from ..sdk_process import SDKProcessError, run_in_sdk_process
from ..types import DatasetVersionSpec
from .checks import dataset_id_for_account
from .curation import link_or_copy, write_curated_folder
from .frame_query import frame_query_mask
from .layout import DATA_YAML, write_training_view
from .manifest import class_counts, folder_content_hash, preview_markdown, read_manifest, split_counts
from .shapes import generate_demo_dataset
from .validation import read_class_names, scan_source
from .versions import (
    FINALIZED_STATUSES, ClearMLDatasetVersion, content_tag, get_dataset_version, list_dataset_versions,
    next_semver,
)

DEFAULT_PROJECT = "clearml_assets_demo"


def default_demo_folder(clearml: ClearMLResource) -> Path:
    """Where the raw asset writes the demo data when no source folder is configured (``<home>/demo_data``)."""
    return clearml.home_dir() / "demo_data"


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
    """Configuration of the raw dataset asset."""

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
    """Configuration of the curated dataset asset."""

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
    """Configuration of the training view asset."""

    curated_dataset_id: str = Field(default="", description="Curated version to select from; empty = the one "
                                                            "the curated asset last materialized.")
    train_query: str = Field(default='split == "train"', description="Frame query (pandas query syntax, safe "
                                                                     "subset) selecting training frames from "
                                                                     "the manifest, e.g. 'split == \"train\" "
                                                                     "and n_triangle > 0'.")
    val_query: str = Field(default='split == "val"', description="Frame query selecting validation frames; "
                                                                 "must not overlap train_query.")


@contextmanager
def _staging(clearml: ClearMLResource, prefix: str) -> Iterator[Path]:
    base = clearml.home_dir() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class PublishedVersion:
    """A dataset version that a materialization produced or reused."""

    version: ClearMLDatasetVersion
    content_hash: str
    file_count: int
    total_bytes: int
    reused: bool
    uploaded_bytes: int
    uploaded_files: int
    parents: list[str]


def publish_folder(clearml: ClearMLResource, account: str | None, *, project: str, name: str, folder: Path,
                   parents: list[str] | None, reuse_any: bool, description: str, timeout: float,
                   log: Any = None) -> PublishedVersion:
    """Make ``folder`` the content of a dataset version, reusing an existing one with the same content.

    Args:
        clearml: The ``ClearMLResource``.
        account: Account name, or None for the default.
        project: Dataset project.
        name: Dataset name.
        folder: The version's full content.
        parents: Parent version ids; None = the newest existing version of ``name``.
        reuse_any: Reuse any finalized version with the same content hash; otherwise only the newest
            (so "newest" always reflects the source).
        description: Description of a new version.
        timeout: Seconds for the SDK child process.
        log: A logger for progress lines.
    """
    client = clearml.client(account)
    content_hash, file_count, total_bytes = folder_content_hash(folder)
    versions = list_dataset_versions(client, project, name)
    candidates = versions if reuse_any else versions[:1]
    for existing in candidates:
        if existing.content_hash == content_hash:
            if log:
                log.info(f"{name}: content {content_hash[:12]} unchanged, reusing version {existing.version} "
                         f"({existing.id}); nothing uploaded")
            return PublishedVersion(existing, content_hash, file_count, total_bytes, True, 0, 0, [])
    if parents is None:
        parents = [versions[0].id] if versions else []
    version = next_semver(versions)
    spec = DatasetVersionSpec(name=name, project=project, version=version, parents=tuple(parents),
                              folder=str(folder), tags=("dagster", content_tag(content_hash)), description=description)
    try:
        result = run_in_sdk_process("clearml_assets.datasets.sdk_ops:create_version", spec,
                                    env=clearml.sdk_env(account), timeout=timeout,
                                    what=f"ClearML dataset version {project}/{name} {version}")
    except SDKProcessError:
        # A child killed on timeout (or by the OOM killer) cannot delete its own draft.
        discard_unfinished_drafts(client, project, name, version, content_tag(content_hash), log)
        raise
    created = get_dataset_version(client, result.id)
    if log:
        log.info(f"{name}: created version {version} ({created.id}), uploaded {result.delta_files} files "
                 f"/ {result.delta_bytes} bytes, removed {result.removed_files}")
    return PublishedVersion(created, content_hash, file_count, total_bytes, False, result.delta_bytes,
                            result.delta_files, parents)


def discard_unfinished_drafts(client: ClearMLClient, project: str, name: str, version: str, tag: str,
                              log: Any = None) -> list[str]:
    """Delete the unfinalized versions ``version`` of ``project/name`` that carry ``tag``.

    Only drafts of this materialization match (the content tag is set when the draft is created),
    so someone else's draft of the same version number is left alone.

    Returns:
        Ids of the deleted drafts.
    """
    deleted = []
    for draft in list_dataset_versions(client, project, name, finalized_only=False):
        if draft.version != version or draft.status in FINALIZED_STATUSES or tag not in draft.tags:
            continue
        try:
            client.tasks.delete(draft.id)
            deleted.append(draft.id)
        except ClearMLAssetsError as exc:
            if log:
                log.warning(f"{name}: could not delete unfinished draft {draft.id} ({exc}); it was never "
                            "finalized, delete it in the ClearML UI.")
    if deleted and log:
        log.info(f"{name}: deleted unfinished draft version(s) {', '.join(deleted)}")
    return deleted


def version_metadata(clearml: ClearMLResource, account: str | AccountChoice | None, project: str,
                     published: PublishedVersion) -> dict[str, Any]:
    """Metadata common to every dataset asset materialization (with the account and what chose it)."""
    version = published.version
    choice = account if isinstance(account, AccountChoice) else None
    client = clearml.client(choice.name if choice else account)
    return {
        "dataset_id": version.id,
        "dataset_project": project,
        "dataset_name": version.name,
        "dataset_version": version.version,
        "clearml_url": dg.MetadataValue.url(client.web_url("dataset", version.id, version.project_id)),
        "clearml_account": client.account,
        "content_hash": published.content_hash,
        "file_count": published.file_count,
        "total_bytes": published.total_bytes,
        "uploaded_bytes": published.uploaded_bytes,
        "uploaded_files": published.uploaded_files,
        "reused_existing_version": published.reused,
        "parent_dataset_ids": ", ".join(published.parents) or "none",
        **(choice.metadata() if choice else {}),
    }


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


def check_dataset_names(project: str, name: str) -> None:
    """Fail before any work on names the ClearML server refuses (projects and tasks need 3+ characters).

    Raises:
        ClearMLConfigError: Naming the field to change.
    """
    for field, value in (("dataset_project", project), ("dataset_name", name)):
        if len(value.strip()) < 3:
            raise ClearMLConfigError(f"{field} {value!r} is too short: ClearML needs at least 3 characters; "
                                     f"set a longer {field} in the asset's config.")


def _scan_class_counts(scan) -> dict[str, int]:
    """Objects per class over the valid frames of a scan (raw has no split yet)."""
    counts = dict.fromkeys(scan.class_names, 0)
    for frame in scan.frames:
        for box in frame.boxes:
            counts[scan.class_names[box[0]]] += 1
    return counts


def newest_version_id(clearml: ClearMLResource, account: str | None, project: str, name: str, key: dg.AssetKey) -> str:
    """The id of the newest finalized version of dataset ``project/name``.

    Raises:
        ClearMLConfigError: There is none yet; names the asset to materialize first.
    """
    versions = list_dataset_versions(clearml.client(account), project, name)
    if not versions:
        raise ClearMLConfigError(f"No finalized version of dataset {project}/{name}: materialize "
                                 f"{key.to_user_string()} first.")
    return versions[0].id


def download_version(clearml: ClearMLResource, account: str | None, version_id: str, target: Path,
                     config: _DatasetConfig, kind: str) -> Path:
    """A local copy of a dataset version, fetched with the SDK in a child process for one account."""
    return Path(run_in_sdk_process("clearml_assets.datasets.sdk_ops:local_copy", version_id, str(target),
                                   env=clearml.sdk_env(account), timeout=config.sdk_timeout_seconds,
                                   what=f"download of {kind} dataset version {version_id}"))


def build_dataset_assets(names: ClearMLDatasetNames, group_name: str = "datasets") -> list[dg.AssetsDefinition]:
    """The raw, curated and training view assets (see ``build_dataset_defs``)."""
    return [_raw_asset(names, group_name), _curated_asset(names, group_name), _training_view_asset(names, group_name)]


def _target(names: ClearMLDatasetNames, clearml: ClearMLResource, config: _DatasetConfig, default_name: str
            ) -> tuple[str, str, AccountChoice]:
    """The run's ClearML project, dataset name and account (run config over the build-time names)."""
    project, name = config.dataset_project or names.project, config.dataset_name or default_name
    check_dataset_names(project, name)
    return project, name, clearml.choose_account(config.account, names.account)


def _raw_asset(names: ClearMLDatasetNames, group_name: str) -> dg.AssetsDefinition:
    @dg.asset(key=names.raw_key, group_name=names.group("raw", group_name), kinds={"clearml"},
              description="Images + YOLO labels ingested as-is from the source folder into a ClearML dataset "
                          "version (child of the previous version, so only changed files are uploaded).",
              check_specs=[dg.AssetCheckSpec("labels_valid", asset=names.raw_key,
                                             description="Files that curation will leave out (warning).")])
    def raw(context: dg.AssetExecutionContext, config: ClearMLRawDatasetConfig, clearml: ClearMLResource
            ) -> dg.MaterializeResult:
        project, name, choice = _target(names, clearml, config, names.raw)
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


def _curated_asset(names: ClearMLDatasetNames, group_name: str) -> dg.AssetsDefinition:
    @dg.asset(key=names.curated_key, group_name=names.group("curated", group_name), kinds={"clearml"},
              deps=[names.raw_key, names.raw_external_key],
              description="The raw version validated and cleaned (bad files reported and left out), split "
                          "train/val by content hash, with a frames manifest (manifest.parquet + csv). A "
                          "ClearML child version of the raw version.")
    def curated(context: dg.AssetExecutionContext, config: ClearMLCuratedDatasetConfig, clearml: ClearMLResource
                ) -> dg.MaterializeResult:
        project, name, choice = _target(names, clearml, config, names.curated)
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


def _training_view_asset(names: ClearMLDatasetNames, group_name: str) -> dg.AssetsDefinition:
    @dg.asset(key=names.training_view_key, group_name=names.group("training_view", group_name),
              kinds={"clearml"}, deps=[names.curated_key],
              description="Frames of the curated version selected by frame queries on the manifest, laid out "
                          "for Ultralytics (images/{train,val}, labels/{train,val}, data.yaml). Train with "
                          "Dataset.get(dataset_id=<metadata dataset_id>).get_local_copy() + '/data.yaml'.")
    def training_view(context: dg.AssetExecutionContext, config: ClearMLTrainingViewConfig,
                      clearml: ClearMLResource) -> dg.MaterializeResult:
        project, name, choice = _target(names, clearml, config, names.training_view)
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
