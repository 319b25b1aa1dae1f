"""The main job: every capability end to end, on the embedded local server unless told otherwise.

``clearml-assets demo`` materializes the dataset versions and the YOLO model (job
``clearml_training_job``), then adds the training task as a partition of the account's task archive and
archives it with its check (``archive_matches_manifest``). Runs are recorded in a persistent
``DAGSTER_HOME`` so ``clearml-assets ui`` shows them afterwards.

The terminal gets one line per stage; what the libraries print (the ClearML SDK, Ultralytics, Dagster's
own event log) goes to ``<home>/logs/demo-<time>.log``, named in the summary (``--verbose`` shows it all).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Iterator

import dagster as dg

from .errors import ClearMLAssetsError
from .resource import ClearMLResource, clearml_assets_home

DAGSTER_YAML = """\
# Dagster instance of the clearml-assets demo (written by `clearml-assets demo` / `clearml-assets ui`).
# Telemetry is off for this instance; delete these two lines to allow Dagster's usage statistics.
telemetry:
  enabled: false
"""
DEMO_ARCHIVE_JOB = "clearml_demo_archive"
_progress_out: IO[str] | None = None


def home_dagster_dir(home: Path) -> Path:
    """The Dagster instance folder of a home (``HOME/dagster_home``): what the demo, ``clearml-assets ui``,
    ``add-partitions`` and ``materialize`` use when ``DAGSTER_HOME`` is not set."""
    return Path(home) / "dagster_home"


def prepare_dagster_home(path: Path) -> Path:
    """Create the demo's ``DAGSTER_HOME`` with a ``dagster.yaml`` (kept if there is one)."""
    path = Path(path).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return path


@contextmanager
def quiet_dagster_warnings() -> Iterator[None]:
    """Hide Dagster's beta/preview notices about features this project chose (nothing a user can act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        yield


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


# -- progress: one line per stage --------------------------------------------------------------------
class _ProgressHandler(logging.Handler):
    """Turns a run's Dagster events into one line per step: its asset, time, last message and checks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.started: dict[str, float] = {}
        self.last_message: dict[str, str] = {}
        self.assets: dict[str, str] = {}
        self.materialized: set[str] = set()
        self.checks: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        out = _progress_out or sys.stdout
        if out is not sys.stdout:  # the terminal is elsewhere: the whole event log goes to the demo log
            print(f"{datetime.now():%H:%M:%S} {record.levelname} {record.getMessage()}", file=sys.stderr)
        event = getattr(record, "dagster_event", None)
        meta = getattr(record, "dagster_meta", None) or {}
        step = (event.step_key if event is not None else meta.get("step_key")) or ""
        if event is None:
            if step and record.levelno >= logging.INFO:
                self.last_message[step] = str(meta.get("orig_message") or record.getMessage()).splitlines()[0]
            return
        kind = event.event_type_value
        data = event.event_specific_data
        if kind == "STEP_START":
            self.started[step] = time.monotonic()
        elif kind == "ASSET_MATERIALIZATION":
            self.materialized.add(step)
            self.assets.setdefault(step, data.materialization.asset_key.to_user_string())
        elif kind == "ASSET_CHECK_EVALUATION":
            self.assets.setdefault(step, data.asset_key.to_user_string())
            self.checks.setdefault(step, []).append(f"{data.check_name} {'passed' if data.passed else 'FAILED'}")
        elif kind == "STEP_SUCCESS":
            seconds = time.monotonic() - self.started.get(step, time.monotonic())
            label = self.assets.get(step) or step.replace("__", "/")
            if step in self.materialized:
                parts = [f"  done   {label:34s} {seconds:6.1f} s", _short(self.last_message.get(step, ""))]
                if self.checks.get(step):
                    parts.append("checks: " + ", ".join(self.checks[step]))
            else:
                parts = [f"  check  {label:34s} {seconds:6.1f} s", ", ".join(self.checks.get(step, []))]
            print("  ".join(p for p in parts if p), file=out, flush=True)
        elif kind == "STEP_FAILURE":
            error = getattr(data, "error", None)
            reason = (error.message.strip().splitlines() or [""])[0] if error else ""
            print(f"  FAIL   {self.assets.get(step) or step.replace('__', '/')}: {reason}", file=out, flush=True)


def _short(message: str, width: int = 90) -> str:
    if len(message) <= width:
        return message
    return message[:width].rsplit(" ", 1)[0] + " ..."


