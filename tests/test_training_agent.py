"""The model asset with `execution: queue`: a real clearml-agent daemon (virtualenv mode, this Python)
runs the training task against the local server; the result matches the local path's."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.errors import TrainingError
from clearml_assets.pipes import start_local_agent

from test_training_asset import TINY, VIEW_KEY, materialize, meta_of, read_task, trained, world  # noqa: F401

pytestmark = pytest.mark.slow  # each trains a model (20-70 s): the marked CI step

REPO = str(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def agent(world):  # noqa: F811
    home = Path(tempfile.mkdtemp(prefix="clearml_agent_"))  # holds the agent's keys: not in pytest's folder
    running = start_local_agent("training_q", world.resource.sdk_env(), home, worker="training-agent",
                                extra_env={"PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))})
    try:
        for _ in range(1200):  # until it registered (an event); the bound only guards against a hang
            if any(w["id"] == "training-agent" for w in world.client.session.call("workers.get_all")["workers"]):
                break
            assert running.process.poll() is None, running.log()[-3000:]
            time.sleep(0.1)
        yield running
    finally:
        running.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_queue_without_a_live_worker_fails_at_once_naming_it(world):  # noqa: F811
    world.client.session.call("queues.create", name="gpu_nobody")
    started = time.monotonic()
    with pytest.raises(TrainingError) as err:
        materialize(world, {**TINY, "dataset_id": world.dataset_id, "execution": "queue", "queue": "gpu_nobody"})
    assert "No live ClearML worker serves queue 'gpu_nobody'" in str(err.value)
    print(f"refused after {time.monotonic() - started:.1f} s")


@pytest.mark.timeout(600)
def test_training_on_a_queue_served_by_a_real_agent_matches_the_local_path(world, trained, agent):  # noqa: F811
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(world, {**TINY, "dataset_id": world.dataset_id, "execution": "queue",
                                 "queue": "training_q"}, instance=instance)
    meta, local = meta_of(result), trained.meta
    assert meta["execution"] == "queue training_q" and local["execution"] == "local"
    assert set(meta) == set(local)
    for key in ("dataset_id", "dataset_name", "dataset_version", "epochs", "main_metric", "project", "labels"):
        assert meta[key] == local[key], key
    assert meta["model_id"] != local["model_id"] and meta["champion_decision"] in ("promoted", "not promoted")
    task = read_task(world, meta["task_id"])
    assert task["status"] == "completed" and task["models"] == [meta["model_id"]]
    assert task["params"]["General/epochs"] == "2" and task["params"]["Dataset/id"] == world.dataset_id
    (doc,) = world.client.session.call("tasks.get_all", id=[meta["task_id"]], only_fields=["last_worker"])["tasks"]
    assert doc["last_worker"] == "training-agent"
    # Per-epoch progress reached the Dagster run log while the agent trained.
    lines = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(line.startswith("epoch 1/2: ") and "mAP50-95=" in line and "box_loss=" in line for line in lines)
    assert any(line.startswith("epoch 2/2: ") for line in lines)
