"""Asset checks of the training view: labels valid and no empty split (blocking), class balance."""


import shutil
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ..errors import ClearMLConfigError
from ..resource import ClearMLResource
from ..sdk_process import run_in_sdk_process
from .layout import DATA_YAML, SPLITS, split_list_name
from .manifest import class_counts, read_manifest
from .validation import read_class_names, scan_source

LABELS_VALID = "labels_valid"
SPLITS_NOT_EMPTY = "splits_not_empty"
CLASS_BALANCE = "class_balance"


def evaluate_training_view(folder: Path, min_class_fraction: float = 0.05) -> dict[str, tuple[bool, dict[str, Any]]]:
    """Check a local copy of a training view.

    Args:
        folder: The view's files (``data.yaml``, ``images/``, ``labels/``, manifest).
        min_class_fraction: A class with fewer than this share of the training objects fails balance.

    Returns:
        ``check name -> (passed, metadata)`` for ``labels_valid``, ``splits_not_empty``, ``class_balance``.
    """
    results: dict[str, tuple[bool, dict[str, Any]]] = {}
    names = read_class_names(folder) or ()
    problems: list[str] = []
    if not (folder / DATA_YAML).is_file():
        problems.append(f"{DATA_YAML}: missing")
    frames = 0
    if names:
        scan = scan_source(folder, names) if any(folder.glob("images/*")) else None
        if scan is not None:
            problems += [str(i) for i in scan.issues]
            frames = len(scan.frames)
    else:
        problems.append("classes.txt: missing or empty")
    try:
        manifest = read_manifest(folder)
    except FileNotFoundError as exc:
        manifest = pd.DataFrame(columns=["split", "image", "label"])
        problems.append(str(exc))
    for row in manifest.itertuples(index=False):
        for rel in (row.image, row.label):
            if not (folder / rel).is_file():
                problems.append(f"{rel}: named in the manifest but missing")
    results[LABELS_VALID] = (not problems, {
        "files_at_fault": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:100]) or "none"),
        "problems": len(problems), "frames_checked": frames})

    per_split = {s: _listed_images(folder, s) for s in SPLITS}
    empty = [s for s, n in per_split.items() if n == 0]
    results[SPLITS_NOT_EMPTY] = (not empty, {"split_counts": per_split, "empty_splits": ", ".join(empty) or "none"})

    train = manifest[manifest["split"] == "train"] if len(manifest) else manifest
    counts = class_counts(train, names) if names and len(train) else {n: 0 for n in names}
    total = sum(counts.values())
    shares = {n: (c / total if total else 0.0) for n, c in counts.items()}
    low = [n for n, s in shares.items() if s < min_class_fraction]
    table = "| class | objects (train) | share |\n|---|---|---|\n" + "".join(
        f"| {n} | {counts[n]} | {shares[n]:.1%} |\n" for n in names)
    results[CLASS_BALANCE] = (not low, {"balance": dg.MetadataValue.md(table),
                                         "under_represented": ", ".join(low) or "none",
                                         "min_class_fraction": min_class_fraction})
    return results


