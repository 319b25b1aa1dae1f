"""One YOLO training run inside its ClearML task (on a ClearML agent or in a local subprocess).

This is the only module that imports ``ultralytics``; ``training.remote`` calls ``train_yolo`` in the
task's process, which the Dagster side started through ``PipesClearMLClient``. Its steps:

1. Make Ultralytics offline-safe (private settings dir with sync and every integration off, a
   bundled font where it would download Arial.ttf) before importing it.
2. Fetch the exact dataset version, recorded on the task (created by the Dagster side).
3. Train, logging what Ultralytics' own ClearML integration logs (that integration switches itself
   off under pytest and registers the weights before we know the run succeeded, so the same
   callbacks live here).
4. Only after training and the final validation succeed: per-class table, output model with
   labels, upload confirmed, promotion decision reported.

Any exception is logged on the task and raised: the script exits non-zero, the agent (or the local
runner) marks the task failed and the Dagster side records the reason and discards its models.
"""

from __future__ import annotations

import atexit
import gc
import json
import math
import os
import re
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .records import METRIC_KEYS, DatasetRef, EpochProgress, TrainingRequest, TrainingResult
from .registry import ClearMLModelRecord, ClearMLPromotionDecision, decide_promotion

_SHORT_METRICS = {key: short for short, key in METRIC_KEYS.items()}
_PLOT_MAX_PX = 1024
_INTEGRATIONS_OFF = {"sync": False, "clearml": False, "comet": False, "dvc": False, "mlflow": False,
                     "raytune": False, "tensorboard": False, "wandb": False, "vscode_msg": False,
                     "openvino_msg": False, "api_key": ""}


def prepare_ultralytics(config_dir: Path) -> None:
    """Point Ultralytics at a private, offline configuration; call before importing it.

    ``YOLO_OFFLINE`` stops its online probe (and with it telemetry and hub calls); the fonts it
    fetches from GitHub for plot labels are satisfied with matplotlib's bundled DejaVu Sans.
    """
    import matplotlib

    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLBACKEND", "Agg")
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copyfile(dejavu, fonts / name)
    from ultralytics import settings

    settings.update(_INTEGRATIONS_OFF)


def _silence_finalization_output() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def _prepare_fast_exit() -> None:
    """Let the child exit in well under a second instead of 3-7 s.

    The parent waits for the child's exit, and tearing down the object cycles of torch,
    Ultralytics and ClearML at interpreter shutdown takes seconds. Frozen objects are skipped (the
    OS frees the memory); Triton's bindings then print "leaked instance" lists to stderr while the
    interpreter finalizes, which is silenced after every atexit handler has run (this handler is
    registered first, so it runs last).
    """
    gc.freeze()


