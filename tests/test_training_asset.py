"""The YOLO model asset end to end on the local server: a tiny real training, everything read back
through the real ClearML SDK and REST; failure cases leave a failed task and no model."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from clearml_assets.datasets.shapes import DEMO_CLASSES, format_yolo_label, render_demo_image
from clearml_assets.errors import TrainingError
from clearml_assets.training import build_training_defs
from clearml_assets.training.registry import CHAMPION_TAG

from conftest import run_sdk_script, sdk_env, server_world

pytestmark = pytest.mark.slow  # each trains a model (20-70 s): the marked CI step


PROJECT = "train_test"
VIEW_KEY = dg.AssetKey(["datasets", "shapes_training_view"])
MODEL_KEY = dg.AssetKey(["training", "shapes_yolo"])
TINY = {"epochs": 2, "imgsz": 64, "batch": 8, "close_mosaic": 1}


def yolo_yaml() -> str:
    """data.yaml of a split-folder layout (no ``path:``: Ultralytics resolves against the yaml's folder)."""
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(DEMO_CLASSES))
    return f"train: images/train\nval: images/val\nnames:\n{names}"


def write_view(folder: Path, train: int, val: int, size: int = 96, seed: int = 3) -> Path:
    """An Ultralytics layout (images/labels per split, data.yaml) as a training view version holds."""
    for split, indices in (("train", range(train)), ("val", range(train, train + val))):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in indices:
            image, boxes = render_demo_image(i, seed=seed, size=size)
            image.save(folder / "images" / split / f"shape_{i:05d}.png")
            (folder / "labels" / split / f"shape_{i:05d}.txt").write_text(format_yolo_label(boxes))
    (folder / "data.yaml").write_text(yolo_yaml())
    return folder


def upload_dataset(env: dict, folder: Path, name: str, cwd: Path) -> str:
    out = run_sdk_script(f"""
        from clearml import Dataset
        ds = Dataset.create(dataset_project={PROJECT + "_data"!r}, dataset_name={name!r})
        ds.add_files({str(folder)!r})
        ds.upload()
        ds.finalize()
        print("ID", ds.id)
    """, env, timeout=120, cwd=cwd)
    return [line.split()[1] for line in out.stdout.splitlines() if line.startswith("ID ")][-1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with server_world(tmp_path_factory, "training") as ns:
        tmp = ns.tmp
        ns.env = env = sdk_env(ns.server.info, tmp / "sdkhome")
        ns.dataset_id = upload_dataset(env, write_view(tmp / "view", train=20, val=6), "view", tmp)
        ns.sdk = lambda code, timeout=120: run_sdk_script(code, env, timeout=timeout, cwd=tmp)
        yield ns


def materialize(world, config: dict, *, instance=None, floor: float = 0.3, raise_on_error: bool = True):
    defs = build_training_defs(project=PROJECT, metric_floor=floor)
    return dg.materialize([*defs.assets, *defs.asset_checks], run_config={"ops": {"training__shapes_yolo": {
        "config": config}}}, instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"clearml": world.resource}, raise_on_error=raise_on_error)


def meta_of(result) -> dict:
    (mat,) = result.asset_materializations_for_node("training__shapes_yolo")
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def read_task(world, task_id: str) -> dict:
    out = world.sdk(f"""
        import json
        from clearml import Task
        t = Task.get_task(task_id={task_id!r})
        scalars = t.get_reported_scalars()
        plots = t.get_reported_plots()
        samples = {{s: len(t.get_debug_samples(title, s)) for title, s in
                    (("Mosaic", "train.jpg"), ("Validation", "val_labels.jpg"), ("Validation", "val_pred.jpg"))}}
        print("JSON", json.dumps({{
            "status": t.get_status(), "params": t.get_parameters(), "props": t.get_user_properties(value_only=True),
            "scalars": {{title: {{series: v["x"] for series, v in s.items()}} for title, s in scalars.items()}},
            "single": t.get_reported_single_values(), "plots": sorted({{p["metric"] for p in plots}}),
            "table": [p["plot_str"] for p in plots if p["metric"] == "Per-class metrics"],
            "samples": samples, "models": [m.id for m in t.models["output"]],
        }}))
    """)
    return json.loads(out.stdout.split("JSON ", 1)[1])


@pytest.fixture(scope="module")
def trained(world):
    instance = dg.DagsterInstance.ephemeral()
    # The upstream training view asset's materialization records the exact version to train on.
    instance.report_runless_asset_event(dg.AssetMaterialization(VIEW_KEY, metadata={"dataset_id": world.dataset_id}))
    started = time.monotonic()
    result = materialize(world, dict(TINY), instance=instance, floor=2.0)
    return SimpleNamespace(result=result, meta=meta_of(result), seconds=time.monotonic() - started,
                           log=[entry.user_message for entry in instance.all_logs(result.run_id)])