def latest_materialization_metadata(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> dict[str, Any]:
    """Plain values of the metadata of an asset's latest materialization ({} if none)."""
    event = instance.get_latest_materialization_event(asset_key)
    materialization = event.asset_materialization if event else None
    if not materialization:
        return {}
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def latest_dataset_id(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> str | None:
    """The ClearML ``dataset_id`` of an asset's latest materialization, or None if it has none.

    This is how a downstream asset (e.g. the model) finds the training view version to train on:
    ``Dataset.get(dataset_id=latest_dataset_id(context.instance, key)).get_local_copy()``.
    """
    return latest_materialization_metadata(instance, asset_key).get("dataset_id")


def dataset_id_for_account(instance: dg.DagsterInstance, asset_key: dg.AssetKey, account: str,
                           dataset_id: str | None = None) -> str | None:
    """The dataset version to use on ``account``: ``dataset_id`` if given, else the ``dataset_id`` of the
    asset's latest materialization, which must have been made on the same account.

    A dataset id means nothing on another ClearML account (or it names another account's data), so a
    training or curation run on account B never takes a version that account A made.

    Args:
        instance: The Dagster instance.
        asset_key: The upstream dataset asset (e.g. the training view).
        account: The account this run uses.
        dataset_id: A version id given in run config (taken as is).

    Returns:
        The id, or None when the asset has no materialization with one.

    Raises:
        ClearMLConfigError: The latest materialization was made on another account; names both and
            what to do.
    """
    if dataset_id:
        return dataset_id
    metadata = latest_materialization_metadata(instance, asset_key)
    found = metadata.get("dataset_id")
    made_by = metadata.get("clearml_account")
    if found and made_by and made_by != account:
        raise ClearMLConfigError(
            f"The latest materialization of {asset_key.to_user_string()} made dataset version {found} on ClearML "
            f"account '{made_by}', but this run uses account '{account}'. Materialize "
            f"{asset_key.to_user_string()} with account '{account}' first, or run this asset with account "
            f"'{made_by}', or set dataset_id in the run config.",
            metadata={"dataset_id": found, "made_by_account": made_by, "run_account": account})
    return found


def build_training_view_checks(view_key: dg.AssetKey, *, min_class_fraction: float = 0.05, sdk_timeout: float = 900.0
                               ) -> dg.AssetChecksDefinition:
    """The checks of the training view, evaluated on a fresh download of the ClearML version.

    ``labels_valid`` and ``splits_not_empty`` are blocking: when either fails, assets downstream of
    the view (the model) do not run. ``class_balance`` warns.
    """
    specs = [
        dg.AssetCheckSpec(LABELS_VALID, asset=view_key, blocking=True,
                          description="Every label parses, class ids are in range, boxes lie inside the "
                                      "image, every manifest row's files exist."),
        dg.AssetCheckSpec(SPLITS_NOT_EMPTY, asset=view_key, blocking=True,
                          description="Both train and val hold at least one image."),
        dg.AssetCheckSpec(CLASS_BALANCE, asset=view_key, blocking=False,
                          description=f"Each class has at least {min_class_fraction:.0%} of the training objects."),
    ]

    @dg.multi_asset_check(specs=specs, name=f"{'_'.join(view_key.path)}_checks",
                          compute_kind="clearml")
    def _checks(context: dg.AssetCheckExecutionContext, clearml: ClearMLResource):
        materialized = latest_materialization_metadata(context.instance, view_key)
        dataset_id = materialized.get("dataset_id")
        if not dataset_id:
            for spec in specs:
                yield dg.AssetCheckResult(asset_key=view_key, check_name=spec.name, passed=False,
                                          metadata={"reason": "the training view has no materialization"})
            return
        env = clearml.sdk_env(materialized.get("clearml_account") or None)
        workdir = Path(tempfile.mkdtemp(prefix="clearml_assets_check_"))
        try:
            copy = run_in_sdk_process("clearml_assets.datasets.sdk_ops:local_copy", dataset_id, str(workdir / "v"),
                                      env=env, timeout=sdk_timeout, what=f"download of training view {dataset_id}")
            results = evaluate_training_view(Path(copy), min_class_fraction)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for spec in specs:
            passed, metadata = results[spec.name]
            yield dg.AssetCheckResult(
                asset_key=view_key, check_name=spec.name, passed=passed, metadata={**metadata, "dataset_id": dataset_id},
                severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN)

    return _checks


def _listed_images(folder: Path, split: str) -> int:
    """Images of a split that its list file names and that exist."""
    listing = folder / split_list_name(split)
    if not listing.is_file():
        return 0
    lines = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
    return sum(1 for ln in lines if (folder / ln.removeprefix("./")).is_file())
