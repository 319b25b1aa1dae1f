"""The YOLO model asset: train on the training view's exact dataset version, register, promote."""


import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from ..datasets.checks import dataset_id_for_account
from ..errors import ClearMLConfigError, TrainingError
from ..pipes.client import ClearMLTaskFailure, PipesClearMLClient
from ..resource import AccountChoice, ClearMLResource
from ..run_config import check_ops_config_keys, config_with_defaults
from ..translator import ClearMLModelRef, DagsterClearMLTranslator
from .config import ClearMLTrainingConfig, short_metric_name
from .curves import png_markdown, render_training_curves
from .records import TrainingRequest, TrainingResult
from .registry import find_champions, find_project_id, promote_model
from .remote import ENTRY_POINT, ENTRY_SCRIPT, REQUEST_KEY


@dataclass(frozen=True)
class ClearMLTrainingNames:
    """Build-time defaults of the model asset: ClearML project and model name, account, keys."""

    project: str = "clearml_assets_demo"
    model_name: str = "shapes_yolo"
    account: str | None = None
    key_prefix: tuple[str, ...] = ("training",)
    training_view_key: dg.AssetKey = dg.AssetKey(["datasets", "shapes_training_view"])
    translator: DagsterClearMLTranslator | None = dataclasses.field(default=None, compare=False)

    @property
    def model_ref(self) -> ClearMLModelRef:
        """The ClearML output model behind the asset."""
        return ClearMLModelRef(self.project, self.model_name)

    @property
    def model_key(self) -> dg.AssetKey:
        """Asset key: the translator's, else ``<key_prefix>/<model_name>``."""
        if self.translator is not None:
            return self.translator.get_model_asset_key(self.model_ref)
        return dg.AssetKey([*self.key_prefix, self.model_name])


def training_request(config: ClearMLTrainingConfig, names: ClearMLTrainingNames, *, dataset_id: str,
                     champion: dict[str, Any] | None, run_id: str) -> TrainingRequest:
    """The typed request the training task runs on."""
    model_name = config.model_name or names.model_name
    return TrainingRequest(
        project=config.project or names.project, task_name=config.task_name or f"{model_name} training",
        model_name=model_name, dataset_id=dataset_id, epochs=config.epochs, imgsz=config.imgsz, batch=config.batch,
        model_yaml=config.model_yaml, pretrained_weights=config.pretrained_weights, seed=config.seed,
        device=config.device, workers=config.workers, close_mosaic=config.close_mosaic,
        main_metric=short_metric_name(config.main_metric), promotion_rule=config.promotion_rule,
        min_delta=config.min_delta, champion=champion, task_tags=["dagster", f"dagster-run-{run_id[:8]}"],
        model_tags=["dagster"])


def _run_training_task(context: dg.AssetExecutionContext, clearml: Any, account: str | None, client: Any,
                       config: ClearMLTrainingConfig, request: TrainingRequest) -> TrainingResult:
    """Run the training task through Pipes (here or on ``config.queue``) and return its typed result.

    On any failure or interrupt the task ends failed with the reason and its model records are deleted, so
    nothing looks registered; the champion is untouched (promotion happens only after success).
    """
    task_ids: list[str] = []
    # A local run also echoes the script's console (Ultralytics' progress) on stderr, as a training in this
    # process would: the step's compute log and the demo log show it; it is always in the task's log too.
    pipes = PipesClearMLClient(clearml, account=account, forward_console=True)
    what = f"training of {request.model_name} on dataset {request.dataset_id}"
    try:
        invocation = pipes.run(
            context=context, script=ENTRY_SCRIPT, entry_point=ENTRY_POINT, project=request.project,
            task_name=request.task_name, task_type="training", tags=request.task_tags,
            queue=config.queue if config.execution == "queue" else None, timeout=config.timeout_seconds,
            extras={REQUEST_KEY: request.to_dict()}, on_task_created=task_ids.append)
        answers = [m for m in invocation.get_custom_messages() if isinstance(m, dict) and "model_id" in m]
        if not answers:
            raise ClearMLTaskFailure(description=f"{what}: the task ended without reporting its result.")
        return TrainingResult.from_dict(answers[-1])
    except BaseException as exc:
        interrupted = isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError))
        metadata: dict[str, Any] = {"dataset_id": request.dataset_id, "clearml_account": client.account}
        if task_ids:
            reason = ("Interrupted: the Dagster run was terminated (SIGINT/SIGTERM or UI terminate)" if interrupted
                      else getattr(exc, "description", None) or str(exc))
            _ensure_task_failed(client, task_ids[0], reason, context.log)
            metadata["discarded_models"] = ", ".join(_discard_models_of(client, task_ids[0], context.log)) or "none"
            metadata.update({"task_id": task_ids[0],
                             "clearml_task_url": dg.MetadataValue.url(client.web_url("task", task_ids[0]))})
        if interrupted:
            context.log.error(f"Training interrupted: ClearML task {task_ids[0] if task_ids else '-'} marked "
                              "failed, no model registered, champion unchanged.")
            raise
        if isinstance(exc, dg.Failure) or isinstance(exc, Exception):
            description = getattr(exc, "description", None) or f"{type(exc).__name__}: {exc}"
            raise TrainingError(f"{what} failed: {description} No model was registered and the champion is "
                                f"unchanged" + (f"; see ClearML task {task_ids[0]}." if task_ids else "."),
                                metadata=metadata) from None
        raise