def _package_pins() -> list[str]:
    # The spawned child's own script says nothing about the run; record what reproduces it instead.
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in ("ultralytics", "torch", "torchvision", "clearml", "numpy", "opencv-python"):
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    return pins


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class _ClearMLLogging:
    """Ultralytics callbacks reporting to the current ClearML task (scalars, samples, plots)."""

    def __init__(self, task: Any, progress: Callable[[str], None] | None = None):
        self.task = task
        self.logger = task.get_logger()
        self.logged_samples: set[str] = set()
        self.progress = progress
        self.progressed: set[int] = set()

    def attach(self, model: Any) -> None:
        for event in ("on_pretrain_routine_start", "on_train_epoch_end", "on_fit_epoch_end", "on_val_end",
                      "on_train_end"):
            model.add_callback(event, getattr(self, event))

    def _samples(self, files: list[Path], title: str) -> None:
        for f in files:
            if f.exists() and str(f) not in self.logged_samples:
                self.logged_samples.add(str(f))
                it = re.search(r"_batch(\d+)", f.name)
                self.logger.report_image(title=title, series=f.name.replace(it.group(), "") if it else f.name,
                                         local_path=str(f), iteration=int(it.group(1)) if it else 0)

    def on_pretrain_routine_start(self, trainer: Any) -> None:
        self.task.connect({k: _plain(v) for k, v in vars(trainer.args).items()}, name="General")

    def on_train_epoch_end(self, trainer: Any) -> None:
        self._samples(sorted(trainer.save_dir.glob("train_batch*.jpg")), "Mosaic")
        for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items():
            self.logger.report_scalar("train", k, float(v), iteration=trainer.epoch)
        for k, v in trainer.lr.items():
            self.logger.report_scalar("lr", k, float(v), iteration=trainer.epoch)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.logger.report_scalar("Epoch Time", "Epoch Time", float(trainer.epoch_time or 0.0),
                                  iteration=trainer.epoch)
        for k, v in trainer.metrics.items():
            self.logger.report_scalar(k.split("/")[0], k, float(v), iteration=trainer.epoch)
        # The final validation calls this hook once more: one progress line per training epoch.
        if self.progress is not None and trainer.epoch < trainer.epochs and trainer.epoch not in self.progressed:
            self.progressed.add(trainer.epoch)
            losses = {k: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()}
            metrics = {_SHORT_METRICS[k]: float(v) for k, v in trainer.metrics.items() if k in _SHORT_METRICS}
            self.progress(EpochProgress(epoch=trainer.epoch + 1, epochs=trainer.epochs, losses=losses,
                                        metrics=metrics).line())
        if trainer.epoch == 0:
            from ultralytics.utils.torch_utils import model_info_for_loggers

            for k, v in model_info_for_loggers(trainer).items():
                self.logger.report_single_value(k, float(v))

    def on_val_end(self, validator: Any) -> None:
        self._samples(sorted(validator.save_dir.glob("val*.jpg")), "Validation")

    def _plot(self, path: Path) -> None:
        import matplotlib.pyplot as plt
        import numpy as np
        from PIL import Image

        # Same plot as Ultralytics' integration, about twice as fast: ClearML saves the figure at
        # 300 dpi, so a figure of the (capped) image's own pixel size is encoded once, unscaled.
        with Image.open(path) as image:
            image.thumbnail((_PLOT_MAX_PX, _PLOT_MAX_PX), Image.Resampling.BILINEAR, reducing_gap=1.5)
            pixels = np.asarray(image)
        height, width = pixels.shape[:2]
        fig = plt.figure(figsize=(width / 300, height / 300), dpi=300)
        ax = fig.add_axes([0, 0, 1, 1], frameon=False, aspect="auto", xticks=[], yticks=[])
        ax.imshow(pixels, interpolation="none")
        self.logger.report_matplotlib_figure(title=path.stem, series="", figure=fig, report_interactive=False)
        plt.close(fig)

    def on_train_end(self, trainer: Any) -> None:
        self._samples(sorted(trainer.save_dir.glob("train_batch*.jpg")), "Mosaic")
        for f in [*trainer.plots.keys(), *trainer.validator.plots.keys()]:
            if "batch" not in Path(f).name and Path(f).exists():
                self._plot(Path(f))
        for k, v in trainer.validator.metrics.results_dict.items():
            self.logger.report_single_value(k, float(v))


def _final_metrics(metrics: Any) -> dict[str, float]:
    if metrics is None:
        raise RuntimeError("Ultralytics produced no validation metrics (no best.pt or validation was skipped).")
    results = metrics.results_dict
    out = {short: float(results[key]) for short, key in METRIC_KEYS.items() if key in results}
    if not out:
        raise RuntimeError(f"Validation returned none of the expected metrics: {sorted(results)}")
    out["fitness"] = float(getattr(metrics, "fitness", float("nan")))
    return out


def _per_class(metrics: Any) -> list[dict[str, Any]]:
    rows = []
    for row in metrics.summary():
        rows.append({"class": str(row["Class"]), "images": int(row["Images"]), "instances": int(row["Instances"]),
                     "precision": float(row["Box-P"]), "recall": float(row["Box-R"]),
                     "mAP50": float(row["mAP50"]), "mAP50-95": float(row["mAP50-95"])})
    return rows