@dg.logger(description="One line per step of the demo's runs (the full event log is in the demo log).")
def demo_progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger(f"clearml_assets.demo.progress.{init_context.run_id}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers = [_ProgressHandler()]
    return logger


@contextmanager
def _library_output_to(log_file: Path | None) -> Iterator[IO[str]]:
    """Send everything written to fds 1 and 2 (libraries, SDK and training children) to ``log_file``;
    yields a stream to the real terminal for the demo's own lines."""
    global _progress_out
    if log_file is None:
        _progress_out = sys.stdout
        yield sys.stdout
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with open(log_file, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    _progress_out = terminal
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        terminal.close()
        _progress_out = None


# -- the demo --------------------------------------------------------------------------------------
def run_demo(account: str | None = None, home: Path | None = None, train_epochs: int | None = None,
             images: int | None = None, imgsz: int | None = None, verbose: bool = False) -> dict:
    """Run the main job and the archive of its training task; return a summary.

    Args:
        account: ClearML account to use; default: the resource's default (the embedded server).
        home: ``CLEARML_ASSETS_HOME`` for this run (server, demo data, exports, Dagster home).
        train_epochs: Override the training epochs (default: the training config's default).
        images: Images in the generated demo set (default: the dataset config's default).
        imgsz: Training image size (default: the training config's default).
        verbose: Leave library output on the terminal instead of the demo log.

    Raises:
        ClearMLAssetsError: A step failed; the message says which and where the log is.
    """
    if home is not None:
        os.environ["CLEARML_ASSETS_HOME"] = str(Path(home).expanduser().resolve())
    base = clearml_assets_home().resolve()
    os.environ["CLEARML_ASSETS_HOME"] = str(base)
    os.environ.setdefault("DAGSTER_HOME", str(home_dagster_dir(base)))
    dagster_home = prepare_dagster_home(Path(os.environ["DAGSTER_HOME"]))
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    log_file = None if verbose else base / "logs" / f"demo-{datetime.now():%Y%m%d-%H%M%S}.log"
    started = time.monotonic()
    with _library_output_to(log_file) as out:
        print(f"clearml-assets demo: home {base}" + (f", full log {log_file}" if log_file else ""), file=out,
              flush=True)
        try:
            summary = _run(account, train_epochs, images, imgsz, out)
        except ClearMLAssetsError as exc:
            if log_file:
                raise type(exc)(f"{exc} The full output is in {log_file}.") from None
            raise
    summary.update(home=str(base), dagster_home=str(dagster_home), log_file=str(log_file or "(terminal)"),
                   seconds=round(time.monotonic() - started, 1))
    return summary


def _run(account: str | None, train_epochs: int | None, images: int | None, imgsz: int | None,
         out: IO[str]) -> dict:
    from .archives.assets import clearml_task_partitions, task_archive_key

    home = str(clearml_assets_home().resolve())
    clearml = (ClearMLResource.from_env(default_account=account, home=home) if account
               else ClearMLResource.from_env(home=home))
    account = clearml.default_account
    print(f"  using ClearML account {account!r}", file=out, flush=True)
    client = clearml.client(account)  # fail fast, and start the embedded server if needed
    archive_key = task_archive_key(account)
    partitions = clearml_task_partitions(account)
    training_job, archive_job = _demo_jobs(clearml, archive_key, partitions)
    instance = dg.DagsterInstance.get()
    model = _run_training(instance, training_job, _training_ops(train_epochs, images, imgsz), out)
    task_id = model["task_id"]
    checks = _run_archive(instance, archive_job, partitions, task_id, out)
    archived = _latest_metadata(instance, archive_key)
    view = _latest_metadata(instance, dg.AssetKey(["datasets", "shapes_training_view"]))
    folder = Path(str(archived.get("folder"))) if archived.get("folder") else None
    server = _local_server_of(clearml, account)
    return {
        "account": account,
        "training_view_dataset_id": view.get("dataset_id"),
        "training_view_version": view.get("dataset_version"),
        "task_id": task_id,
        "task_link": model.get("clearml_task_url"),
        "model_id": model.get("model_id"),
        "model_link": model.get("clearml_model_url"),
        "main_metric": model.get("main_metric"),
        "main_metric_value": model.get("main_metric_value"),
        "champion_decision": model.get("champion_decision") or model.get("promotion_decision"),
        "export_folder": str(folder) if folder else None,
        "metrics_json": str(folder / "metrics.json") if folder and (folder / "metrics.json").exists() else None,
        "archive_path": archived.get("archive_path"),
        "archive_sha256": archived.get("archive_sha256"),
        "archive_check": ", ".join(f"{c.check_name} {'passed' if c.passed else 'FAILED'}" for c in checks),
        "web_host": client.web_host,
        **server,
    }


def _demo_jobs(clearml: ClearMLResource, archive_key: dg.AssetKey, partitions: dg.DynamicPartitionsDefinition
               ) -> tuple[dg.JobDefinition, dg.JobDefinition]:
    """The training job and the demo's archive job (the training task's archive), with progress lines."""
    from .automation.jobs import CLEARML_TRAINING_JOB as TRAINING_JOB
    from .definitions import build_definitions

    with quiet_dagster_warnings():
        defs = dg.Definitions.merge(build_definitions(clearml), dg.Definitions(
            jobs=[dg.define_asset_job(DEMO_ARCHIVE_JOB, selection=dg.AssetSelection.assets(archive_key),
                                      partitions_def=partitions)]))
        progress = {"console": demo_progress_logger}
        training_job = defs.resolve_job_def(TRAINING_JOB).with_logger_defs(progress)
        archive_job = defs.resolve_job_def(DEMO_ARCHIVE_JOB).with_logger_defs(progress)
    return training_job, archive_job


def _training_ops(train_epochs: int | None, images: int | None, imgsz: int | None) -> dict:
    """The ``ops`` run config of the training job for the demo's overrides."""
    ops: dict = {}
    if train_epochs or imgsz:
        train = {k: v for k, v in {"epochs": train_epochs, "imgsz": imgsz}.items() if v}
        ops["training__shapes_yolo"] = {"config": train}
    if images:
        ops["datasets__shapes_raw"] = {"config": {"demo_images": images}}
    return ops


def _progress_loggers() -> dict:
    """Run config of the demo's progress lines instead of Dagster's event log on the terminal."""
    return {"console": {}}


def _run_training(instance: dg.DagsterInstance, training_job: dg.JobDefinition, ops: dict, out: IO[str]) -> dict:
    """Run the training job; returns the model asset's metadata (it has the training task's ``task_id``).

    Raises:
        ClearMLAssetsError: The run failed or the model recorded no ClearML task id.
    """
    from .automation.jobs import CLEARML_TRAINING_JOB as TRAINING_JOB

    print("Training job (dataset versions -> YOLO model):", file=out, flush=True)
    result = training_job.execute_in_process(
        instance=instance, run_config={"ops": ops, "loggers": _progress_loggers()}, raise_on_error=False)
    if not result.success:
        raise ClearMLAssetsError(f"{TRAINING_JOB} failed (Dagster run {result.run_id}): see the FAIL line "
                                 "above; `clearml-assets ui` shows the run.")
    model = _latest_metadata(instance, dg.AssetKey(["training", "shapes_yolo"]))
    if not model.get("task_id"):
        raise ClearMLAssetsError("the model asset recorded no ClearML task id; cannot archive the training task")
    return model


def _run_archive(instance: dg.DagsterInstance, archive_job: dg.JobDefinition,
                 partitions: dg.DynamicPartitionsDefinition, task_id: str, out: IO[str]) -> list:
    """Add ``task_id`` as a task partition and archive it; returns its check evaluations (all passed).

    Raises:
        ClearMLAssetsError: The run failed, or its check failed or was not evaluated.
    """
    instance.add_dynamic_partitions(partitions.name, [task_id])
    print(f"Archive of training task {task_id}:", file=out, flush=True)
    archive = archive_job.execute_in_process(instance=instance, partition_key=task_id, raise_on_error=False,
                                             run_config={"loggers": _progress_loggers()})
    if not archive.success:
        raise ClearMLAssetsError(f"archiving training task {task_id} failed (Dagster run {archive.run_id}).")
    checks = [e.event_specific_data for e in archive.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    if not checks or not all(c.passed for c in checks):
        raise ClearMLAssetsError(f"the archive of task {task_id} failed its check "
                                 f"({', '.join(c.check_name for c in checks if not c.passed) or 'not evaluated'})")
    return checks


def _local_server_of(clearml: ClearMLResource, account: str) -> dict:
    """Where the embedded server the run used listens (empty for a remote account)."""
    if not clearml.accounts[account].embedded:
        return {}
    from .local_server import sdk_config_file
    from .local_server.ensure import ensure_local_server

    info = ensure_local_server(clearml.home_dir())
    return {"server_api": info.api_host, "server_web": info.web_host,
            "server_credentials": str(info.data_dir / "credentials.json"),
            "server_sdk_config": str(sdk_config_file(info))}