@pytest.mark.timeout(400)
def test_training_logs_task_registers_model_and_first_model_becomes_champion(world, trained):
    meta = trained.meta
    assert meta["dataset_id"] == world.dataset_id and meta["epochs"] == 2
    assert meta["champion_decision"] == "promoted" and meta["previous_champion_model_id"] == "none"
    assert meta["main_metric"] == "mAP50-95" and meta["main_metric_value"] == meta["metric_mAP50-95"]
    assert meta["clearml_task_url"].startswith("http") and meta["model_id"] in meta["clearml_model_url"]
    assert meta["training_curves"].startswith("![training curves](data:image/png;base64,")
    assert Path(meta["training_curves_file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| circle |" in meta["per_class"] or "| square |" in meta["per_class"]
    assert meta["execution"] == "local"
    # Per-epoch progress (epoch, losses, mAP) reached the Dagster run log from the training task.
    epochs = [line for line in trained.log if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"], trained.log
    assert all("box_loss=" in line and "mAP50-95=" in line for line in epochs)

    task = read_task(world, meta["task_id"])
    assert task["status"] == "completed"
    # Per-epoch scalars (iterations 0 and 1) from the Ultralytics callbacks.
    assert task["scalars"]["train"]["train/box_loss"] == [0, 1]
    assert set(task["scalars"]["metrics"]) >= {"metrics/mAP50(B)", "metrics/mAP50-95(B)"}
    assert 0 in task["scalars"]["lr"]["lr/pg0"] and 1 in task["scalars"]["Epoch Time"]["Epoch Time"]
    assert task["params"]["General/epochs"] == "2" and task["params"]["General/imgsz"] == "64"
    assert task["params"]["Dataset/id"] == world.dataset_id
    assert task["params"]["Datasets/training_view"] == world.dataset_id
    assert task["props"]["champion_decision"] == "promoted"
    assert float(task["props"]["challenger_mAP50-95"]) == pytest.approx(meta["main_metric_value"], rel=1e-4)
    assert abs(task["single"]["mAP50-95"] - meta["main_metric_value"]) < 1e-4 and "model/parameters" in task["single"]
    assert {"metrics/mAP50(B)", "metrics/mAP50-95(B)", "fitness"} <= set(task["single"])  # as Ultralytics logs
    assert {"Per-class metrics", "results", "confusion_matrix"} <= set(task["plots"])
    assert "circle" in task["table"][0] or "square" in task["table"][0]
    assert task["samples"]["train.jpg"] >= 1  # Mosaic
    assert task["samples"]["val_labels.jpg"] >= 1 and task["samples"]["val_pred.jpg"] >= 1
    assert task["models"] == [meta["model_id"]]

    out = world.sdk(f"""
        import json, torch
        from clearml import Model
        m = Model(model_id={meta["model_id"]!r})
        path = m.get_local_copy()
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        from clearml.backend_api.session.client import APIClient
        plots = APIClient().events.get_task_plots(task=m.id, iters=1, model_events=True).plots
        print("JSON", json.dumps({{"labels": m.labels, "framework": m.framework, "tags": m.tags,
              "names": {{str(k): v for k, v in ckpt["model"].names.items()}}, "metric": m.get_metadata("mAP50-95"),
              "dataset": m.get_metadata("dataset_id"), "uri": m.url,
              "tables": {{p["metric"]: p["plot_str"] for p in plots}}}}))
    """, timeout=180)
    model = json.loads(out.stdout.split("JSON ", 1)[1])
    assert model["labels"] == {"circle": 0, "square": 1, "triangle": 2}
    assert model["names"] == {"0": "circle", "1": "square", "2": "triangle"}
    assert model["framework"] == "PyTorch" and CHAMPION_TAG in model["tags"]
    assert float(model["metric"]) == pytest.approx(meta["main_metric_value"], rel=1e-4)
    assert model["dataset"] == world.dataset_id and not model["uri"].endswith("uploading_file")
    # The per-class table is on the model too, with the same rows as on the task.
    assert json.loads(model["tables"]["Per-class metrics"]) == json.loads(task["table"][0])
    print(f"task.close() in the training child took {meta['task_close_seconds']:.2f} s")

    size = world.client.files.download(meta["model_uri"], world.tmp / "best.pt")
    assert size > 1_000_000

    (check,) = trained.result.get_asset_check_evaluations()
    assert check.check_name == "main_metric_floor" and check.passed is False  # floor 2.0 is unreachable
    assert check.metadata["value"].value == pytest.approx(meta["main_metric_value"])


def champion_ids(world) -> list[str]:
    return [m["id"] for m in world.client.session.call("models.get_all", tags=[CHAMPION_TAG])["models"]]


@pytest.fixture(scope="module")
def not_promoted(world, trained):
    """A second training that cannot beat the champion by the required margin (mAP is at most 1)."""
    result = materialize(world, {**TINY, "dataset_id": world.dataset_id, "min_delta": 1.0})
    return meta_of(result)


@pytest.mark.timeout(300)
def test_challenger_that_does_not_beat_the_champion_is_registered_but_not_promoted(world, trained, not_promoted):
    first, meta = trained.meta, not_promoted
    assert meta["model_id"] != first["model_id"]
    assert meta["champion_decision"] == "not promoted" and "does not beat" in meta["champion_reason"]
    assert meta["previous_champion_model_id"] == first["model_id"]
    assert meta["previous_champion_value"] == pytest.approx(first["main_metric_value"], rel=1e-4)
    assert meta["demoted_model_ids"] == "none"
    assert champion_ids(world) == [first["model_id"]]
    task = read_task(world, meta["task_id"])
    assert task["status"] == "completed" and task["models"] == [meta["model_id"]]
    assert task["props"]["champion_decision"] == "not promoted"
    assert float(task["props"]["champion_mAP50-95"]) == pytest.approx(first["main_metric_value"], rel=1e-4)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["bad model config", "empty validation split"])
def test_failed_training_marks_task_failed_registers_nothing_keeps_champion(world, trained, case):
    if case == "bad model config":
        config, error = {"dataset_id": world.dataset_id, "model_yaml": "no_such_model.yaml"}, "no_such_model"
    else:
        view = write_view(world.tmp / "no_val", train=4, val=0)
        config, error = {"dataset_id": upload_dataset(world.env, view, "no_val", world.tmp)}, "images/val"
    champion_before = champion_ids(world)
    models_before = len(world.client.session.call("models.get_all")["models"])
    with pytest.raises(TrainingError) as err:
        materialize(world, {**TINY, **config})
    assert "No model was registered" in str(err.value) and error in str(err.value)
    task_id = err.value.metadata["task_id"].value
    task = read_task(world, task_id)
    assert task["status"] == "failed" and task["models"] == []
    (doc,) = world.client.session.call("tasks.get_all", id=[task_id], only_fields=["status_reason"])["tasks"]
    assert error in doc["status_reason"]
    assert len(world.client.session.call("models.get_all")["models"]) == models_before
    assert champion_ids(world) == champion_before


@pytest.mark.timeout(300)
def test_interrupted_training_is_marked_failed_by_the_parent(world, trained):
    champion_before = champion_ids(world)
    models_before = len(world.client.session.call("models.get_all")["models"])
    with pytest.raises(TrainingError) as err:
        materialize(world, {**TINY, "epochs": 500, "dataset_id": world.dataset_id, "timeout_seconds": 20})
    assert "did not finish within 20s" in str(err.value)
    task_id = err.value.metadata["task_id"].value
    (doc,) = world.client.session.call("tasks.get_all", id=[task_id], only_fields=["id", "status"])["tasks"]
    assert doc["status"] == "failed"
    assert len(world.client.session.call("models.get_all")["models"]) == models_before
    assert champion_ids(world) == champion_before


def test_missing_upstream_version_names_the_asset_to_materialize(world):
    result = materialize(world, dict(TINY), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "materialize datasets/shapes_training_view first" in str(failure.step_failure_data.error.message)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_short_cpu_training_on_demo_shapes_learns_and_takes_the_champion_tag(world, trained, not_promoted):
    """160 demo images, 15 epochs at 128 px from scratch: mAP50 well above chance; it beats the
    2-epoch champion of the same project, which loses the tag."""
    dataset_id = upload_dataset(world.env, write_view(world.tmp / "view160", train=160, val=40, size=160, seed=0),
                                "view160", world.tmp)
    result = materialize(world, {"dataset_id": dataset_id, "epochs": 15, "imgsz": 128, "batch": 16}, floor=0.3)
    meta = meta_of(result)
    print(f"15 epochs: mAP50={meta['metric_mAP50']:.3f} mAP50-95={meta['metric_mAP50-95']:.3f}")
    assert meta["metric_mAP50"] >= 0.5, meta
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata
    assert meta["champion_decision"] == "promoted" and "beats" in meta["champion_reason"]
    assert meta["previous_champion_model_id"] == trained.meta["model_id"]
    assert meta["demoted_model_ids"] == trained.meta["model_id"]
    assert champion_ids(world) == [meta["model_id"]]