def _ensure_task_failed(client: Any, task_id: str, reason: str, log: Any) -> None:
    # The agent or local runner marks a failed script's task failed; this keeps it so and records the reason.
    try:
        tasks = client.tasks.get_many([task_id], only_fields=["id", "status", "status_reason"])
        if tasks and (tasks[0].status != "failed" or not tasks[0].status_reason):
            client.tasks.set_status(task_id, "failed", reason=reason, message="training failed")
    except Exception as exc:  # the training error is the one to report
        log.warning(f"Could not mark ClearML task {task_id} failed: {exc}")


def _discard_models_of(client: Any, task_id: str, log: Any) -> list[str]:
    """Delete the model records a failed training created: none may look registered without weights."""
    try:
        ids = [m.id for m in client.models.iter(task=[task_id], only_fields=["id"])]
        for model_id in ids:
            client.models.delete(model_id)
        return ids
    except Exception as exc:  # the training error is the one to report
        log.warning(f"Could not delete the models of failed ClearML task {task_id}: {exc}")
        return []


def _per_class_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no per-class results (no validation objects)"
    cols = ["class", "images", "instances", "precision", "recall", "mAP50", "mAP50-95"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                                       for c in cols) + " |")
    return "\n".join(lines)


def _curves_file(home: Path, run_id: str, png: bytes) -> Path:
    path = home / "training" / run_id / "training_curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


@dataclass
class _TrainingPlan:
    """What a run trains on, decided before the training task starts."""

    choice: AccountChoice
    client: Any
    dataset_id: str
    main_metric: str
    project: str
    champion: Any


def _plan_training(context: dg.AssetExecutionContext, config: ClearMLTrainingConfig, names: ClearMLTrainingNames,
                   clearml: ClearMLResource) -> _TrainingPlan:
    """The account, dataset version, main metric and current champion of this run.

    Raises:
        ClearMLConfigError: Run config Dagster would ignore, no dataset version to train on, or an unknown
            main metric.
    """
    check_ops_config_keys(context)
    choice = clearml.choose_account(config.account, names.account)
    dataset_id = dataset_id_for_account(context.instance, names.training_view_key, choice.name, config.dataset_id)
    if not dataset_id:
        raise ClearMLConfigError(
            f"No dataset version to train on: materialize {names.training_view_key.to_user_string()} first "
            "(its metadata records the ClearML dataset_id), or set dataset_id in the run config.")
    try:
        main_metric = short_metric_name(config.main_metric)
    except ValueError as exc:
        raise ClearMLConfigError(f"main_metric: {exc}") from None
    client = clearml.client(choice.name)
    project = config.project or names.project
    champions = find_champions(client, find_project_id(client, project))
    return _TrainingPlan(choice, client, dataset_id, main_metric, project, champions[0] if champions else None)


def _decision_metadata(decision: dict[str, Any], demoted: list[str]) -> dict[str, Any]:
    """The champion/challenger decision as metadata."""
    return {
        "champion_decision": "promoted" if decision["promote"] else "not promoted",
        "champion_reason": decision["reason"],
        "challenger_value": float(decision["challenger_value"]),
        "previous_champion_value": (float(decision["champion_value"]) if decision["champion_value"] is not None
                                    else "none"),
        "previous_champion_model_id": decision["champion_model_id"] or "none",
        "demoted_model_ids": ", ".join(demoted) or "none",
    }