def _results_rows(csv_path: Path) -> list[dict[str, float]]:
    import csv

    if not csv_path.exists():
        return []
    with csv_path.open() as f:
        return [{k.strip(): float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]


def _train_and_register(task: Any, request: TrainingRequest, work: Path, phases: dict[str, float],
                        progress: Callable[[str], None] | None) -> TrainingResult:
    """Fetch the dataset, train, and only then register the model and report the promotion decision."""
    mark = time.monotonic()
    dataset, data_yaml = _fetch_dataset(task, request)
    phases["dataset"] = time.monotonic() - mark

    model, metrics, train_seconds = _train(task, request, work, data_yaml, progress)
    phases["train"] = train_seconds
    mark = time.monotonic()
    trainer = model.trainer
    final, best = _checked_outcome(metrics, trainer, request.main_metric)
    logger = task.get_logger()
    per_class, table = _report_final_metrics(logger, final, metrics, trainer.epoch)
    names = {str(v): int(k) for k, v in metrics.names.items()}
    # Registered only now, after training and the final validation succeeded: no half-registered model.
    model_id, uri = _register_model(task, request, dataset.id, final, names, best, table, trainer.epoch)

    phases["register"] = time.monotonic() - mark
    rows = _results_rows(Path(trainer.save_dir) / "results.csv")
    decision = _report_promotion(task, logger, request, final)
    return TrainingResult(
        task_id=task.id, project_id=task.project or "",
        dataset=DatasetRef(id=dataset.id, name=dataset.name, project=dataset.project, version=dataset.version or ""),
        model_id=model_id, model_uri=uri, model_name=request.model_name, labels=names, metrics=final,
        per_class=per_class, decision=decision.as_dict(), epochs=int(trainer.epoch) + 1,
        train_seconds=train_seconds, results=rows, wall_seconds=0.0, phase_seconds=phases)


def _fetch_dataset(task: Any, request: TrainingRequest) -> tuple[Any, Path]:
    """The dataset version recorded on the task (connected as ``Dataset``) and its local ``data.yaml``."""
    from clearml import Dataset

    dataset = Dataset.get(dataset_id=request.dataset_id, alias="training_view")
    task.connect({"id": dataset.id, "name": dataset.name, "project": dataset.project,
                  "version": dataset.version or ""}, name="Dataset")
    copy = Path(dataset.get_local_copy())
    data_yaml = copy / "data.yaml"
    if not data_yaml.exists():
        raise FileNotFoundError(f"Dataset version {dataset.id} has no data.yaml at its root; materialize the "
                                "training view asset to get an Ultralytics layout.")
    return dataset, data_yaml


def _train(task: Any, request: TrainingRequest, work: Path, data_yaml: Path,
           progress: Callable[[str], None] | None) -> tuple[Any, Any, float]:
    """Train with ClearML logging attached; returns the model, the final validation metrics and the
    seconds ``train`` took."""
    from ultralytics import YOLO

    weights = request.pretrained_weights
    if weights and not Path(weights).is_file():
        raise FileNotFoundError(f"pretrained_weights {weights!r} is not a local file (weights are never "
                                "downloaded); leave it empty to train from the model config.")
    model = YOLO(weights or request.model_yaml)
    _ClearMLLogging(task, progress).attach(model)
    started = time.monotonic()
    metrics = model.train(
        data=str(data_yaml), epochs=request.epochs, imgsz=request.imgsz, batch=request.batch,
        device=request.device, workers=request.workers, seed=request.seed, deterministic=True,
        close_mosaic=request.close_mosaic, project=str(work / "runs"), name="train", exist_ok=True,
        pretrained=bool(weights), amp=False, plots=True, verbose=False)
    return model, metrics, time.monotonic() - started


def _checked_outcome(metrics: Any, trainer: Any, main: str) -> tuple[dict[str, float], Path]:
    """The final metrics and ``best.pt``; raises unless both exist and the main metric is a number."""
    final = _final_metrics(metrics)
    best = Path(trainer.best)
    if not best.is_file():
        raise RuntimeError(f"Training finished without a best.pt at {best}.")
    if not math.isfinite(final.get(main, float("nan"))):
        raise RuntimeError(f"Main metric {main!r} is missing or not a number in {final}.")
    return final, best


def _report_final_metrics(logger: Any, final: dict[str, float], metrics: Any, epoch: int
                          ) -> tuple[list[dict[str, Any]], Any]:
    """Log the final metrics and the per-class table on the task; returns the rows and the table."""
    import pandas as pd

    for name, value in final.items():
        logger.report_single_value(name, value)
    per_class = _per_class(metrics)
    table = pd.DataFrame(per_class).set_index("class") if per_class else pd.DataFrame({"class": []})
    logger.report_table("Per-class metrics", "validation", iteration=epoch, table_plot=table)
    return per_class, table


def _register_model(task: Any, request: TrainingRequest, dataset_id: str, final: dict[str, float],
                    names: dict[str, int], best: Path, table: Any, epoch: int) -> tuple[str, str]:
    """Register ``best`` as the task's output model and confirm its upload; returns its id and URI."""
    from clearml import OutputModel, StorageManager

    main = request.main_metric
    output = OutputModel(task=task, name=request.model_name, framework="PyTorch", label_enumeration=names,
                         tags=list(request.model_tags),
                         comment=f"YOLO trained on dataset {dataset_id}; {main}={final[main]:.4f}")
    output.update_weights(weights_filename=str(best), auto_delete_file=False, iteration=epoch)
    output.report_table("Per-class metrics", "validation", iteration=epoch, table_plot=table)
    for name, value in final.items():
        output.set_metadata(name, f"{value:.6g}", v_type="float")
    output.set_metadata("main_metric", main, v_type="str")
    output.set_metadata("dataset_id", dataset_id, v_type="str")
    task.flush(wait_for_uploads=True)
    uri = output.url or ""
    if not uri or uri.rstrip("/").endswith("uploading_file"):
        raise RuntimeError(f"The weights upload of model {output.id} did not complete (uri {uri!r}).")
    # The SDK logs a failed upload and goes on with the URL it meant to write: check the stored bytes.
    stored = StorageManager.get_file_size_bytes(uri, silence_errors=True)
    if stored != best.stat().st_size:
        raise RuntimeError(f"The weights of model {output.id} are not on the fileserver ({uri} holds "
                           f"{stored} of {best.stat().st_size} bytes); is the fileserver reachable?")
    return output.id, uri


def _report_promotion(task: Any, logger: Any, request: TrainingRequest, final: dict[str, float]
                      ) -> ClearMLPromotionDecision:
    """Decide champion/challenger and report the decision on the task (text and user properties)."""
    main = request.main_metric
    champion = request.champion
    record = ClearMLModelRecord(**champion) if champion else None
    decision = decide_promotion(final[main], record, main, request.promotion_rule, request.min_delta)
    logger.report_text(f"Champion/challenger: {'PROMOTED' if decision.promote else 'not promoted'}: "
                       f"{decision.reason}")
    task.set_user_properties(
        {"name": "champion_decision", "value": "promoted" if decision.promote else "not promoted",
         "description": decision.reason},
        {"name": f"challenger_{main}", "value": f"{final[main]:.6g}"},
        {"name": f"champion_{main}",
         "value": "none" if decision.champion_value is None else f"{decision.champion_value:.6g}"},
    )
    return decision


def train_yolo(request: TrainingRequest, task: Any, progress: Callable[[str], None] | None = None
               ) -> TrainingResult:
    """Train, log and register one model inside ``task`` (see module docstring).

    Args:
        request: What to train and how to decide promotion.
        task: The running ClearML task (``Task.init()`` attached to the task the Dagster side created).
        progress: Called with one line per epoch (epoch, losses, mAP), e.g. the Pipes log.

    Returns:
        The registered model, its metrics and per-class rows, the promotion decision and timings.

    Raises:
        RuntimeError: Training or registration failed (the reason is on the task's console too).
    """
    started = time.monotonic()
    atexit.register(_silence_finalization_output)
    with tempfile.TemporaryDirectory(prefix="clearml_train_") as tmp:
        work = Path(tmp)
        prepare_ultralytics(work / "ultralytics_config")
        task.set_packages(_package_pins())
        phases = {"task_init": time.monotonic() - started}
        try:
            result = _train_and_register(task, request, work, phases, progress)
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}"[:900]
            task.get_logger().report_text(f"Training failed, no model registered: {reason}\n"
                                          f"{traceback.format_exc()[-4000:]}")
            task.flush(wait_for_uploads=True)
            raise RuntimeError(f"Training task {task.id} failed: {reason}") from None
    close_started = time.monotonic()
    task.flush(wait_for_uploads=True)
    phases["close"] = time.monotonic() - close_started
    result = TrainingResult.from_dict(json.loads(json.dumps(
        {**result.to_dict(), "wall_seconds": time.monotonic() - started, "phase_seconds": phases})))
    return result


def prepare_fast_exit() -> None:
    """Public name of the fast-exit preparation, for the task's entry point."""
    _prepare_fast_exit()
