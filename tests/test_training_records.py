"""The typed records shared by the model asset and its training task, and the task side's import weight."""

import subprocess
import sys

import pytest

from clearml_assets.training import DatasetRef, EpochProgress, TrainingRequest, TrainingResult


def result() -> TrainingResult:
    return TrainingResult(
        task_id="t", project_id="p", dataset=DatasetRef(id="d", name="view", project="data", version="1.0.0"),
        model_id="m", model_uri="http://files/m.pt", model_name="yolo", labels={"circle": 0},
        metrics={"mAP50-95": 0.5}, per_class=[], decision={"promote": True, "reason": "first"}, epochs=2,
        train_seconds=1.5, results=[{"epoch": 1.0}], wall_seconds=3.0, phase_seconds={"train": 1.5})


def test_result_round_trips_through_json_shaped_dicts():
    again = TrainingResult.from_dict(result().to_dict())
    assert again == result() and isinstance(again.dataset, DatasetRef) and again.dataset.version == "1.0.0"


def test_a_field_the_other_side_does_not_know_fails_loudly():
    with pytest.raises(ValueError, match=r"unknown fields \['surprise'\]"):
        TrainingResult.from_dict({**result().to_dict(), "surprise": 1})
    with pytest.raises(TypeError):
        TrainingRequest.from_dict({"project": "p"})  # missing fields are named by the dataclass


def test_epoch_progress_line_has_epoch_losses_and_map():
    line = EpochProgress(epoch=3, epochs=20, losses={"train/box_loss": 1.23456}, metrics={"mAP50-95": 0.19812}).line()
    assert line == "epoch 3/20: box_loss=1.235 mAP50-95=0.1981"


def test_the_training_task_side_imports_no_dagster():
    code = ("import sys, clearml_assets.training.remote, clearml_assets.training.yolo, clearml_assets.pipes.protocol;"
            "print('dagster' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