def _result_metadata(plan: _TrainingPlan, config: ClearMLTrainingConfig, result: TrainingResult,
                     curves_png: bytes, curves_file: Path) -> dict[str, Any]:
    """Links, ids, metrics, curves and timings of a finished training (secret-free)."""
    client, metrics = plan.client, result.metrics
    return {
        "clearml_task_url": dg.MetadataValue.url(client.web_url("task", result.task_id, result.project_id)),
        "clearml_model_url": dg.MetadataValue.url(client.web_url("model", result.model_id, result.project_id)),
        **plan.choice.metadata(),
        "task_id": result.task_id, "model_id": result.model_id, "model_uri": result.model_uri,
        "project": plan.project, "dataset_id": result.dataset.id, "dataset_name": result.dataset.name,
        "dataset_version": result.dataset.version,
        "main_metric": plan.main_metric, "main_metric_value": float(metrics[plan.main_metric]),
        **{f"metric_{k}": float(v) for k, v in metrics.items()},
        "per_class": dg.MetadataValue.md(_per_class_markdown(result.per_class)),
        "labels": dg.MetadataValue.json(result.labels),
        "training_curves": dg.MetadataValue.md(png_markdown(curves_png)),
        "training_curves_file": dg.MetadataValue.path(str(curves_file)),
        "epochs": result.epochs, "train_seconds": round(result.train_seconds, 2),
        "child_seconds": round(result.wall_seconds, 2),
        "task_close_seconds": round(result.phase_seconds.get("close", 0.0), 2),
        "execution": config.execution if config.execution == "local" else f"queue {config.queue}",
        "child_phase_seconds": dg.MetadataValue.json({k: round(v, 2) for k, v in result.phase_seconds.items()}),
    }


def train_model(context: dg.AssetExecutionContext, config: ClearMLTrainingConfig, names: ClearMLTrainingNames,
                clearml: ClearMLResource) -> dg.MaterializeResult:
    """Body of the model asset (see ``build_training_assets``)."""
    started = time.monotonic()
    plan = _plan_training(context, config, names, clearml)
    champion = plan.champion
    context.log.info(f"Training on dataset {plan.dataset_id}; current champion: "
                     f"{champion.id if champion else 'none'}")
    request = training_request(config, names, dataset_id=plan.dataset_id, run_id=context.run.run_id,
                               champion=dataclasses.asdict(champion) if champion else None)
    before_child = time.monotonic() - started
    result = _run_training_task(context, clearml, plan.choice.name, plan.client, config, request)
    child_process = time.monotonic() - started - before_child
    decision = result.decision
    demoted = promote_model(plan.client, result.model_id, result.project_id) if decision["promote"] else []
    png = render_training_curves(result.results, title=f"{result.model_name} on {result.dataset.id[:8]}")
    metadata = {
        **_result_metadata(plan, config, result, png, _curves_file(clearml.home_dir(), context.run.run_id, png)),
        "wall_seconds": round(time.monotonic() - started, 2),
        "parent_phase_seconds": dg.MetadataValue.json({
            "before_child": round(before_child, 2), "child_process": round(child_process, 2),
            "after_child": round(time.monotonic() - started - before_child - child_process, 2)}),
        **_decision_metadata(decision, demoted),
    }
    context.log.info(f"Model {result.model_id}: {plan.main_metric}={result.metrics[plan.main_metric]:.4f}; "
                     f"{decision['reason']}")
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(result.model_id))


def build_training_assets(names: ClearMLTrainingNames, group_name: str = "training",
                          config_defaults: Mapping[str, Any] | None = None) -> list[dg.AssetsDefinition]:
    """The model asset ``<key_prefix>/<model_name>``, downstream of the training view asset.

    Args:
        names: Build-time project, model name, account and keys.
        group_name: Asset group.
        config_defaults: Defaults of the run config (``ClearMLTrainingConfig`` fields, e.g.
            ``{"execution": "queue", "queue": "gpu"}``; the components set them).
    """
    config_cls = config_with_defaults(ClearMLTrainingConfig, config_defaults)

    @dg.asset(key=names.model_key, deps=[names.training_view_key], group_name=group_name,
              kinds={"clearml", "pytorch"},
              description="Ultralytics YOLO trained on the exact ClearML dataset version of the training view "
                          "(its latest materialization's dataset_id), logged as a ClearML task, registered "
                          "as an output model, and tagged 'champion' when its main metric beats the current "
                          "champion's.")
    def model(context: dg.AssetExecutionContext, config: config_cls,  # type: ignore[valid-type]
              clearml: ClearMLResource) -> dg.MaterializeResult:
        return train_model(context, config, names, clearml)

    return [model]
