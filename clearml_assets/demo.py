"""The main job: every capability end to end, on the embedded local server unless told otherwise.

``clearml-assets demo`` materializes the dataset versions and the YOLO model (job
``clearml_training_job``), then adds the training task as a partition of the account's task archive and
archives it. Runs are recorded in a persistent ``DAGSTER_HOME`` so ``dagster dev`` shows them afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from .errors import ClearMLAssetsError
from .resource import ClearMLResource, clearml_assets_home


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def run_demo(account: str | None = None, home: Path | None = None, train_epochs: int | None = None) -> dict:
    """Run the main job and return a summary (dataset ids, model, archive path).

    Args:
        account: ClearML account to use; default: the resource's default (the embedded server).
        home: ``CLEARML_ASSETS_HOME`` for this run (server, demo data, exports, Dagster home).
        train_epochs: Override the training epochs (default: the training config's default).

    Raises:
        ClearMLAssetsError: A step failed; the message says which and why.
    """
    if home is not None:
        os.environ["CLEARML_ASSETS_HOME"] = str(Path(home).expanduser().resolve())
    base = clearml_assets_home()
    os.environ.setdefault("DAGSTER_HOME", str(base / "dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)

    from .archives.assets import clearml_task_partitions, task_archive_key
    from .automation.jobs import CLEARML_TRAINING_JOB as TRAINING_JOB
    from .definitions import build_definitions

    clearml = ClearMLResource.from_env()
    if account:
        clearml = ClearMLResource.from_env(default_account=account)
    account = clearml.default_account
    clearml.client(account)  # fail fast, and start the embedded server if needed
    defs = build_definitions(clearml)
    instance = dg.DagsterInstance.get()
    started = time.monotonic()

    run_config: dict = {}
    if train_epochs:
        run_config = {"ops": {"training__shapes_yolo": {"config": {"epochs": train_epochs}}}}
    result = defs.get_job_def(TRAINING_JOB).execute_in_process(instance=instance, run_config=run_config,
                                                               raise_on_error=False)
    if not result.success:
        raise ClearMLAssetsError(f"{TRAINING_JOB} failed (Dagster run {result.run_id}); see the error above, "
                                 "or the run in `dagster dev`.")
    model = _latest_metadata(instance, dg.AssetKey(["training", "shapes_yolo"]))
    task_id = model.get("task_id")
    if not task_id:
        raise ClearMLAssetsError("the model asset recorded no ClearML task id; cannot archive the training task")

    partitions = clearml_task_partitions(account)
    instance.add_dynamic_partitions(partitions.name, [task_id])
    archive_key = task_archive_key(account)
    archive = dg.materialize([defs.get_assets_def(archive_key)], instance=instance, partition_key=task_id,
                             resources={"clearml": clearml}, raise_on_error=False,
                             selection=[archive_key])
    if not archive.success:
        raise ClearMLAssetsError(f"archiving training task {task_id} failed (Dagster run {archive.run_id}).")
    archived = _latest_metadata(instance, archive_key)
    view = _latest_metadata(instance, dg.AssetKey(["datasets", "shapes_training_view"]))
    return {
        "account": account,
        "dagster_home": os.environ["DAGSTER_HOME"],
        "training_view_dataset_id": view.get("dataset_id"),
        "training_view_version": view.get("dataset_version"),
        "task_id": task_id,
        "model_id": model.get("model_id"),
        "main_metric": model.get("main_metric"),
        "main_metric_value": model.get("main_metric_value"),
        "champion_decision": model.get("champion_decision") or model.get("promotion_decision"),
        "archive_path": archived.get("archive_path"),
        "archive_sha256": archived.get("archive_sha256"),
        "seconds": round(time.monotonic() - started, 1),
    }
